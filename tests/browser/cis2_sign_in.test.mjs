// NHS CIS2 with real parts (issue #14, "Tests with real parts"): cpis configured with `[cis2]` and
// `[cis2.sign_in]` against a real OpenID Connect provider issuing CIS2-shaped claims
// (support/cis2_provider.mjs: the `oidc-provider` package on loopback, discovery and JWKS over
// HTTP). A clinician signs in through the browser with their selected role at an emergency
// department and looks a child up; a clinical system signs the same person in at the provider and
// calls cpis's FHIR API with the access token (a JWT); the access history names the selected
// role and the SDS user. Midway the provider rotates its signing key: cpis fetches the new key
// once and accepts the new tokens, and refuses the retired key and a key never published. A
// person whose selected role carries neither B0107 nor B0170 is refused, though another of their
// roles carries B0107 (docs/SECURITY.md, "NHS CIS2").
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEMO_PASSWORD, checkPage, launchBrowser, newPage } from './support/browser.mjs'
import { API_SCOPE, CLINICAL_SYSTEM_ID, CPIS_CLIENT_ID, decodeJwt, startCis2Provider } from './support/cis2_provider.mjs'
import { startClinicalSystem } from './support/clinical_system.mjs'
import { SHARED_CHILD, SHARED_CHILD_LAS, grouped } from './support/demo.mjs'
import { signInAtProvider } from './support/oidc_provider.mjs'
import { prepareServer } from './support/server.mjs'

const LABEL = 'Sign in with NHS Care Identity' // [cis2.sign_in]'s default label
const FAILED = 'Sign-in with your identity provider did not complete. Try again, or contact your service desk.'
const NHS_NUMBER = 'https://fhir.nhs.uk/Id/nhs-number'
const SDS_ROLE_PROFILE = 'https://fhir.nhs.uk/Id/sds-role-profile-id'
const SDS_USER = 'https://fhir.nhs.uk/Id/sds-user-id'
const ED = { ods: 'RDEMO01', name: 'Northfield General Hospital Emergency Department' } // demo/care_settings.csv

// CIS2 users: the login (the provider's `sub`) is the SDS user id, as at CIS2.
const CLINICIAN = '555254242106'
const CLINICIAN_ROLE = '555254243107'
const NO_CODES = '555254242999'
const NO_CODES_ROLE = '555254243901'

const PEOPLE = {
  [CLINICIAN]: {
    name: 'Dr Ada Smartcard',
    nhsid_useruid: CLINICIAN,
    id_assurance_level: 3,
    authentication_assurance_level: 3,
    selected_roleid: CLINICIAN_ROLE,
    nhsid_nrbac_roles: [
      // A role the person holds but did not select: it counts for nothing.
      { person_orgid: '555254240100', person_roleid: '555254243100', org_code: 'RGP01', role_name: '"Admin & Clerical":"Receptionist"', role_code: 'S8002:G8003:R8009', activity_codes: ['B0264'] },
      { person_orgid: '555254240101', person_roleid: CLINICIAN_ROLE, org_code: ED.ods, role_name: '"Clinical":"Clinical Provision":"Clinical Practitioner Access Role"', role_code: 'S8000:G8000:R8000', activity_codes: ['B0380', 'B0107'] }
    ]
  },
  [NO_CODES]: {
    name: 'Bo Receptionist',
    nhsid_useruid: NO_CODES,
    id_assurance_level: 3,
    authentication_assurance_level: 3,
    selected_roleid: NO_CODES_ROLE,
    nhsid_nrbac_roles: [
      { person_orgid: '555254240200', person_roleid: NO_CODES_ROLE, org_code: ED.ods, role_name: '"Admin & Clerical":"Receptionist"', role_code: 'S8002:G8003:R8009', activity_codes: ['B0264', 'B0380'] },
      // B0107 in a role they did not select: not theirs to use now.
      { person_orgid: '555254240201', person_roleid: '555254243902', org_code: ED.ods, role_name: '"Clinical":"Clinical Provision"', role_code: 'S8000:G8000:R8000', activity_codes: ['B0107'] }
    ]
  }
}

const toml = (s) => JSON.stringify(s)
const byPath = (path) => (u) => new URL(u).pathname === path

describe('NHS CIS2: web sign-in with the selected role, bearer tokens on FHIR, key rotation', () => {
  let server, idp, clinical, browser, apiAudience
  // The clinician's browser, kept across the steps: signed in at cpis and at the provider.
  let clinician
  let firstToken // the clinical system's access token, signed with the provider's first key

  before(async () => {
    const prepared = await prepareServer()
    apiAudience = `${prepared.base}/fhir/R4`
    clinical = await startClinicalSystem()
    idp = await startCis2Provider({
      cpisRedirectUri: `${prepared.base}/sign-in/oidc/callback`,
      clinicalSystemRedirectUri: clinical.redirectUri,
      apiAudience,
      people: PEOPLE
    })
    clinical.configure({ issuer: idp.issuer, clientId: CLINICAL_SYSTEM_ID, clientSecret: idp.clinicalSystemSecret, resource: apiAudience, apiScope: API_SCOPE })
    server = await prepared.start({
      config: (base) => [
        '[cis2]',
        `issuer = ${toml(idp.issuer)}`,
        `client_id = ${toml(CPIS_CLIENT_ID)}`,
        `audience = ${toml(apiAudience)}`,
        'allow_http_loopback = true',
        '[cis2.sign_in]',
        `client_secret = ${toml(idp.cpisClientSecret)}`,
        `redirect_uri = ${toml(`${base}/sign-in/oidc/callback`)}`,
        ''
      ].join('\n')
    })
    browser = await launchBrowser()
  })

  after(async () => {
    await clinician?.context.close()
    await browser?.close()
    await server?.stop()
    await idp?.stop()
    await clinical?.stop()
  })

  /** From cpis's sign-in page through the provider's pages and back to cpis. */
  async function viaProvider (page, login) {
    await page.goto(`${server.base}/sign-in`)
    await Promise.all([page.waitForURL((u) => u.origin === idp.issuer), page.getByRole('link', { name: LABEL }).click()])
    await signInAtProvider(page, login)
    assert.equal(new URL(page.url()).origin, server.base, 'back at cpis')
  }

  async function fhir (path, token) {
    const r = await fetch(`${server.base}/fhir/R4/${path}`, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/fhir+json' }
    })
    return { status: r.status, type: r.headers.get('content-type'), authenticate: r.headers.get('www-authenticate'), body: await r.json() }
  }

  const search = (resource) => `${resource}?patient:identifier=${encodeURIComponent(`${NHS_NUMBER}|${SHARED_CHILD}`)}`
  const resources = (bundle, type) => (bundle.entry ?? []).map((e) => e.resource).filter((r) => r.resourceType === type)

  async function careTeamsWith (token) {
    const r = await fhir(search('CareTeam'), token)
    assert.equal(r.status, 200, JSON.stringify(r.body))
    assert.match(r.type, /^application\/fhir\+json/)
    const teams = resources(r.body, 'CareTeam')
    assert.equal(teams.length, SHARED_CHILD_LAS.length, 'one CareTeam per local authority')
    const text = JSON.stringify(r.body)
    for (const la of SHARED_CHILD_LAS) assert.ok(text.includes(la), `the CareTeams name ${la}`)
  }

  function assertRefused (r, status) {
    assert.equal(r.status, status, JSON.stringify(r.body))
    assert.match(r.type, /^application\/fhir\+json/)
    assert.equal(r.body.resourceType, 'OperationOutcome')
    assert.equal(r.body.issue?.[0]?.severity, 'error')
    assert.ok(r.body.issue[0].details.coding.some((c) => c.code === 'ACCESS_DENIED'), JSON.stringify(r.body))
    if (status === 401) assert.equal(r.authenticate, 'Bearer')
  }

  it('signs a clinician in with their selected CIS2 role at an emergency department, who looks up a child', async () => {
    clinician = await newPage(browser)
    const { page } = clinician
    await page.goto(`${server.base}/sign-in`)
    assert.equal(await page.getByRole('link', { name: LABEL }).getAttribute('href'), '/sign-in/oidc')
    await checkPage(page, 'cis2-01-sign-in-page')

    await viaProvider(page, CLINICIAN)
    // As at CIS2, the ID token carries no roles: cpis read them from userinfo with the access token.
    assert.equal(idp.userinfoCalls(), 1, 'cpis asked the userinfo endpoint for the roles')
    // "You are signed in" refreshes to the clinician's home page.
    await page.waitForURL(byPath('/lookup'))
    await page.waitForLoadState('load')
    // The organisation is the selected role's org_code, an emergency department in the directory.
    const account = await page.locator('.nhsuk-header__account').innerText()
    assert.match(account, /Dr Ada Smartcard/)
    assert.match(account, new RegExp(`${ED.ods}|${ED.name}`))
    assert.match(await page.locator('.nhsuk-inset-text').innerText(), new RegExp(`will be told the child, or for an unborn child the mother, was seen at ${ED.name}`),
      'B0107 at an unscheduled setting: lookups notify')
    await checkPage(page, 'cis2-02-signed-in')

    await page.getByLabel("Look up a child's NHS number").fill(grouped(SHARED_CHILD))
    await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Look up' }).click()])
    assert.equal(await page.locator('[data-testid="flag-panel"]').count(), SHARED_CHILD_LAS.length, 'the flag is shown')
    assert.match(await page.locator('[data-testid="notification-statement"]').innerText(), /This lookup notified the local authority/)
    await checkPage(page, 'cis2-03-lookup-result')
  })

  it('accepts the access token a clinical system got for the same person as a FHIR bearer token', async () => {
    const tokens = await clinical.signIn(clinician.page, CLINICIAN)
    firstToken = tokens.accessToken
    const { header, payload } = decodeJwt(firstToken)
    assert.equal(header.kid, idp.kid(), 'signed with the provider\'s current key')
    assert.equal(payload.aud, apiAudience)
    assert.equal(payload.client_id, CLINICAL_SYSTEM_ID)
    assert.equal(payload.selected_roleid, CLINICIAN_ROLE)
    assert.ok(Array.isArray(payload.nhsid_nrbac_roles), 'CIS2 roles in the token')

    await careTeamsWith(firstToken)

    // The access history: the web lookup and this one, each by the selected role of the SDS user:
    // one PractitionerRole, however the person signed in (a web session or a bearer token).
    const r = await fhir(search('AuditEvent'), firstToken)
    assert.equal(r.status, 200, JSON.stringify(r.body))
    const roles = resources(r.body, 'PractitionerRole').filter((pr) =>
      (pr.identifier ?? []).some((i) => i.system === SDS_ROLE_PROFILE && i.value === CLINICIAN_ROLE))
    assert.equal(roles.length, 1, `one PractitionerRole with the selected role profile id: ${JSON.stringify(r.body)}`)
    for (const role of roles) {
      assert.deepEqual(role.identifier, [{ system: SDS_ROLE_PROFILE, value: CLINICIAN_ROLE }])
      assert.deepEqual(role.practitioner.identifier, { system: SDS_USER, value: CLINICIAN })
      assert.equal(role.practitioner.display, 'Dr Ada Smartcard')
      assert.equal(role.organization.identifier.value, ED.ods)
      assert.ok(role.code.some((c) => c.coding.some((k) => k.code === 'R8000')), 'the job role code of the selected role')
    }
    const ours = new Set(roles.map((role) => `PractitionerRole/${role.id}`))
    const events = resources(r.body, 'AuditEvent').filter((ae) => ae.agent.some((a) => ours.has(a.who?.reference)))
    assert.equal(events.length, 2, 'the web lookup and the FHIR lookup')
  })

  it('follows the provider\'s key rotation: the new key is fetched once, retired and unknown keys are refused', async () => {
    const oldKid = idp.kid()
    const newKid = idp.rotateKey()
    const published = await (await fetch(idp.jwksUri)).json()
    assert.deepEqual(published.keys.map((k) => k.kid), [newKid], 'the old key left the provider\'s JWKS')

    const refetches = () => (server.log().match(/identity provider keys refetched/g) ?? []).length
    assert.equal(refetches(), 0)
    // The clinical system signs the person in again (single sign-on: no page at the provider).
    const { accessToken } = await clinical.signIn(clinician.page, CLINICIAN)
    assert.equal(decodeJwt(accessToken).header.kid, newKid)
    await careTeamsWith(accessToken)
    assert.equal(refetches(), 1, 'one refetch for the new kid')
    await careTeamsWith(accessToken)
    assert.equal(refetches(), 1, 'then the key is cached')

    // The token signed with the retired key, still unexpired: refused now that cpis has the new set.
    assert.equal(decodeJwt(firstToken).header.kid, oldKid)
    assertRefused(await fhir(search('CareTeam'), firstToken), 401)
    // A well-formed token with the person's claims under a key the provider never published.
    const { payload } = decodeJwt(accessToken)
    assertRefused(await fhir(search('CareTeam'), idp.forgeToken(payload)), 401)
    assert.equal(refetches(), 1, 'unknown keys do not make cpis hammer the provider')

    // The web session is cpis's own: it is not touched by the rotation.
    await clinician.page.goto(`${server.base}/lookup`)
    assert.equal(new URL(clinician.page.url()).pathname, '/lookup')
  })

  it('refuses a person whose selected role has neither B0107 nor B0170, and audits it', async () => {
    const { context, page } = await newPage(browser)
    try {
      await viaProvider(page, NO_CODES)
      await page.waitForLoadState('load')
      assert.equal(new URL(page.url()).pathname, '/sign-in/oidc/callback')
      assert.match(await page.locator('.nhsuk-error-summary').innerText(), new RegExp(FAILED.replace(/[.]/g, '\\.')))
      assert.equal(await page.locator('.nhsuk-header__account').count(), 0, 'not signed in')
      await checkPage(page, 'cis2-04-no-cp-is-activity')
      await page.goto(`${server.base}/lookup`)
      assert.equal(new URL(page.url()).pathname, '/sign-in', 'still signed out')

      // Their token from the clinical system authenticates, but looks nobody up.
      const { accessToken } = await clinical.signIn(page, NO_CODES)
      assertRefused(await fhir(search('CareTeam'), accessToken), 403)
      assertRefused(await fhir(search('AuditEvent'), accessToken), 403)
    } finally {
      await context.close()
    }

    // The audit trail, as the demo auditor reads it through the API.
    const login = await fetch(`${server.base}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'demo.auditor', password: DEMO_PASSWORD })
    })
    assert.equal(login.status, 200)
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).find((c) => c.startsWith('cpis_session='))
    const audit = async (query) => {
      const r = await fetch(`${server.base}/api/v1/audit?${new URLSearchParams({ ...query, limit: '100' })}`, { headers: { Cookie: cookie } })
      assert.equal(r.status, 200)
      return (await r.json()).entries
    }
    const signIns = (await audit({ action: 'auth.login' })).filter((e) => e.actor.id === `oidc:${NO_CODES}`)
    assert.deepEqual(signIns.map((e) => [e.outcome, e.detail]),
      [['denied', `oidc: NHS CIS2 selected role ${NO_CODES_ROLE} grants neither B0107 nor B0170`]])
    const lookups = await audit({ user: `jwt:${NO_CODES}` })
    assert.deepEqual(lookups.map((e) => [e.action, e.outcome]).sort(), [['lookup', 'denied'], ['lookup.history', 'denied']])
    for (const e of lookups) assert.match(e.detail, /needs cpis:view-notify or cpis:view-silent/)
    // The retired and the never-published key, refused at the edge.
    const bearers = await audit({ action: 'auth.bearer' })
    assert.deepEqual(bearers.map((e) => e.outcome), ['denied', 'denied'])
  })
})
