// The administrator, auditor and LA data-quality pages in a real browser (issue #7): directories
// and users for the admin, audit search and chain verification for the auditor, the data-quality
// report with its 95% target and chart for an LA user, and the 403 page for a clinician who
// opens an admin page. Every page gets the NHS.UK style, axe-core and screenshot checks.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage, signIn } from './support/browser.mjs'
import { SHARED_CHILD, grouped, localAuthority } from './support/demo.mjs'
import { goFromInbox, signInAsLa } from './la_support.mjs'
import { startServer } from './support/server.mjs'

const COVENTRY = 'E08000026'

describe('admin, auditor and data-quality pages', () => {
  let server, browser

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
    // A notifying lookup (for the auditor to find) and Coventry's upload with rejected rows (for
    // its data-quality report), through the APIs with the demo tokens.
    const lookup = await fetch(`${server.base}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C${SHARED_CHILD}`, {
      headers: { Authorization: 'Bearer demo-RDEMO01', IsUnscheduledAccessEvent: 'true' }
    })
    assert.equal(lookup.status, 200)
    const { readFileSync } = await import('node:fs')
    const file = readFileSync(new URL('../../demo/uploads/errors-E08000026.csv', import.meta.url))
    const upload = await fetch(`${server.base}/api/v1/uploads?mode=delta&file_id=browser-errors`, {
      method: 'POST',
      headers: { Authorization: `Bearer demo-${COVENTRY}`, 'Content-Type': 'text/csv' },
      body: file
    })
    assert.equal(upload.status, 201, await upload.text())
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('shows the administrator the users and the directories', async () => {
    const { context, page } = await newPage(browser)
    try {
      await signIn(page, server.base, 'demo.admin')
      assert.equal(new URL(page.url()).pathname, '/admin/users')
      assert.equal(await page.title(), 'Users – CP-IS – NHS')
      const nav = await page.locator('a.nhsuk-header__navigation-link').allTextContents()
      assert.deepEqual(nav.map((t) => t.trim()), ['Users', 'Directory', 'Alerts'])
      // 25 accounts a page (issue #18), with the next page linked.
      assert.match(await page.locator('[data-testid="users-showing"]').innerText(), /^Showing 1 to 25 of \d+ accounts$/)
      assert.equal(await page.locator('[data-testid="users-table"] tbody tr').count(), 25)
      assert.equal(await page.locator('.nhsuk-button--warning').count(), 0, 'no red button on every row')
      await checkPage(page, 'admin-01-users')
      await page.getByLabel('Search accounts').fill('demo.clinician')
      await Promise.all([page.waitForLoadState('load'), page.locator('[data-testid="users-search"]').getByRole('button', { name: 'Search' }).click()])
      assert.equal(new URL(page.url()).search, '', 'the search words are not in the URL')
      const clinician = page.locator('[data-testid="users-table"] tr[data-username="demo.clinician"]')
      assert.match(await clinician.innerText(), /Active/)
      assert.match(await page.locator('[data-testid="users-showing"]').innerText(), /matching/)
      await checkPage(page, 'admin-01b-users-search')

      // Disabling asks first; "No" changes nothing, "Yes" disables and comes back to the search.
      await Promise.all([page.waitForLoadState('load'), clinician.getByRole('button', { name: 'Disable demo.clinician' }).click()])
      assert.equal(await page.locator('h1').innerText(), 'Disable this account?')
      assert.match(await page.locator('[data-testid="disable-account"]').innerText(), /demo\.clinician/)
      await checkPage(page, 'admin-02a-user-disable-confirm')
      await Promise.all([page.waitForLoadState('load'), page.getByRole('link', { name: 'No, go back to the users' }).click()])
      await page.getByLabel('Search accounts').fill('demo.clinician')
      await Promise.all([page.waitForLoadState('load'), page.locator('[data-testid="users-search"]').getByRole('button', { name: 'Search' }).click()])
      assert.match(await clinician.innerText(), /Active/)
      await Promise.all([page.waitForLoadState('load'), clinician.getByRole('button', { name: 'Disable demo.clinician' }).click()])
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Yes, disable demo.clinician' }).click()])
      assert.match(await page.locator('[data-testid="user-changed"]').innerText(), /is now disabled/)
      assert.match(await clinician.innerText(), /Disabled/)
      await checkPage(page, 'admin-02-user-disabled')
      await Promise.all([page.waitForLoadState('load'), clinician.getByRole('button', { name: 'Enable demo.clinician' }).click()])
      assert.match(await clinician.innerText(), /Active/)

      await page.getByRole('link', { name: 'Directory' }).click()
      await page.waitForLoadState('load')
      assert.match(await page.locator('[data-testid="local-authorities"] caption').innerText(), /Showing 1 to 25 of 152/)
      await checkPage(page, 'admin-03-directory')
      const coventry = localAuthority(COVENTRY)
      await page.getByLabel(/Filter by name/).fill('coventry')
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Filter' }).click()])
      const row = page.locator('[data-testid="local-authorities"] tbody tr')
      assert.equal(await row.count(), 1)
      const text = await row.innerText()
      for (const v of [coventry.name, COVENTRY, coventry.office_hours_phone, coventry.edt_phone]) assert.ok(text.includes(v), v)
      assert.ok(text.includes(coventry.office_hours || 'Mon-Fri 09:00-17:00'), 'the office hours')
      await page.getByRole('link', { name: /Care settings/ }).click()
      await page.waitForLoadState('load')
      assert.ok(await page.locator('[data-testid="care-settings"] tbody tr').count() > 1)
      assert.match(await page.locator('[data-testid="care-settings"]').innerText(), /Emergency department/)
      await checkPage(page, 'admin-04-care-settings')
      await page.getByRole('link', { name: 'Alerts' }).click()
      await page.waitForLoadState('load')
      assert.equal(await page.locator('h1').innerText(), 'Alerts')
      await checkPage(page, 'admin-05-alerts')
    } finally {
      await context.close()
    }
  })

  it('lets the auditor search the trail and verify the chain', async () => {
    const { context, page } = await newPage(browser)
    try {
      await signIn(page, server.base, 'demo.auditor')
      assert.equal(new URL(page.url()).pathname, '/audit')
      await checkPage(page, 'admin-06-audit')
      await page.getByLabel('NHS number').fill(grouped(SHARED_CHILD))
      await page.getByLabel('Outcome').selectOption('success')
      // Dates as the hint writes them (issue #18), kept that way.
      assert.equal(await page.locator('#from-hint').innerText(), 'For example, 20/11/2026')
      await page.getByLabel('From').fill('1/1/2020')
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Search' }).click()])
      assert.equal(new URL(page.url()).pathname, '/audit')
      assert.equal(new URL(page.url()).search, '', 'the NHS number is not in the URL')
      const results = page.locator('[data-testid="audit-results"]')
      assert.match(await results.innerText(), /lookup\.unscheduled/)
      assert.match(await results.innerText(), new RegExp(grouped(SHARED_CHILD)))
      assert.equal(await page.getByLabel('From').inputValue(), '01/01/2020')
      assert.match(await page.locator('[data-testid="audit-results-summary"]').innerText(), /from 01\/01\/2020/)
      // Results above the fold: the table starts within the first screen.
      const box = await results.boundingBox()
      assert.ok(box.y < 768, `results start at ${box.y}px`)
      // No debug text from earlier searches' entries.
      assert.doesNotMatch(await page.locator('main').innerText(), /=None|Some\(/)
      await checkPage(page, 'admin-07-audit-results')

      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Verify audit chain' }).click()])
      assert.match(await page.locator('[data-testid="verify-result"]').innerText(), /The audit chain is intact/)
      await checkPage(page, 'admin-08-audit-verified')
    } finally {
      await context.close()
    }
  })

  it('shows an LA user the match rate against the 95% target, with the chart and its table', async () => {
    const { context, page } = await newPage(browser)
    try {
      await signInAsLa(page, server.base)
      await goFromInbox(page, `${server.base}/la/data-quality`)
      assert.equal(await page.title(), 'Data quality – CP-IS – NHS')
      const nav = page.locator('a.nhsuk-header__navigation-link[aria-current="page"]')
      assert.equal((await nav.innerText()).trim(), 'Data quality')
      assert.match(await page.locator('[data-testid="match-summary"]').innerText(), /95%/)
      // The demo upload and the errors file: some rows did not match.
      assert.match(await page.locator('[data-testid="match-rate"]').innerText(), /^\d+\.\d%\s+(Target met|Below target)$/)
      const chart = page.locator('svg[data-testid="rejections-chart"]')
      assert.equal(await chart.getAttribute('role'), 'img')
      assert.match(await chart.locator('title').textContent(), /Rejected rows per week/)
      assert.ok(await chart.locator('rect').count() > 0, 'the chart has bars')
      // Readable at a glance (issue #18): axis titles, a pattern per code, totals on the bars.
      assert.equal(await chart.locator('[data-axis="x"]').textContent(), 'Week commencing (Monday)')
      assert.equal(await chart.locator('[data-axis="y"]').textContent(), 'Rejected rows')
      assert.equal(await chart.locator('pattern').count(), 6)
      assert.ok(await chart.locator('[data-bar-total]').count() > 0)
      // The weekly table is not squeezed: no cell wraps its date, the table fits the page.
      const tableBox = await page.locator('[data-testid="rejections-table"]').boundingBox()
      assert.ok(tableBox.width > 700, `table ${tableBox.width}px wide`)
      const table = page.locator('[data-testid="rejections-table"]')
      assert.match(await table.locator('caption').innerText(), /Rejected rows per week/)
      assert.equal(await table.locator('tbody tr').count(), 12)
      await checkPage(page, 'admin-09-data-quality')
    } finally {
      await context.close()
    }
    // Without JavaScript: the same page (axe needs a script, so it ran above).
    const plain = await newPage(browser, { javaScriptEnabled: false })
    try {
      // Waits for the inbox to load first: going on while it loads would cut its request short.
      await signInAsLa(plain.page, server.base)
      await goFromInbox(plain.page, `${server.base}/la/data-quality`)
      assert.ok(await plain.page.locator('svg[data-testid="rejections-chart"] rect').count() > 0)
      await checkPage(plain.page, 'admin-10-data-quality-no-javascript', { axe: false })
    } finally {
      await plain.context.close()
    }
  })

  it('gives a clinician the 403 page for the admin pages', async () => {
    const { context, page } = await newPage(browser)
    try {
      await signIn(page, server.base, 'demo.clinician')
      await page.waitForURL((u) => u.pathname === '/lookup')
      await page.waitForLoadState('load')
      const response = await page.goto(`${server.base}/admin/users`)
      assert.equal(response.status(), 403)
      assert.equal(await page.locator('h1').innerText(), 'You cannot use this page')
      assert.equal(await page.locator('[data-testid="users-table"]').count(), 0)
      await checkPage(page, 'admin-11-forbidden')
    } finally {
      await context.close()
    }
  })

  it('kept NHS numbers out of the server log', () => {
    const log = server.log()
    assert.ok(!log.includes(SHARED_CHILD), 'an NHS number reached the server log')
    assert.ok(!log.includes(grouped(SHARED_CHILD)), 'an NHS number reached the server log')
  })
})
