// A real OpenID Connect provider shaped like NHS CIS2 Authentication, for the browser test of
// cpis's `[cis2]` support: the certified `oidc-provider` package (as support/oidc_provider.mjs)
// on a free loopback port, serving discovery, its JWKS, userinfo, and two confidential clients:
//
// - `cpis-web`, cpis's own web sign-in (authorization code + PKCE, discovered by cpis);
// - `clinical-system`, a clinical system that signs the same person in and calls cpis's FHIR API
//   with the access token it gets for cpis (resource indicator `apiAudience`): a JWT signed by
//   the provider's current key, as the CP-IS guide's "CIS2 separate authentication and
//   authorisation" pattern has it.
//
// Claims are CIS2's: `nhsid_nrbac_roles` (objects with `person_roleid`, `org_code`, `role_code`
// `S…:G…:R…`, `activity_codes` `B…`) under the `nationalrbacaccess` scope, `selected_roleid`
// under `selectedrole`, `nhsid_useruid` and `name` under `profile`, and `id_assurance_level` /
// `authentication_assurance_level` with `openid`. As at CIS2 the ID token of the web sign-in
// carries only `sub` and the assurance levels: the roles are read from the userinfo endpoint
// (cpis does so with the access token). The access tokens for cpis's API carry them all.
//
// rotateKey() makes the provider sign with a new key and publish only that one: the old key is
// removed from its JWKS, as a provider retiring a key does.
import { createPrivateKey, generateKeyPairSync, randomBytes, sign as rsaSign } from 'node:crypto'
import http from 'node:http'
import { loadPackage } from './oidc_provider.mjs'

export const CPIS_CLIENT_ID = 'cpis-web'
export const CLINICAL_SYSTEM_ID = 'clinical-system'
/** The resource server scope of cpis's API at the provider. */
export const API_SCOPE = 'cpis'

/** An RS256 signing key with a fresh `kid`: the private JWK. */
function signingKey () {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const kid = `cis2-test-${randomBytes(6).toString('hex')}`
  return { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }
}

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A compact RS256 JWS over `claims` with the private JWK `jwk` (node:crypto only). */
export function signJwt (claims, jwk, header = {}) {
  const input = `${b64url({ alg: 'RS256', typ: 'JWT', kid: jwk.kid, ...header })}.${b64url(claims)}`
  const signature = rsaSign('sha256', Buffer.from(input), createPrivateKey({ key: jwk, format: 'jwk' }))
  return `${input}.${signature.toString('base64url')}`
}

/** The header and claims of a compact JWS (not verified: for the test to look at). */
export function decodeJwt (jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')))
  return { header, payload }
}

/**
 * Starts the provider. `people` maps a login name (the `sub`) to its CIS2 claims (`name`,
 * `nhsid_useruid`, `selected_roleid`, `nhsid_nrbac_roles`, `id_assurance_level`,
 * `authentication_assurance_level`); any other login is refused. `cpisRedirectUri` and
 * `clinicalSystemRedirectUri` are the two clients' callbacks; `apiAudience` is the resource
 * indicator (and JWT audience) of cpis's API. Resolves to { issuer, jwksUri, cpisClientSecret,
 * clinicalSystemSecret, userinfoCalls(), kid(), rotateKey(), forgeToken(claims), stop() }.
 */
export async function startCis2Provider ({ cpisRedirectUri, clinicalSystemRedirectUri, apiAudience, people }) {
  const { default: Provider, errors, interactionPolicy } = await loadPackage()
  const server = http.createServer()
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const issuer = `http://127.0.0.1:${server.address().port}`
  const cpisClientSecret = randomBytes(24).toString('base64url')
  const clinicalSystemSecret = randomBytes(24).toString('base64url')
  // Kept across a rotation (a new Provider instance): the package's in-memory store is shared by
  // its instances, so with the same cookie keys the person's session and grants survive it.
  const cookieKeys = [randomBytes(32).toString('base64url')]

  const person = (sub) => Object.hasOwn(people, sub) ? { ...people[sub], sub } : undefined

  function makeProvider (jwk) {
    // As support/oidc_provider.mjs: an unknown login gets the login form again, never a code.
    const policy = interactionPolicy.base()
    policy.get('login').checks.add(new interactionPolicy.Check(
      'unknown_account', 'the login names no account',
      (ctx) => ctx.oidc.session.accountId !== undefined && ctx.oidc.account === undefined
    ))
    const provider = new Provider(issuer, {
      clients: [{
        client_id: CPIS_CLIENT_ID,
        client_secret: cpisClientSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [cpisRedirectUri],
        id_token_signed_response_alg: 'RS256'
      }, {
        client_id: CLINICAL_SYSTEM_ID,
        client_secret: clinicalSystemSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [clinicalSystemRedirectUri],
        id_token_signed_response_alg: 'RS256'
      }],
      jwks: { keys: [jwk] },
      async findAccount (_ctx, sub) {
        const claims = person(sub)
        if (!claims) return undefined
        return { accountId: sub, claims: async () => claims }
      },
      // CIS2's scopes and the claims each releases (to userinfo; conformIdTokenClaims, the
      // default, keeps the code flow's ID token to the `openid` ones).
      claims: {
        openid: ['sub', 'id_assurance_level', 'authentication_assurance_level'],
        profile: ['name', 'nhsid_useruid'],
        nationalrbacaccess: ['nhsid_nrbac_roles'],
        selectedrole: ['selected_roleid']
      },
      features: {
        // The clinical system asks for a token for cpis's API (RFC 8707): a JWT with cpis's API
        // as audience, signed by the provider's current key.
        resourceIndicators: {
          enabled: true,
          defaultResource: async (_ctx, _client, oneOf) => oneOf,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx, indicator) => {
            if (indicator !== apiAudience) throw new errors.InvalidTarget()
            return { scope: API_SCOPE, audience: apiAudience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } }
          }
        }
      },
      // The person's CIS2 claims in the access token for cpis's API (cpis reads the selected
      // role from the token; the userinfo endpoint answers only tokens without an audience).
      async extraTokenClaims (_ctx, token) {
        if (token.kind !== 'AccessToken' || !token.resourceServer) return undefined
        const { sub, ...claims } = person(token.accountId) ?? {}
        return claims
      },
      pkce: { required: () => true },
      interactions: { policy },
      cookies: {
        names: { session: 'idp_session', interaction: 'idp_interaction', resume: 'idp_interaction_resume' },
        keys: cookieKeys
      },
      ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 }
    })
    provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err))
    // No Google font on a closed network (see support/oidc_provider.mjs).
    provider.use(async (ctx, next) => {
      await next()
      if (typeof ctx.body === 'string' && ctx.response.is('html')) {
        ctx.body = ctx.body.replace(/@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g, '')
      }
    })
    return provider.callback()
  }

  let key = signingKey()
  let handle = makeProvider(key)
  // Calls to the userinfo endpoint (the package's default route, /me), for the test to see.
  let userinfoCalls = 0
  server.on('request', (req, res) => {
    if (new URL(req.url, issuer).pathname === '/me') userinfoCalls++
    handle(req, res)
  })

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    cpisClientSecret,
    clinicalSystemSecret,
    /** How many requests the userinfo endpoint has had. */
    userinfoCalls: () => userinfoCalls,
    /** The `kid` the provider signs with now. */
    kid: () => key.kid,
    /** Signs with a new key from now on; the old one leaves the JWKS. Resolves to the new kid. */
    rotateKey () {
      key = signingKey()
      handle = makeProvider(key)
      return key.kid
    },
    /** A token with `claims`, well formed but signed by a key the provider never published. */
    forgeToken (claims) {
      return signJwt(claims, { ...signingKey(), kid: `never-published-${randomBytes(4).toString('hex')}` })
    },
    stop () {
      return new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
    }
  }
}
