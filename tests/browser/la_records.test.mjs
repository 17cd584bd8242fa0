// The local authority's records page (issue #7): Coventry's own children, paged, and a search that
// finds a Coventry child by name and NHS number and never shows a child only Westminster holds.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage } from './support/browser.mjs'
import { SHARED_CHILD, grouped } from './support/demo.mjs'
import { startServer } from './support/server.mjs'
import { goFromInbox, signInAsLa } from './la_support.mjs'

const uploads = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../demo/uploads')

/** The rows of a demo upload file as objects. */
function rows (file) {
  const [header, ...lines] = readFileSync(path.join(uploads, file), 'utf8').trim().split('\n')
  const keys = header.split(',')
  return lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [keys[i], v])))
}

const coventry = new Set(rows('E08000026.csv').map((r) => r.nhs_number))
/** A child Westminster holds and Coventry does not, whose family name no Coventry child has. */
const coventryNames = new Set(rows('E08000026.csv').map((r) => r.family_name))
const westminsterOnly = rows('E09000033.csv').find((r) => !coventry.has(r.nhs_number) && !coventryNames.has(r.family_name))

describe('local authority records page', () => {
  let server, browser, page

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
    ;({ page } = await newPage(browser))
    await signInAsLa(page, server.base)
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  async function search (text) {
    await page.getByLabel('Search by NHS number, name or local ID').fill(text)
    await Promise.all([page.waitForURL(/\/la\/records\?q=/), page.getByRole('button', { name: 'Search' }).click()])
    await page.waitForLoadState('load')
    return page.locator('table[data-records] tbody tr')
  }

  it("lists Coventry's records, a page at a time", async () => {
    await goFromInbox(page, `${server.base}/la/records`)
    assert.equal(await page.title(), 'Records – CP-IS – NHS')
    const table = page.locator('table[data-records] tbody tr')
    assert.equal(await table.count(), 25)
    // Coventry's local ids (the demo's superseded numbers have moved to their replacements).
    for (const text of await table.allInnerTexts()) assert.match(text, /\tCOV-\d+\t/)
    assert.equal(await page.locator('.nhsuk-pagination a[rel="next"]').count(), 1)
    await checkPage(page, 'la-20-records')
  })

  it('finds a Coventry child by name and by NHS number', async () => {
    let found = await search('campbell')
    const texts = await found.allInnerTexts()
    assert.ok(texts.some((t) => t.includes('Ivy Campbell') && t.includes(grouped(SHARED_CHILD))), texts.join('\n'))
    await checkPage(page, 'la-21-records-search-name')

    found = await search(grouped(SHARED_CHILD))
    assert.equal(await found.count(), 1)
    const row = await found.first().innerText()
    assert.match(row, /COV-001010/, "Coventry's own record")
    assert.doesNotMatch(row, /WES-/)
    assert.match(row, /Child protection plan/)
    await checkPage(page, 'la-22-records-search-nhs-number')
  })

  it('does not show a child only Westminster holds', async () => {
    assert.ok(westminsterOnly, 'the demo data has a Westminster-only child')
    let found = await search(westminsterOnly.nhs_number)
    assert.equal(await found.count(), 0)
    assert.match(await page.locator('main h2').innerText(), /No records match your search/)
    found = await search(westminsterOnly.family_name)
    assert.equal(await found.count(), 0)
    found = await search(westminsterOnly.local_id)
    assert.equal(await found.count(), 0)
    await checkPage(page, 'la-23-records-no-match')
  })
})
