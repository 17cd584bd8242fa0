// A real OpenID Connect provider for the browser tests of cpis's OIDC sign-in: the certified
// `oidc-provider` package (panva/node-oidc-provider v9) on a free loopback port, with one
// confidential client (cpis-web), PKCE S256 required, ID tokens signed RS256 with a key made at
// start, and the accounts the test names. Its pages are the package's own development
// interactions (a login form, then a consent page): signInAtProvider completes them.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import http from 'node:http'

export const CLIENT_ID = 'cpis-web'

// The package warns on import (it wants Node 22; the tests run on Debian's Node 20, which it
// works on) and on start (development interactions and the in-memory store, both what a test
// wants). These known notices are dropped; every other warning, and every error, still shows.
const KNOWN_NOTICES = [
  'oidc-provider WARNING: Unsupported runtime',
  'oidc-provider WARNING: a quick start development-only feature devInteractions is enabled',
  'oidc-provider WARNING: a quick start development-only in-memory adapter is used'
]

let loaded
export function loadPackage () {
  if (!loaded) {
    const warn = console.warn
    console.warn = (...args) => {
      if (typeof args[0] === 'string' && KNOWN_NOTICES.some((n) => args[0].startsWith(n))) return
      warn.apply(console, args)
    }
    // Imported here, not at the top, so that the import-time notice meets the filter above.
    loaded = import('oidc-provider')
  }
  return loaded
}

/** An RS256 signing key: the private JWK for the provider, the public JWKS JSON for cpis. */
function signingKey () {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = `cpis-test-${randomBytes(6).toString('hex')}`
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }
  const { kty, n, e } = jwk
  return { jwk, jwksJson: JSON.stringify({ keys: [{ kty, n, e, kid, alg: 'RS256', use: 'sig' }] }) }
}

/**
 * Starts the provider. `accounts` maps a login name to its claims (the login name is `sub`);
 * any other login is refused. Resolves to
 * { issuer, clientId, clientSecret, jwksJson, authorizationEndpoint, tokenEndpoint, stop() }.
 */
export async function startIdentityProvider ({ redirectUri, accounts }) {
  const { default: Provider, interactionPolicy } = await loadPackage()
  // Listening first gives the port, and so the issuer, before the provider is made.
  const server = http.createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const issuer = `http://127.0.0.1:${server.address().port}`
  const clientSecret = randomBytes(24).toString('base64url')
  const { jwk, jwksJson } = signingKey()

  // The development login form takes any name and ignores the password; for a name findAccount
  // does not know, v9 then fails inside its consent check (a server_error and its "oops! something
  // went wrong" page). This extra check asks for the login again instead whenever the signed-in
  // name is no account: an unknown login gets the login form back, never a code.
  const policy = interactionPolicy.base()
  policy.get('login').checks.add(new interactionPolicy.Check(
    'unknown_account', 'the login names no account',
    (ctx) => ctx.oidc.session.accountId !== undefined && ctx.oidc.account === undefined
  ))

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      id_token_signed_response_alg: 'RS256'
    }],
    jwks: { keys: [jwk] },
    async findAccount (_ctx, sub) {
      if (!Object.hasOwn(accounts, sub)) return undefined
      return { accountId: sub, claims: async () => ({ ...accounts[sub], sub }) }
    },
    // `scope=openid profile` releases the cpis claims, and (conformIdTokenClaims off) they go in
    // the ID token itself even though the code flow also issues an access token: cpis reads the
    // ID token only, never the userinfo endpoint.
    claims: { openid: ['sub'], profile: ['name', 'role', 'ods', 'cpis_permissions'] },
    conformIdTokenClaims: false,
    // PKCE for the confidential client too (the package only demands it of public clients);
    // S256 is the one method the package supports.
    pkce: { required: () => true },
    interactions: { policy },
    // Consent is not granted automatically: the development consent page ("Continue") is shown on
    // the first sign-in of a browser context, as a real provider would, and signInAtProvider
    // accepts it. The provider's own cookies are renamed so that they can never be mistaken for
    // cpis's: cookies are per host, not per port, and both run on 127.0.0.1.
    cookies: {
      names: { session: 'idp_session', interaction: 'idp_interaction', resume: 'idp_interaction_resume' },
      keys: [randomBytes(32).toString('base64url')]
    },
    // Set only so that the package does not print a notice for each default it uses.
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 }
  })
  // The package reports its own failures as events, not on the console: show them.
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err))
  // Every page of the package @imports a Google font: the network is closed, and the failed
  // request would count as a page problem (support/browser.mjs), so its pages go without it.
  provider.use(async (ctx, next) => {
    await next()
    if (typeof ctx.body === 'string' && ctx.response.is('html')) {
      ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '')
    }
  })
  server.on('request', provider.callback())

  return {
    issuer,
    clientId: CLIENT_ID,
    clientSecret,
    jwksJson,
    authorizationEndpoint: `${issuer}/auth`,
    tokenEndpoint: `${issuer}/token`,
    stop () {
      return new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}

/**
 * Completes the provider's pages on `page`, which must show its login form: fills the login (and
 * a password, which the development form requires but does not check), submits, accepts the
 * consent page when it is shown, and resolves once the browser has left the provider (redirected
 * to the client's redirect_uri) and that page has loaded. Rejects when the provider shows its
 * login form again, i.e. it refused the login (an unknown account).
 */
export async function signInAtProvider (page, login) {
  const provider = new URL(page.url()).origin
  const atProvider = () => new URL(page.url()).origin === provider
  await page.locator('input[name="login"]').fill(login)
  await page.locator('input[name="password"]').fill('any-password')
  await Promise.all([page.waitForEvent('framenavigated'), page.getByRole('button', { name: 'Sign-in' }).click()])
  await page.waitForLoadState('load')
  if (atProvider() && await page.locator('input[name="prompt"][value="consent"]').count() > 0) {
    await Promise.all([page.waitForEvent('framenavigated'), page.getByRole('button', { name: 'Continue' }).click()])
    await page.waitForLoadState('load')
  }
  if (atProvider()) {
    if (await page.locator('input[name="prompt"][value="login"]').count() > 0) {
      throw new Error(`the identity provider refused the login ${JSON.stringify(login)}`)
    }
    throw new Error(`still at the identity provider after signing in: ${page.url()}\n${(await page.locator('body').innerText()).slice(0, 2000)}`)
  }
}
