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
    const acked = page.locator('tbody[data-inbox-rows] tr', { hasText: grouped(SHARED_CHILD) }).first()
    assert.match(await acked.innerText(), /Acknowledged/)
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
})
