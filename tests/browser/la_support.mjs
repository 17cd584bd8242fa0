// Helpers the local authority browser tests share (la_*.test.mjs), on top of ./support/.
import { signIn } from './support/browser.mjs'

export const LA_USER = 'demo.coventry'

/**
 * Requests a navigation cuts short, which are how they should end, not page defects: the inbox's
 * live stream (a request that never ends) and a favicon still loading when the test moves on
 * (net::ERR_ABORTED). Only those entries are dropped from the page's problems; anything else
 * still fails `checkPage`.
 */
export function dropNavigationAborts (page) {
  const cutShort = /^request failed: \S+(\/api\/v1\/notifications\/stream\S*|\/images\/favicon\.(svg|ico)) net::ERR_ABORTED$/
  page.problems = page.problems.filter((p) => !cutShort.test(p))
}

/** Signs in as Coventry and waits for the inbox, where an LA user lands. */
export async function signInAsLa (page, base) {
  await signIn(page, base, LA_USER)
  await page.waitForURL((u) => u.pathname === '/la/notifications')
  await page.waitForLoadState('load')
}

/** Goes to a page, forgetting the inbox stream the previous page had open. */
export async function goFromInbox (page, url) {
  const response = await page.goto(url)
  dropNavigationAborts(page)
  return response
}
