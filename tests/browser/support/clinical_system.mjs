// A clinical system for the CIS2 browser test: a confidential OpenID Connect client on loopback
// that signs a person in at the identity provider (authorization code + PKCE S256, `state`,
// `nonce`, and the resource indicator of cpis's API), exchanges the code server to server (HTTP
// Basic with its secret) and keeps the tokens, which the test then sends to cpis's FHIR API as
// `Authorization: Bearer` (the CP-IS guide's "CIS2 separate authentication and authorisation").
import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import { decodeJwt } from './cis2_provider.mjs'

const SCOPE = 'openid profile nationalrbacaccess selectedrole'
const random = () => randomBytes(32).toString('base64url')
const form = (s) => encodeURIComponent(s).replace(/%20/g, '+')

/**
 * Listens first (the provider needs the redirect URI): resolves to { redirectUri,
 * configure({ issuer, clientId, clientSecret, resource, apiScope }), signIn(page, login), stop() }.
 */
export async function startClinicalSystem () {
  const pending = new Map()
  let provider
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, redirectUri)
    const page = (status, text) => {
      res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' })
      res.end(`<!doctype html><html lang="en"><head><title>Clinical system</title><link rel="icon" href="data:,"></head><body><main><p>${text}</p></main></body></html>`)
    }
    if (url.pathname !== '/callback') return page(404, 'Not found')
    const sign = pending.get(url.searchParams.get('state'))
    if (!sign) return page(400, 'No sign-in is pending with this state')
    pending.delete(url.searchParams.get('state'))
    if (url.searchParams.has('iss') && url.searchParams.get('iss') !== provider.issuer) {
      sign.reject(new Error(`callback from another issuer: ${url.search}`))
      return page(400, 'Wrong issuer')
    }
    if (!url.searchParams.get('code')) {
      sign.reject(new Error(`the provider refused: ${url.search}`))
      return page(400, 'Refused')
    }
    exchange(url.searchParams.get('code'), sign.verifier).then((tokens) => {
      const { payload } = decodeJwt(tokens.id_token)
      if (payload.nonce !== sign.nonce) throw new Error('the ID token carries another nonce')
      sign.resolve({ accessToken: tokens.access_token, idToken: tokens.id_token, scope: tokens.scope })
      page(200, 'Signed in to the clinical system')
    }).catch((err) => {
      sign.reject(err)
      page(500, 'Sign-in failed')
    })
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const redirectUri = `http://127.0.0.1:${server.address().port}/callback`

  async function exchange (code, verifier) {
    const basic = Buffer.from(`${form(provider.clientId)}:${form(provider.clientSecret)}`).toString('base64')
    const r = await fetch(`${provider.issuer}/token`, {
      method: 'POST',
      headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, resource: provider.resource
      })
    })
    const body = await r.json()
    if (r.status !== 200) throw new Error(`token endpoint answered ${r.status}: ${JSON.stringify(body)}`)
    return body
  }

  return {
    redirectUri,
    configure (p) { provider = p },
    /**
     * Signs `login` in on `page` (whose browser context may already have a session at the
     * provider: then no login form is shown) and resolves to { accessToken, idToken, scope }.
     */
    async signIn (page, login) {
      const state = random()
      const nonce = random()
      const verifier = random()
      const tokens = new Promise((resolve, reject) => pending.set(state, { verifier, nonce, resolve, reject }))
      tokens.catch(() => {}) // awaited below; a failure must not be an unhandled rejection first
      const auth = new URL(`${provider.issuer}/auth`)
      for (const [k, v] of Object.entries({
        client_id: provider.clientId,
        response_type: 'code',
        redirect_uri: redirectUri,
        scope: `${SCOPE} ${provider.apiScope}`,
        resource: provider.resource,
        state,
        nonce,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256'
      })) auth.searchParams.set(k, v)
      const back = () => page.url().startsWith(redirectUri)
      await page.goto(auth.href)
      if (!back() && await page.locator('input[name="login"]').count() > 0) {
        await page.locator('input[name="login"]').fill(login)
        await page.locator('input[name="password"]').fill('any-password')
        await Promise.all([page.waitForEvent('framenavigated'), page.getByRole('button', { name: 'Sign-in' }).click()])
        await page.waitForLoadState('load')
      }
      if (!back() && await page.locator('input[name="prompt"][value="consent"]').count() > 0) {
        await Promise.all([page.waitForEvent('framenavigated'), page.getByRole('button', { name: 'Continue' }).click()])
        await page.waitForLoadState('load')
      }
      if (!back()) throw new Error(`still at the identity provider: ${page.url()}\n${(await page.locator('body').innerText()).slice(0, 2000)}`)
      return tokens
    },
    stop () {
      return new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}
