// The local authority inbox in a real browser (issue #7): a lookup at an emergency department
// arrives in Coventry's open inbox live, without a reload (server-sent events), is announced in
// the aria-live region, and is acknowledged; without JavaScript the page is right after a reload
// and "Acknowledge selected" works.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage } from './support/browser.mjs'
import { SHARED_CHILD, grouped } from './support/demo.mjs'
import { startServer } from './support/server.mjs'
import { dropNavigationAborts, signInAsLa } from './la_support.mjs'

const COVENTRY_API = 'Bearer demo-E08000026'
const ED_API = 'Bearer demo-RDEMO01'

/** A notifying lookup by the demo emergency department, through the FHIR API. */
async function edLookup (base, nhs) {
  const url = `${base}/fhir/R4/CareTeam?patient:identifier=${encodeURIComponent(`https://fhir.nhs.uk/Id/nhs-number|${nhs}`)}`
  const r = await fetch(url, { headers: { Authorization: ED_API, IsUnscheduledAccessEvent: 'true' }, signal: AbortSignal.timeout(10_000) })
  assert.equal(r.status, 200, await r.text())
}

/** Coventry's access notifications about one child, through the API. */
async function apiNotifications (base, nhs) {
  const r = await fetch(`${base}/api/v1/notifications?limit=1000`, { headers: { Authorization: COVENTRY_API } })
  assert.equal(r.status, 200)
  return (await r.json()).notifications.filter((n) => n.kind === 'access' && n.child?.nhs_number === nhs)
}

describe('local authority notification inbox', () => {
  let server, browser

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('shows a notification live, announces it, and acknowledges it', async () => {
    const { page, context } = await newPage(browser)
    await signInAsLa(page, server.base)
    assert.equal(await page.title(), 'Notifications – CP-IS – NHS')
    const nav = (await page.locator('a.nhsuk-header__navigation-link').allTextContents()).map((t) => t.trim())
    for (const item of ['Notifications', 'Upload a file', 'Records']) assert.ok(nav.includes(item), `${item} in ${nav}`)
    await checkPage(page, 'la-01-inbox')

    // Proof there is no reload: this survives only while the same document stays.
    await page.evaluate(() => { window.cpisSameDocument = true })
    const stream = page.waitForResponse((r) => r.url().includes('/api/v1/notifications/stream'), { timeout: 10_000 }).catch(() => null)
    await stream
    await edLookup(server.base, SHARED_CHILD)
    const row = page.locator('tr.cpis-new-row', { hasText: grouped(SHARED_CHILD) })
    await row.waitFor({ timeout: 10_000 })
    assert.match(await row.innerText(), /Ivy Campbell/)
    assert.match(await row.innerText(), /Child seen/)
    assert.match(await row.innerText(), /Emergency department/)
    assert.equal(await page.evaluate(() => window.cpisSameDocument), true, 'the page was not reloaded')
    const live = page.locator('[data-inbox-live]')
    assert.equal(await live.getAttribute('aria-live'), 'polite')
    assert.match(await live.innerText(), /Ivy Campbell was seen at .*Emergency department/)
    assert.equal(await page.locator('tbody[data-inbox-rows] tr').first().getAttribute('class'), 'nhsuk-table__row cpis-new-row', 'newest at the top')
    await checkPage(page, 'la-02-inbox-live-notification')

    const [notification] = await apiNotifications(server.base, SHARED_CHILD)
    assert.equal(notification.acknowledged_at, null)
    await Promise.all([
      page.waitForURL(/acknowledged=1/),
      row.getByRole('button', { name: /^Acknowledge/ }).click()
    ])
    assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /1 notification acknowledged/)
    // The work queue shows what is still to do: the acknowledged item has left it…
    const ackedRow = `tbody[data-inbox-rows] tr[data-seq="${notification.cursor}"]`
    assert.equal(await page.locator(ackedRow).count(), 0)
    // …and shows, acknowledged, without the "only unacknowledged" filter.
    await page.goto(`${server.base}/la/notifications?filtered=1`)
    const acked = page.locator(ackedRow)
    assert.match(await acked.innerText(), /Acknowledged/)
    assert.match(await acked.innerText(), /Known, no action/)
    assert.equal(await acked.getByRole('button', { name: /^Acknowledge/ }).count(), 0)
    const [after] = await apiNotifications(server.base, SHARED_CHILD)
    assert.equal(after.id, notification.id)
    assert.ok(after.acknowledged_at, 'acknowledged in the store')
    dropNavigationAborts(page)
    await checkPage(page, 'la-03-inbox-acknowledged')
    await context.close()
  })

  it('works without JavaScript: a reload shows the notification, "Acknowledge selected" acknowledges it', async () => {
    const { page, context } = await newPage(browser, { javaScriptEnabled: false })
    page.setDefaultTimeout(15_000)
    await signInAsLa(page, server.base)
    await edLookup(server.base, SHARED_CHILD)
    await page.reload()
    dropNavigationAborts(page) // the sign-in page's favicon may still have been loading
    const row = page.locator('tbody[data-inbox-rows] tr').first()
    assert.match(await row.innerText(), /Ivy Campbell/)
    assert.doesNotMatch(await row.innerText(), /Acknowledged/)
    await checkPage(page, 'la-04-inbox-no-javascript', { axe: false }) // axe needs JavaScript: the same page is checked above

    // Nothing selected: the error summary.
    await page.getByRole('button', { name: 'Acknowledge selected' }).click()
    assert.match(await page.locator('.nhsuk-error-summary').innerText(), /Select the notifications to acknowledge/)
    assert.equal(await page.title(), 'Error: Notifications – CP-IS – NHS')

    await page.locator('tbody[data-inbox-rows] tr').first().locator('input[type="checkbox"]').check()
    await page.getByRole('button', { name: 'Acknowledge selected' }).click()
    assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /1 notification acknowledged/)
    const unacked = (await apiNotifications(server.base, SHARED_CHILD)).filter((n) => !n.acknowledged_at)
    assert.deepEqual(unacked, [], 'every notification about the child is acknowledged')
    await checkPage(page, 'la-05-inbox-acknowledged-selected', { axe: false })
    await context.close()
  })

  it('works as a queue: filter, collapsed repeats, select all, bulk acknowledge with an outcome, on a phone', async () => {
    const { page, context } = await newPage(browser)
    await page.setViewportSize({ width: 390, height: 844 })
    await signInAsLa(page, server.base)
    // Two lookups of the same child at the same setting: one work item.
    await edLookup(server.base, SHARED_CHILD)
    await edLookup(server.base, SHARED_CHILD)
    const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)

    // Filter by the child's NHS number.
    await page.getByText('Filter notifications').click()
    await page.getByLabel('NHS number').fill(SHARED_CHILD)
    await Promise.all([page.waitForURL(/nhs_number=/), page.getByRole('button', { name: 'Apply filters' }).click()])
    dropNavigationAborts(page)
    const rows = page.locator('tbody[data-inbox-rows] tr')
    assert.equal(await rows.count(), 1, 'the repeats are one item')
    const item = rows.first()
    assert.match(await item.innerText(), /Looked up 2 times/)
    assert.equal(await item.locator('.cpis-repeat-times li').count(), 2, 'each time listed')
    assert.match(await item.innerText(), /Looked up by /)
    assert.ok(await fits(), 'no sideways scrolling at 390 px (filtered queue)')
    await checkPage(page, 'la-06-inbox-queue-phone')

    // Select all, one outcome and note for the lot.
    await page.getByLabel('Select all on this page').check()
    assert.equal(await page.locator('[data-inbox-select]:checked').count(), await page.locator('[data-inbox-select]').count())
    await page.getByLabel('Outcome').selectOption('referred-to-mash')
    await page.getByLabel('Note (optional)').fill('Discussed with the MASH duty social worker')
    await Promise.all([page.waitForURL(/acknowledged=2/), page.getByRole('button', { name: 'Acknowledge selected' }).click()])
    dropNavigationAborts(page)
    assert.match(await page.locator('.nhsuk-notification-banner').innerText(), /2 notifications acknowledged/)
    assert.match(page.url(), /nhs_number=/, 'back to the same filters')
    assert.ok(await fits(), 'no sideways scrolling at 390 px (acknowledged)')
    await checkPage(page, 'la-07-inbox-bulk-acknowledged-phone')
    const acked = (await apiNotifications(server.base, SHARED_CHILD)).slice(-2)
    for (const n of acked) {
      assert.equal(n.outcome, 'referred-to-mash')
      assert.equal(n.note, 'Discussed with the MASH duty social worker')
      assert.ok(n.acknowledged_by?.name, 'who acknowledged')
    }
    await context.close()
  })
})
