// Uploading a file through the local authority's web page (issue #7): the form's error summary,
// the demo file with errors going up with a progress bar, the report (file outcome, counts, per-row
// outcomes), filtering by outcome code, and the CSV download.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage } from './support/browser.mjs'
import { startServer } from './support/server.mjs'
import { goFromInbox, signInAsLa } from './la_support.mjs'

const ERRORS_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../demo/uploads/errors-E08000026.csv')
const UUID = /^\/la\/uploads\/[0-9a-f-]{36}$/

describe('local authority upload page', () => {
  let server, browser, page, context, reportPath

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
    ;({ page, context } = await newPage(browser))
    await signInAsLa(page, server.base)
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('shows the upload form', async () => {
    await goFromInbox(page, `${server.base}/la/uploads`)
    assert.equal(await page.title(), 'Upload a file – CP-IS – NHS')
    assert.equal(await page.getByLabel('Changes only (delta)').isChecked(), true)
    assert.match(await page.locator('#mode-full-hint').innerText(), /ended on the file date/)
    await checkPage(page, 'la-10-upload-form')
  })

  it('asks for a file when none was chosen, and records nothing', async () => {
    await page.getByRole('button', { name: 'Upload and check' }).click()
    const summary = page.locator('.nhsuk-error-summary')
    await summary.waitFor()
    assert.equal((await summary.locator('a').innerText()).trim(), 'Select a CSV file to upload')
    assert.equal(await summary.locator('a').getAttribute('href'), '#file')
    assert.equal(await page.title(), 'Error: Upload a file – CP-IS – NHS')
    await checkPage(page, 'la-11-upload-no-file')
  })

  it('uploads the demo file with errors and shows the report', async () => {
    await page.goto(`${server.base}/la/uploads`)
    await page.locator('input[type="file"][name="file"]').setInputFiles(ERRORS_FILE)
    const progress = page.locator('[data-upload-progress]')
    const posts = []
    const onResponse = (r) => {
      if (r.request().method() === 'POST' && new URL(r.url()).pathname === '/la/uploads') posts.push(r.status())
    }
    page.on('response', onResponse)
    await Promise.all([
      page.waitForURL((u) => UUID.test(u.pathname), { timeout: 20_000 }),
      page.getByRole('button', { name: 'Upload and check' }).click()
    ])
    reportPath = new URL(page.url()).pathname
    page.off('response', onResponse)
    assert.deepEqual(posts, [202], 'sent by the script (progress bar, then polling), once')
    assert.equal(await progress.count(), 0, 'now on the report page')
    // Titled by the file's name (issue #18), not a content hash; rows say what they count.
    assert.equal(await page.locator('h1').innerText(), 'Upload report: errors-E08000026.csv')
    assert.match(await page.title(), /^Upload report: errors-E08000026\.csv – /)
    assert.match(await page.locator('.nhsuk-summary-list').innerText(), /File name\s+errors-E08000026\.csv\s+File ID\s+errors-E08000026\.csv\.[0-9a-f]{16}/)
    assert.match(await page.locator('table[data-report-rows] thead').innerText(), /Row after the header\s+NHS number\s+Local ID\s+Outcome\s+Message\s+Detail code/)
    assert.doesNotMatch(await page.locator('table[data-report-rows]').innerText(), /[A-Z_]{6,}:/, 'no code prefixes on messages')
    assert.match(await page.locator('main').innerText(), /CPF03/)
    assert.match(await page.locator('main').innerText(), /Partially loaded|partial/i)
    const summary = await page.locator('.nhsuk-summary-list').innerText()
    assert.match(summary, /Rows\s+15/)
    assert.match(summary, /Accepted\s+4/)
    assert.match(summary, /Rejected\s+11/)
    assert.match(summary, /Sent by\s+Web page/)
    const rows = page.locator('table[data-report-rows] tbody tr')
    assert.equal(await rows.count(), 15)
    // A rejected row shows the local id it was sent with, so the LA can find it in its system.
    assert.match(await rows.nth(0).innerText(), /999 535 9790\s+COV-090002\s+CPR01/)
    await checkPage(page, 'la-12-upload-report')
  })

  it('lists the upload under recent uploads, linking to its report', async () => {
    await page.goto(`${server.base}/la/uploads`)
    const recent = page.locator('table[data-testid="recent-uploads"] tbody tr')
    // The demo loads Coventry's files first; the one just sent is the newest.
    assert.ok(await recent.count() >= 1)
    const newest = recent.nth(0)
    assert.match(await newest.innerText(), /CPF03/)
    assert.match(await newest.innerText(), /4 accepted\s+11 rejected/)
    assert.match(await newest.innerText(), /Changes only, Web page/)
    assert.equal(await newest.locator('a').getAttribute('href'), reportPath)
    await checkPage(page, 'la-12b-recent-uploads')
    // The link leads back to the report (where the next test filters it).
    await Promise.all([page.waitForURL((u) => u.pathname === reportPath), newest.locator('a').click()])
    await page.waitForLoadState('load')
  })

  it('filters the report by outcome code', async () => {
    await page.getByLabel('Show rows with outcome').selectOption('CPR04')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.waitForURL(/outcome=CPR04/)
    const rows = page.locator('table[data-report-rows] tbody tr')
    assert.equal(await rows.count(), 2)
    for (const text of await rows.allInnerTexts()) assert.match(text, /CPR04/)
    assert.match(await page.locator('#rows').innerText(), /Rows with outcome CPR04 \(2\)/)
    await checkPage(page, 'la-13-upload-report-cpr04')
  })

  it('downloads the report as CSV', async () => {
    await page.goto(`${server.base}${reportPath}`)
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download the report as CSV' }).click()
    ])
    assert.match(download.suggestedFilename(), /^cpis-report-errors-E08000026\.csv\.[0-9a-f]{16}\.csv$/)
    const csv = await readFile(await download.path(), 'utf8')
    const lines = csv.trim().split('\n')
    assert.match(lines[0], /^row,nhs_number,outcome/)
    assert.equal(lines.length, 16, 'header and 15 rows')
    assert.ok(lines.some((l) => /^1,9995359790,CPR01/.test(l)), csv)
    const counts = {}
    for (const l of lines.slice(1)) counts[l.split(',')[2]] = (counts[l.split(',')[2]] || 0) + 1
    assert.deepEqual(counts, { CPR01: 1, CPR02: 1, CPR03: 1, CPR04: 2, CPR05: 1, CPR06: 4, CPR07: 5 })
    await context.close()
  })

  it('answers a page-not-found for an upload Coventry does not have', async () => {
    const { page: other, context: otherContext } = await newPage(browser)
    await signInAsLa(other, server.base)
    const missing = await goFromInbox(other, `${server.base}/la/uploads/00000000-0000-4000-8000-000000000000`)
    assert.equal(missing.status(), 404)
    assert.match(await other.locator('h1').innerText(), /Page not found/)
    await otherContext.close()
  })
})
