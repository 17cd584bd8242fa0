// Self-check of the test identity provider (support/oidc_provider.mjs), without cpis: a tiny
// redirect target stands in for cpis's callback, and the code flow is run by hand exactly as cpis
// must run it (PKCE S256, nonce, state, client_secret_basic), the ID token checked with
// node:crypto against the public JWKS. Not a `node --test` file: run it as
//   node tests/browser/support/oidc_provider_check.mjs
// It exits non-zero on any failure.
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto'
import http from 'node:http'
import { launchBrowser, newPage } from './browser.mjs'
import { CLIENT_ID, signInAtProvider, startIdentityProvider } from './oidc_provider.mjs'

const ACCOUNT = {
  name: 'Dr Idp Clinician', role: 'Clinician', ods: 'RDEMO01', cpis_permissions: 'cpis:view-notify'
}

const b64url = (buf) => Buffer.from(buf).toString('base64url')
const results = []
function check (name, ok, detail = '') {
  results.push({ name, ok })
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok || !detail ? '' : `: ${detail}`}`)
}

/** The redirect target: records each request's query, answers a small page. */
async function startRedirectTarget () {
  const hits = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    // Chromium asks for /favicon.ico as well: only the callback path counts.
    if (url.pathname === '/sign-in/oidc/callback') hits.push(Object.fromEntries(url.searchParams))
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end('<!doctype html><html lang="en"><title>callback</title><p>callback reached</p></html>')
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    redirectUri: `http://127.0.0.1:${server.address().port}/sign-in/oidc/callback`,
    hits,
    stop: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections() })
  }
}

function authorizationUrl (idp, redirectUri) {
  const state = b64url(randomBytes(16))
  const nonce = b64url(randomBytes(16))
  const verifier = b64url(randomBytes(32))
  const url = new URL(idp.authorizationEndpoint)
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: idp.clientId,
    redirect_uri: redirectUri,
    scope: 'openid profile',
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256'
  }).toString()
  return { url: url.href, state, nonce, verifier }
}

/** Verifies an RS256 JWT against a JWKS JSON string; returns { header, payload }. */
function verifyJwt (jwt, jwksJson) {
  const [h, p, s] = jwt.split('.')
  const header = JSON.parse(Buffer.from(h, 'base64url'))
  const payload = JSON.parse(Buffer.from(p, 'base64url'))
  if (header.alg !== 'RS256') throw new Error(`alg is ${header.alg}`)
  const jwk = JSON.parse(jwksJson).keys.find((k) => k.kid === header.kid)
  if (!jwk) throw new Error(`no key ${header.kid} in the JWKS`)
  const key = createPublicKey({ key: jwk, format: 'jwk' })
  if (!verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) {
    throw new Error('signature does not verify')
  }
  return { header, payload }
}

async function main () {
  const target = await startRedirectTarget()
  const idp = await startIdentityProvider({ redirectUri: target.redirectUri, accounts: { 'idp.clinician': ACCOUNT } })
  const browser = await launchBrowser()
  try {
    // The JWKS cpis is given holds the public key only.
    const jwks = JSON.parse(idp.jwksJson)
    check('JWKS is one public RSA key with a kid', jwks.keys.length === 1 && jwks.keys[0].kid &&
      jwks.keys[0].kty === 'RSA' && !['d', 'p', 'q', 'dp', 'dq', 'qi'].some((k) => k in jwks.keys[0]))
    const discovery = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()
    check('discovery names the same issuer and endpoints', discovery.issuer === idp.issuer &&
      discovery.authorization_endpoint === idp.authorizationEndpoint && discovery.token_endpoint === idp.tokenEndpoint)

    // A request without PKCE is refused: the provider demands it of the confidential client too.
    {
      const { url } = authorizationUrl(idp, target.redirectUri)
      const noPkce = new URL(url)
      noPkce.searchParams.delete('code_challenge')
      noPkce.searchParams.delete('code_challenge_method')
      const r = await fetch(noPkce, { redirect: 'manual' })
      const back = new URL(r.headers.get('location') ?? 'http://x/')
      check('an authorization request without PKCE is refused',
        back.searchParams.get('error') === 'invalid_request' && !back.searchParams.has('code'),
        `${r.status} ${r.headers.get('location')}`)
    }

    // An unknown login is refused: the login form comes back and no code reaches the target.
    {
      const { context, page } = await newPage(browser)
      const { url } = authorizationUrl(idp, target.redirectUri)
      await page.goto(url)
      let refused = null
      try {
        await signInAtProvider(page, 'idp.nobody')
      } catch (err) {
        refused = err
      }
      check('an unknown login is refused at the provider', /refused the login/.test(refused?.message ?? ''), refused?.message ?? 'signInAtProvider resolved')
      check('an unknown login gets no code', target.hits.length === 0, JSON.stringify(target.hits))
      await context.close()
    }

    // The full flow for a known account.
    const { context, page } = await newPage(browser)
    const { url, state, nonce, verifier } = authorizationUrl(idp, target.redirectUri)
    await page.goto(url)
    await signInAtProvider(page, 'idp.clinician')
    check('the browser ends at the redirect_uri', page.url().startsWith(`${target.redirectUri}?`), page.url())
    const hit = target.hits.at(-1) ?? {}
    check('the callback gets a code and the same state', !!hit.code && hit.state === state && hit.iss === idp.issuer, JSON.stringify(hit))
    const problems = page.problems.splice(0)
    check('no console errors or failed requests on the provider pages', problems.length === 0, problems.join('; '))
    await context.close()

    // The code is exchanged as cpis must: HTTP Basic client auth, redirect_uri and code_verifier.
    const tokenRequest = (code, codeVerifier, secret = idp.clientSecret) => fetch(idp.tokenEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(idp.clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded'
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: target.redirectUri, code_verifier: codeVerifier })
    })
    const r = await tokenRequest(hit.code, verifier)
    const tokens = await r.json()
    check('the token endpoint answers 200 with an id_token', r.status === 200 && typeof tokens.id_token === 'string', `${r.status} ${JSON.stringify(tokens)}`)
    if (tokens.id_token) {
      let verified = null
      try {
        verified = verifyJwt(tokens.id_token, idp.jwksJson)
        check('the ID token signature verifies (RS256, JWKS kid)', true)
      } catch (err) {
        check('the ID token signature verifies (RS256, JWKS kid)', false, err.message)
      }
      const claims = verified?.payload ?? JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url'))
      const now = Math.floor(Date.now() / 1000)
      check('iss, aud, sub, exp', claims.iss === idp.issuer && claims.aud === CLIENT_ID &&
        claims.sub === 'idp.clinician' && claims.exp > now, JSON.stringify(claims))
      check('nonce', claims.nonce === nonce, `${claims.nonce} != ${nonce}`)
      check('name, role, ods, cpis_permissions in the ID token',
        Object.entries(ACCOUNT).every(([k, v]) => claims[k] === v), JSON.stringify(claims))
      console.log(`     ID token claims: ${JSON.stringify(claims)}`)
    }
    const again = await tokenRequest(hit.code, verifier)
    check('the code is single-use', again.status === 400, `${again.status}`)

    // A second sign-in in a fresh context: a wrong code_verifier and a wrong secret are refused.
    {
      const { context, page } = await newPage(browser)
      const { url } = authorizationUrl(idp, target.redirectUri)
      await page.goto(url)
      await signInAtProvider(page, 'idp.clinician')
      const code = target.hits.at(-1).code
      const badSecret = await tokenRequest(code, verifier, 'wrong-secret')
      check('a wrong client secret is refused', badSecret.status === 401, `${badSecret.status}`)
      const badVerifier = await tokenRequest(code, b64url(randomBytes(32)))
      const body = await badVerifier.json()
      check('a wrong code_verifier is refused', badVerifier.status === 400 && body.error === 'invalid_grant', `${badVerifier.status} ${JSON.stringify(body)}`)
      await context.close()
    }
  } finally {
    await browser.close()
    await idp.stop()
    await target.stop()
  }
}

try {
  await main()
} catch (err) {
  check('the check ran to the end', false, err.stack)
}
const failed = results.filter((r) => !r.ok).length
console.log(`${results.length - failed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
