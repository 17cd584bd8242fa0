// The clinician journey in a real browser (issue #7, phase 1): sign in, NHS number validation with
// and without JavaScript, a lookup with CP-IS information, a lookup without, sign out.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage, signIn } from './support/browser.mjs'
import { SHARED_CHILD, SHARED_CHILD_LAS, demoRecord, grouped, localAuthority, unknownValidNhsNumber } from './support/demo.mjs'
import { startServer } from './support/server.mjs'

const CLINICIAN = 'demo.clinician'
const BAD_CHECK_DIGIT = '943 476 5918' // 943 476 5919 is valid
const CHECK_DIGIT_MESSAGE = 'This is not a valid NHS number. Check it and enter it again'

/** A tap target at least 44 by 44 CSS pixels (WCAG 2.5.5). */
async function assertTapTarget (locator) {
  const box = await locator.boundingBox()
  assert.ok(box && box.width >= 44 && box.height >= 44, `tap target ${JSON.stringify(box)} is under 44×44`)
}

describe('clinician journey', () => {
  let server, browser, page

  before(async () => {
    server = await startServer()
    browser = await launchBrowser()
    ;({ page } = await newPage(browser))
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('sends a signed-out visitor to the sign-in page', async () => {
    await page.goto(`${server.base}/lookup`)
    assert.equal(new URL(page.url()).pathname, '/sign-in')
    assert.equal(new URL(page.url()).searchParams.get('return_to'), '/lookup')
    assert.equal(await page.title(), 'Sign in – CP-IS – NHS')
    const nav = await page.locator('a.nhsuk-header__navigation-link').allTextContents()
    assert.deepEqual(nav.map((t) => t.trim()), ['Sign in'])
    await checkPage(page, '01-sign-in')
  })

  it('shows the error summary, focused, for a wrong password', async () => {
    await signIn(page, server.base, CLINICIAN, 'not-the-password')
    const summary = page.locator('.nhsuk-error-summary')
    await summary.waitFor()
    assert.match(await summary.innerText(), /Enter a correct username and password/)
    assert.equal(await page.title(), 'Error: Sign in – CP-IS – NHS')
    assert.ok(await summary.evaluate((el) => el.contains(document.activeElement)), 'focus is on the error summary')
    await checkPage(page, '02-sign-in-wrong-password')
  })

  it('lands a clinician on the lookup page', async () => {
    await signIn(page, server.base, CLINICIAN)
    assert.equal(new URL(page.url()).pathname, '/lookup')
    assert.equal(await page.title(), 'Look up a child – CP-IS – NHS')
    const input = page.getByLabel("Look up a child's NHS number")
    assert.equal(await input.getAttribute('inputmode'), 'numeric')
    assert.match(await page.locator('#nhs-number-hint').innerText(), /10 digits, for example 943 476 5919/)
    assert.match(await page.locator('#nhs-number-hint').innerText(), /For an unborn child, enter the mother's NHS number/)
    const nav = await page.locator('a.nhsuk-header__navigation-link').allTextContents()
    assert.deepEqual(nav.map((t) => t.trim()), ['Look up a child'])
    assert.match(await page.locator('.nhsuk-header__account').innerText(), /Dr Demo Clinician/)
    await checkPage(page, '03-lookup')
  })

  it('checks the NHS number in the browser without a round trip', async () => {
    const posts = []
    const onRequest = (r) => { if (r.method() === 'POST') posts.push(r.url()) }
    page.on('request', onRequest)
    await page.getByLabel("Look up a child's NHS number").fill(BAD_CHECK_DIGIT)
    await page.getByRole('button', { name: 'Look up' }).click()
    const summary = page.locator('.nhsuk-error-summary')
    await summary.waitFor()
    assert.equal((await summary.locator('a').innerText()).trim(), CHECK_DIGIT_MESSAGE)
    assert.equal(await summary.locator('a').getAttribute('href'), '#nhs-number')
    assert.match(await page.locator('#nhs-number-error').innerText(), new RegExp(CHECK_DIGIT_MESSAGE))
    assert.equal(await page.title(), 'Error: Look up a child – CP-IS – NHS')
    assert.ok(await summary.evaluate((el) => el.contains(document.activeElement)), 'focus is on the error summary')
    await checkPage(page, '04-lookup-error-javascript')

    await page.getByLabel("Look up a child's NHS number").fill('12345')
    await page.getByRole('button', { name: 'Look up' }).click()
    await page.locator('.nhsuk-error-summary a', { hasText: 'NHS number must be 10 digits' }).waitFor()
    assert.equal(await page.locator('.nhsuk-error-summary').count(), 1, 'one error summary')
    page.off('request', onRequest)
    assert.deepEqual(posts, [], 'nothing was sent to the server')
  })

  it('gives the same errors without JavaScript, from the server', async () => {
    const { context, page: plain } = await newPage(browser, { javaScriptEnabled: false })
    try {
      await signIn(plain, server.base, CLINICIAN)
      assert.equal(new URL(plain.url()).pathname, '/lookup')
      for (const [value, message] of [
        [BAD_CHECK_DIGIT, CHECK_DIGIT_MESSAGE],
        ['12345', 'NHS number must be 10 digits'],
        ['', "Enter the child's NHS number"]
      ]) {
        await plain.getByLabel("Look up a child's NHS number").fill(value)
        await Promise.all([plain.waitForLoadState('load'), plain.getByRole('button', { name: 'Look up' }).click()])
        assert.equal((await plain.locator('.nhsuk-error-summary a').innerText()).trim(), message, value)
        assert.equal(new URL(plain.url()).search, '', 'the number is not in the URL')
      }
      await plain.getByLabel("Look up a child's NHS number").fill(BAD_CHECK_DIGIT)
      await Promise.all([plain.waitForLoadState('load'), plain.getByRole('button', { name: 'Look up' }).click()])
      assert.equal(await plain.title(), 'Error: Look up a child – CP-IS – NHS')
      await checkPage(plain, '05-lookup-error-no-javascript', { axe: false })
    } finally {
      await context.close()
    }
  })

  it('renders the server-side error page accessibly (the no-JavaScript path, axe-checked)', async () => {
    await page.goto(`${server.base}/lookup`)
    await page.getByLabel("Look up a child's NHS number").fill(BAD_CHECK_DIGIT)
    // form.submit() skips the submit event, so the JavaScript check: the server answers.
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/lookup'),
      page.locator('form[action="/lookup"]').evaluate((form) => form.submit())
    ])
    await page.waitForLoadState('load')
    assert.equal((await page.locator('.nhsuk-error-summary a').innerText()).trim(), CHECK_DIGIT_MESSAGE)
    assert.ok(await page.locator('.nhsuk-error-summary').evaluate((el) => el.contains(document.activeElement)), 'focus is on the error summary')
    await checkPage(page, '05b-lookup-error-server')
  })

  it('shows the flag panels of both local authorities and says they were notified', async () => {
    await page.goto(`${server.base}/lookup`)
    await page.getByLabel("Look up a child's NHS number").fill(grouped(SHARED_CHILD))
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Look up' }).click()])
    assert.equal(new URL(page.url()).pathname, '/lookup')
    assert.equal(new URL(page.url()).search, '', 'the number is not in the URL')
    assert.equal(await page.title(), 'Lookup result – CP-IS – NHS')
    const panels = page.locator('[data-testid="flag-panel"]')
    assert.equal(await panels.count(), 2)
    const names = []
    for (const ods of SHARED_CHILD_LAS) {
      const la = localAuthority(ods)
      names.push(la.name)
      const panel = panels.filter({ hasText: la.name })
      assert.equal(await panel.count(), 1, la.name)
      assert.deepEqual(await panel.locator('[data-testid="plan-heading"]').allInnerTexts(), ['Child protection plan'])
      for (const phone of [la.office_hours_phone, la.edt_phone]) {
        const link = panel.getByRole('link', { name: phone })
        assert.equal(await link.getAttribute('href'), `tel:${phone.replace(/ /g, '')}`)
      }
      // The number to ring now is the panel's first link, and a large tap target.
      const first = panel.locator('a[href^="tel:"]').first()
      assert.equal(await first.getAttribute('class'), 'nhsuk-button cpis-call-now__button')
      await assertTapTarget(first)
    }
    const statement = await page.locator('[data-testid="notification-statement"]').innerText()
    assert.match(statement, /This lookup notified the local authority/)
    for (const name of names) assert.match(statement, new RegExp(name))
    assert.equal(await page.locator('table caption').innerText(), 'Recent unscheduled care (most recent first)')
    await checkPage(page, '06-lookup-result')
  })

  // Each kind of flag, at a phone's width too (checkPage): the plan stated as the heading, active
  // and ended told apart in words, the number to ring now first and at least 44 by 44 pixels.
  const FLAGS = [
    ['09-flag-cpp', 'Child protection plan', 'active', (r) => r.plan_type === 'CPP' && !r.end_date && r.sensitive === 'false'],
    ['10-flag-lac', 'Looked after child', 'active', (r) => r.plan_type === 'LAC' && !r.end_date && r.sensitive === 'false'],
    ['11-flag-ucpp', "Unborn child protection plan — this is the mother's record", 'active', (r) => r.plan_type === 'UCPP' && !r.end_date],
    ['12-flag-cpp-ended', 'Child protection plan', 'ended', (r) => r.plan_type === 'CPP' && r.end_date && r.sensitive === 'false'],
    ['13-flag-lac-ended', 'Looked after child', 'ended', (r) => r.plan_type === 'LAC' && r.end_date && r.sensitive === 'false'],
    ['14-flag-sensitive', 'Child protection plan', 'active', (r) => r.plan_type === 'CPP' && !r.end_date && r.sensitive === 'true']
  ]
  for (const [name, heading, state, match] of FLAGS) {
    it(`shows ${name.slice(3)}: "${heading}", ${state}`, async () => {
      const record = demoRecord(match)
      await page.goto(`${server.base}/lookup`)
      await page.getByLabel("Look up a child's NHS number").fill(grouped(record.nhs_number))
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Look up' }).click()])
      const panel = page.locator('[data-testid="flag-panel"]')
      assert.equal(await panel.count(), 1)
      assert.equal(await panel.getAttribute('data-state'), state)
      assert.deepEqual(await panel.locator('[data-testid="plan-heading"]').allInnerTexts(), [heading])
      const stateText = await panel.locator('[data-testid="plan-state"]').innerText()
      assert.match(stateText, state === 'active' ? /^Active since \d/ : /^Ended on \d/)
      assert.match(await panel.locator('.nhsuk-tag').innerText(), state === 'active' ? /Active/i : /Ended/i)
      const la = localAuthority('E08000026')
      const callNow = panel.locator('[data-testid="call-now"] a')
      const code = await panel.locator('[data-testid="call-now"]').getAttribute('data-call')
      const [now, other] = code === 'office' ? [la.office_hours_phone, la.edt_phone] : [la.edt_phone, la.office_hours_phone]
      assert.equal(await callNow.getAttribute('href'), `tel:${now.replace(/ /g, '')}`)
      assert.deepEqual(await panel.locator('a[href^="tel:"]').evaluateAll((as) => as.map((a) => a.getAttribute('href'))),
        [`tel:${now.replace(/ /g, '')}`, `tel:${other.replace(/ /g, '')}`], 'the number to ring now comes first')
      await assertTapTarget(callNow)
      const main = await page.locator('main').innerText()
      if (record.plan_type === 'UCPP') {
        assert.doesNotMatch(main, /\b(the|this) child\b/i, 'the mother is not called the child')
        assert.match(stateText, /Baby expected/)
      }
      if (record.sensitive === 'true') assert.doesNotMatch(main, /Emergency Department \(/, 'where a sensitive child was seen is withheld')
      await checkPage(page, name)
      await page.setViewportSize({ width: 390, height: 844 })
      try {
        await assertTapTarget(callNow)
      } finally {
        await page.setViewportSize({ width: 1024, height: 768 })
      }
    })
  }

  it('says plainly when there is no CP-IS information', async () => {
    await page.goto(`${server.base}/lookup`)
    await page.getByLabel("Look up a child's NHS number").fill(unknownValidNhsNumber())
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Look up' }).click()])
    assert.equal(await page.locator('h1').innerText(), 'No CP-IS information for this NHS number')
    assert.equal(await page.locator('[data-testid="flag-panel"]').count(), 0)
    assert.match(await page.locator('[data-testid="notification-statement"]').innerText(), /No local authority was notified/)
    await checkPage(page, '07-lookup-no-information')
  })

  it('signs out', async () => {
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Sign out' }).click()])
    assert.equal(new URL(page.url()).pathname, '/sign-in')
    assert.match(await page.locator('main').innerText(), /You have signed out/)
    await checkPage(page, '08-signed-out')
    await page.goto(`${server.base}/lookup`)
    assert.equal(new URL(page.url()).pathname, '/sign-in', 'the session is over')
  })

  it('kept NHS numbers out of the server log', () => {
    const log = server.log()
    assert.ok(log.length > 0, 'the server wrote a log')
    assert.ok(!log.includes(SHARED_CHILD), 'an NHS number reached the server log')
    assert.ok(!log.includes(grouped(SHARED_CHILD)), 'an NHS number reached the server log')
  })
})
