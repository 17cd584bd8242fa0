// Headless Debian Chromium driven by playwright-core (never `npx playwright install`: the
// machine's own /usr/bin/chromium is used), plus the checks every page gets: the NHS.UK styles are
// really applied, axe-core finds no WCAG 2 A/AA violation, and a screenshot is saved.
import AxeBuilder from '@axe-core/playwright'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../../..')

export const DEMO_PASSWORD = 'cpis-demo-password'
export const artifactsDir = process.env.CPIS_BROWSER_ARTIFACTS || path.join(root, 'target/browser-artifacts')
mkdirSync(artifactsDir, { recursive: true })

// The network is closed: without these flags Chromium keeps trying to reach Google's services.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

/** A fresh browser (Playwright gives every launch its own temporary profile). */
export function launchBrowser () {
  return chromium.launch({
    executablePath: process.env.CPIS_CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true
  })
}

/**
 * A new page in its own context (own cookies). Console errors and CSP violations are collected
 * in `page.problems`: the pages must produce none.
 */
export async function newPage (browser, { javaScriptEnabled = true } = {}) {
  const context = await browser.newContext({ javaScriptEnabled, viewport: { width: 1024, height: 768 } })
  context.setDefaultTimeout(15_000)
  const page = await context.newPage()
  page.problems = []
  page.on('console', (msg) => {
    // Error pages and forms with errors are answered 4xx on purpose: Chromium logs each such
    // document; failed subresources are caught by the 'response' handler below instead.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource: the server responded')) {
      page.problems.push(`console: ${msg.text()}`)
    }
  })
  page.on('response', (r) => {
    if (r.request().resourceType() !== 'document' && r.status() >= 400) {
      page.problems.push(`${r.status()} for ${r.url()}`)
    }
  })
  page.on('requestfailed', (r) => {
    // A favicon still loading when the test navigates on is cut short by the navigation, not broken.
    if (/\/images\/favicon\.(svg|ico)$/.test(r.url()) && r.failure()?.errorText === 'net::ERR_ABORTED') return
    page.problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`)
  })
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`))
  return { context, page }
}

/** Signs in through the form; resolves once the next page has loaded. */
export async function signIn (page, base, username, password = DEMO_PASSWORD) {
  await page.goto(`${base}/sign-in`)
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  // The form post always loads a new document (the next page, or the form with its errors): wait
  // for that navigation, then its load, so the caller never moves on while it is still loading.
  await Promise.all([page.waitForEvent('framenavigated'), page.getByRole('button', { name: 'Sign in' }).click()])
  await page.waitForLoadState('load')
}

/** Fails unless the NHS.UK stylesheet is applied (the header is NHS blue, #005eb8). */
export async function assertNhsStyles (page) {
  const background = await page.locator('header.nhsuk-header').evaluate((el) => getComputedStyle(el).backgroundColor)
  if (background !== 'rgb(0, 94, 184)') {
    throw new Error(`the NHS.UK styles are not applied: header background is ${background} (was nhsuk-frontend embedded? see docs/WEB.md)`)
  }
  const version = await page.locator('meta[name="cpis-nhsuk-frontend"]').getAttribute('content')
  if (!/^10\./.test(version)) throw new Error(`nhsuk-frontend 10.x is not embedded: ${version}`)
}

/** Runs axe-core (WCAG 2.0/2.1/2.2 A and AA) and fails on any violation. */
export async function assertAccessible (page, name) {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'])
    .analyze()
  if (results.violations.length > 0) {
    const lines = results.violations.map((v) =>
      `${v.id} (${v.impact}): ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary}`).join('\n')}`)
    throw new Error(`${name}: ${results.violations.length} accessibility violation(s):\n${lines.join('\n')}`)
  }
}

export async function screenshot (page, name) {
  await page.screenshot({ path: path.join(artifactsDir, `${name}.png`), fullPage: true })
}

/** A phone's width in CSS pixels (docs/WEB.md, "Small screens"). */
export const PHONE_WIDTH = 390

/**
 * The page as a phone shows it, PHONE_WIDTH wide: it must not scroll sideways
 * (`document.documentElement.scrollWidth <= window.innerWidth`; a wide table scrolls inside its
 * own box instead), and axe finds no violation there either. A screenshot is saved as
 * `<name>-390.png`. The viewport is put back as it was afterwards.
 */
export async function assertFitsPhone (page, name, { axe = true } = {}) {
  const before = page.viewportSize()
  await page.setViewportSize({ width: PHONE_WIDTH, height: 844 })
  try {
    // The NHS.UK header moves navigation links that no longer fit into its "More" menu on
    // resize: give its script a moment (a page without JavaScript has nothing to wait for).
    await page.waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth, null, { timeout: 2000 })
      .catch(() => {})
    const { scrollWidth, innerWidth, culprits } = await page.evaluate(() => {
      const width = window.innerWidth
      // The outermost elements that reach past the right edge (outside boxes that scroll
      // themselves), to name in the failure.
      const culprits = []
      const past = (el) => el.getBoundingClientRect().right > width + 0.5
      const scrolls = (el) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX)
      for (const el of document.body.querySelectorAll('*')) {
        let inScroller = false
        for (let p = el.parentElement; p && !inScroller; p = p.parentElement) inScroller = scrolls(p)
        if (inScroller) continue
        const r = el.getBoundingClientRect()
        if (past(el) && !(el.parentElement && past(el.parentElement))) {
          culprits.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : ''} (right edge ${Math.round(r.right)})`)
        }
      }
      return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, culprits: culprits.slice(0, 5) }
    })
    await screenshot(page, `${name}-${PHONE_WIDTH}`)
    if (scrollWidth > innerWidth) {
      throw new Error(`${name}: at ${PHONE_WIDTH}px wide the page scrolls sideways (scrollWidth ${scrollWidth} > innerWidth ${innerWidth}): ${culprits.join('; ')}`)
    }
    if (axe) await assertAccessible(page, `${name} at ${PHONE_WIDTH}px`)
  } finally {
    if (before) await page.setViewportSize(before)
  }
}

/**
 * What every page gets: NHS.UK styles, no console errors, axe, and a screenshot, at the desktop
 * width and again at a phone's (assertFitsPhone). axe runs as a script in the page, so pages in a
 * context without JavaScript skip it (`{ axe: false }`): their server-rendered HTML is
 * axe-checked in a JavaScript context as well (see the tests).
 */
export async function checkPage (page, name, { axe = true } = {}) {
  await screenshot(page, name)
  await assertNhsStyles(page)
  if (axe) await assertAccessible(page, name)
  await assertFitsPhone(page, name, { axe })
  const problems = page.problems.splice(0)
  if (problems.length > 0) throw new Error(`${name}: ${problems.join('\n')}`)
}
