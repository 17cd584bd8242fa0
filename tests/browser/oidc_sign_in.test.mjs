// Signing in to the web pages through an OpenID Connect identity provider (issue #7: "OIDC
// redirect when configured"): a real provider (oidc-provider, support/oidc_provider.mjs) on
// loopback, cpis configured with its JWKS, issuer and client registration. The person's
// organisation, role and permissions come from the provider's ID token; cpis refuses a forged
// callback, unusable claims and a disabled account, with one message on the sign-in page.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { checkPage, launchBrowser, newPage, signIn } from './support/browser.mjs'
import { SHARED_CHILD, grouped } from './support/demo.mjs'
import { signInAtProvider, startIdentityProvider } from './support/oidc_provider.mjs'
import { prepareServer } from './support/server.mjs'

const LABEL = 'Sign in with the test identity provider'
const FAILED = 'Sign-in with your identity provider did not complete. Try again, or contact your service desk.'

const ACCOUNTS = {
  'idp.clinician': { name: 'Dr Idp Clinician', role: 'Clinician', ods: 'RDEMO01', cpis_permissions: 'cpis:view-notify' },
  // A token cpis cannot use: a permission it does not know.
  'idp.unusable': { name: 'Idp Unusable', role: 'Clinician', ods: 'RDEMO01', cpis_permissions: 'cpis:everything' }
}

const toml = (s) => JSON.stringify(s)

describe('sign-in through an OpenID Connect identity provider', () => {
  let server, idp, browser

  before(async () => {
    const prepared = await prepareServer()
    idp = await startIdentityProvider({ redirectUri: `${prepared.base}/sign-in/oidc/callback`, accounts: ACCOUNTS })
    server = await prepared.start({
      config: (base, dir) => {
        const jwks = path.join(dir, 'idp-jwks.json')
        writeFileSync(jwks, idp.jwksJson)
        return [
          '[oidc]',
          `jwks_file = ${toml(jwks)}`,
          `issuer = ${toml(idp.issuer)}`,
          'audience = "cpis-api"',
          '[oidc.sign_in]',
          `authorization_endpoint = ${toml(idp.authorizationEndpoint)}`,
          `token_endpoint = ${toml(idp.tokenEndpoint)}`,
          `client_id = ${toml(idp.clientId)}`,
          `client_secret = ${toml(idp.clientSecret)}`,
          `redirect_uri = ${toml(`${base}/sign-in/oidc/callback`)}`,
          `label = ${toml(LABEL)}`,
          ''
        ].join('\n')
      }
    })
    browser = await launchBrowser()
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
    await idp?.stop()
  })

  /** From cpis's sign-in page through the provider's pages and back; resolves on cpis's page. */
  async function viaProvider (page, login) {
    await page.goto(`${server.base}/sign-in`)
    await Promise.all([page.waitForURL((u) => u.origin === idp.issuer), page.getByRole('link', { name: LABEL }).click()])
    await signInAtProvider(page, login)
    assert.equal(new URL(page.url()).origin, server.base, 'back at cpis')
  }

  it('offers the provider on the sign-in page, beside local accounts', async () => {
    const { context, page } = await newPage(browser)
    try {
      await page.goto(`${server.base}/sign-in`)
      const button = page.getByRole('link', { name: LABEL })
      assert.equal(await button.getAttribute('href'), '/sign-in/oidc')
      assert.ok(await page.getByLabel('Username').isVisible(), 'local sign-in is still there')
      await checkPage(page, 'oidc-01-sign-in-page')
    } finally {
      await context.close()
    }
  })

  it('signs a clinician in with the claims of the ID token, who can then look up a child', async () => {
    const { context, page } = await newPage(browser)
    try {
      await viaProvider(page, 'idp.clinician')
      // "You are signed in" refreshes to the clinician's home page.
      await page.waitForURL((u) => u.pathname === '/lookup')
      await page.waitForLoadState('load')
      assert.match(await page.locator('.nhsuk-header__account').innerText(), /Dr Idp Clinician/)
      await checkPage(page, 'oidc-02-signed-in')
      await page.getByLabel("Look up a child's NHS number").fill(grouped(SHARED_CHILD))
      await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Look up' }).click()])
      assert.ok(await page.locator('[data-testid="flag-panel"]').count() > 0, 'the flag is shown')
      // The pending sign-in cookie is gone; the session cookie is the usual strict one. (Cookies
      // ignore ports: the provider's, on the same loopback host, are in the jar too.)
      const cookies = (await context.cookies(server.base)).filter((c) => c.name.startsWith('cpis_'))
      assert.deepEqual(cookies.map((c) => c.name).sort(), ['cpis_session'])
      const session = cookies.find((c) => c.name === 'cpis_session')
      assert.equal(session.httpOnly, true)
      assert.equal(session.sameSite, 'Strict')
    } finally {
      await context.close()
    }
  })

  it('refuses an ID token whose claims cpis cannot use', async () => {
    const { context, page } = await newPage(browser)
    try {
      await viaProvider(page, 'idp.unusable')
      await page.waitForLoadState('load')
      assert.equal(new URL(page.url()).pathname, '/sign-in/oidc/callback')
      assert.match(await page.locator('.nhsuk-error-summary').innerText(), new RegExp(FAILED.replace(/[.]/g, '\\.')))
      assert.equal(await page.locator('.nhsuk-header__account').count(), 0, 'not signed in')
      await checkPage(page, 'oidc-03-unusable-claims')
    } finally {
      await context.close()
    }
  })

  it('refuses a callback this browser did not start (forged state, no pending sign-in)', async () => {
    const { context, page } = await newPage(browser)
    try {
      const response = await page.goto(`${server.base}/sign-in/oidc/callback?code=stolen&state=guessed`)
      assert.equal(response.status(), 401)
      assert.match(await page.locator('.nhsuk-error-summary').innerText(), /did not complete/)
      await page.goto(`${server.base}/lookup`)
      assert.equal(new URL(page.url()).pathname, '/sign-in', 'still signed out')
      await checkPage(page, 'oidc-04-forged-callback')
    } finally {
      await context.close()
    }
  })

  it('keeps a person an administrator disabled out, though the provider still vouches for them', async () => {
    const admin = await newPage(browser)
    try {
      await signIn(admin.page, server.base, 'demo.admin')
      await admin.page.goto(`${server.base}/admin/users`)
      // The users page is paged: find the account by searching for it.
      await admin.page.getByLabel('Search accounts').fill('idp.clinician')
      await Promise.all([admin.page.waitForLoadState('load'), admin.page.locator('[data-testid="users-search"]').getByRole('button', { name: 'Search' }).click()])
      const row = admin.page.locator('tr[data-username="oidc:idp.clinician"]')
      assert.match(await row.innerText(), /Dr Idp Clinician/, 'created at first sign-in')
      assert.match(await row.innerText(), /cpis:view-notify/)
      // Disabling asks first.
      await Promise.all([admin.page.waitForLoadState('load'), row.getByRole('button', { name: 'Disable oidc:idp.clinician' }).click()])
      await Promise.all([admin.page.waitForLoadState('load'), admin.page.getByRole('button', { name: 'Yes, disable oidc:idp.clinician' }).click()])
      assert.match(await admin.page.locator('[data-testid="user-changed"]').innerText(), /is now disabled/)

      const { context, page } = await newPage(browser)
      try {
        await viaProvider(page, 'idp.clinician')
        await page.waitForLoadState('load')
        assert.match(await page.locator('.nhsuk-error-summary').innerText(), /did not complete/)
        assert.equal(await page.locator('.nhsuk-header__account').count(), 0, 'not signed in')
      } finally {
        await context.close()
      }
    } finally {
      await admin.context.close()
    }
  })
})
