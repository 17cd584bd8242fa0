// "Was not brought" and the evidence export in a real browser (docs/WORKFLOW.md): a GP clinician
// reports a child not brought (errors linked to their fields, the LAs told), and Coventry's
// social worker opens the child's printable access history; every page axe-checked and usable at
// 390 px wide without horizontal scrolling.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage, signIn } from './support/browser.mjs'
import { SHARED_CHILD, SHARED_CHILD_LAS, grouped, localAuthority } from './support/demo.mjs'
import { startServer } from './support/server.mjs'
import { goFromInbox, signInAsLa } from './la_support.mjs'

const PHONE = { width: 390, height: 844 }

async function assertNoSideScroll (page, what) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, inner: window.innerWidth
  }))
  assert.ok(scroll <= inner, `${what}: ${scroll}px wide in a ${inner}px window`)
}

/** Yesterday's date (UTC), as the form's three boxes. */
function yesterday () {
  const d = new Date(Date.now() - 24 * 3600 * 1000)
  return { day: String(d.getUTCDate()), month: String(d.getUTCMonth() + 1), year: String(d.getUTCFullYear()) }
}

async function notifications (base, token) {
  const out = []
  let after = ''
  for (;;) {
    const r = await fetch(`${base}/api/v1/notifications?limit=1000${after ? `&after=${after}` : ''}`, { headers: { Authorization: `Bearer ${token}` } })
    assert.equal(r.status, 200)
    const page = await r.json()
    out.push(...page.notifications)
    if (!page.more) return out
    after = page.next_cursor
  }
}

describe('was not brought and the evidence export', () => {
  let server, browser

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  for (const [label, viewport] of [['desktop', null], ['390 px', PHONE]]) {
    it(`a GP clinician reports a child not brought (${label})`, async () => {
      const { context, page } = await newPage(browser)
      try {
        if (viewport) await page.setViewportSize(viewport)
        await signIn(page, server.base, 'demo.gp')
        await page.goto(`${server.base}/was-not-brought`)
        assert.equal(await page.title(), 'Report a child not brought – CP-IS – NHS')
        if (!viewport) {
          const nav = await page.locator('a.nhsuk-header__navigation-link').allTextContents()
          assert.ok(nav.map((t) => t.trim()).includes('Report not brought'), nav.join())
        }
        await assertNoSideScroll(page, 'the form')
        await checkPage(page, `wnb-01-form-${label.replace(' ', '')}`)

        // Nothing filled in: one error per field, each linked to it, focus on the summary.
        await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Report not brought' }).click()])
        const summary = page.locator('.nhsuk-error-summary')
        await summary.waitFor()
        assert.equal(await page.title(), 'Error: Report a child not brought – CP-IS – NHS')
        const links = await summary.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')))
        assert.deepEqual(links, ['#nhs-number', '#appointment-day', '#appointment-time'])
        assert.ok(await summary.evaluate((el) => el.contains(document.activeElement)), 'focus is on the error summary')
        for (const id of ['nhs-number', 'appointment-time']) {
          const described = await page.locator(`#${id}`).getAttribute('aria-describedby')
          assert.ok(described.split(' ').includes(`${id}-error`), `${id} is described by its error`)
        }
        await summary.locator('a[href="#appointment-time"]').click()
        assert.equal(await page.evaluate(() => document.activeElement.id), 'appointment-time')
        await assertNoSideScroll(page, 'the form with errors')
        await checkPage(page, `wnb-02-errors-${label.replace(' ', '')}`)

        const before = await notifications(server.base, `demo-${SHARED_CHILD_LAS[0]}`)
        const { day, month, year } = yesterday()
        await page.getByLabel("Child's NHS number").fill(grouped(SHARED_CHILD))
        await page.getByLabel('Day').fill(day)
        await page.getByLabel('Month').fill(month)
        await page.getByLabel('Year').fill(year)
        await page.getByLabel('Time of the appointment').fill('09:30')
        await page.getByLabel('What was the appointment for? (optional)').fill('Immunisations')
        await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Report not brought' }).click()])
        await page.locator('[data-reported]').waitFor()
        const text = await page.locator('main').innerText()
        for (const la of SHARED_CHILD_LAS) assert.match(text, new RegExp(localAuthority(la).name))
        assert.equal(new URL(page.url()).search, '', 'the NHS number is not in the URL')
        await assertNoSideScroll(page, 'the confirmation')
        await checkPage(page, `wnb-03-sent-${label.replace(' ', '')}`)

        const told = (await notifications(server.base, `demo-${SHARED_CHILD_LAS[0]}`))
          .slice(before.length)
          .filter((n) => n.kind === 'was-not-brought')
        assert.equal(told.length, 1)
        assert.equal(told[0].child.nhs_number, SHARED_CHILD)
        assert.equal(told[0].appointment.description, 'Immunisations')
        assert.equal(told[0].setting.ods_code, 'RDEMO25')
      } finally {
        await context.close()
      }
    })
  }

  it('an LA opens a child\'s printable access history at 390 px', async () => {
    // An emergency department lookup puts an access in the history.
    const r = await fetch(`${server.base}/fhir/R4/CareTeam?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|${SHARED_CHILD}`, {
      headers: { Authorization: 'Bearer demo-RDEMO01', Accept: 'application/fhir+json' }
    })
    assert.equal(r.status, 200)
    const { context, page } = await newPage(browser)
    try {
      await page.setViewportSize(PHONE)
      await signInAsLa(page, server.base)
      await goFromInbox(page, `${server.base}/la/records?q=${SHARED_CHILD}`)
      await Promise.all([page.waitForLoadState('load'), page.locator(`a[href="/la/records/${SHARED_CHILD}/history"]`).click()])
      assert.equal(await page.title(), 'Access history – CP-IS – NHS')
      assert.match(await page.locator('main').innerText(), /Northfield General Hospital Emergency Department/)
      assert.ok(await page.locator(`a[href="/la/records/${SHARED_CHILD}/history.csv"]`).isVisible())
      await assertNoSideScroll(page, 'the access history')
      await checkPage(page, 'wnb-04-history-390px')
      // Printed: no header, navigation or links.
      await page.emulateMedia({ media: 'print' })
      assert.equal(await page.locator('header.nhsuk-header').isVisible(), false)
      assert.equal(await page.locator('.cpis-no-print').first().isVisible(), false)
      assert.ok(await page.locator('[data-history]').isVisible())
    } finally {
      await context.close()
    }
  })
})
