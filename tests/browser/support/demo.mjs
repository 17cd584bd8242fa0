// Facts about the bundled demo data (demo/*.csv) the tests check pages against.
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const demo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../demo')

/** The child both Coventry and Westminster hold (demo/README.md). */
export const SHARED_CHILD = '9990597634'
export const SHARED_CHILD_LAS = ['E08000026', 'E09000033']

function csv (name) {
  const [header, ...rows] = readFileSync(path.join(demo, name), 'utf8').trim().split('\n')
  const keys = header.split(',')
  return rows.map((row) => Object.fromEntries(row.split(',').map((v, i) => [keys[i], v])))
}

export function localAuthority (ods) {
  return csv('local_authorities.csv').find((row) => row.ods_code === ods)
}

function checkDigit (nine) {
  let sum = 0
  for (let i = 0; i < 9; i++) sum += Number(nine[i]) * (10 - i)
  const check = 11 - (sum % 11)
  if (check === 11) return 0
  return check === 10 ? null : check
}

/** The first valid 999-range NHS number not in the demographics index: nobody holds it. */
export function unknownValidNhsNumber () {
  const known = new Set(csv('demographics.csv').map((row) => row.nhs_number))
  for (let n = 999000000; n < 999999999; n++) {
    const check = checkDigit(String(n))
    if (check !== null && !known.has(`${n}${check}`)) return `${n}${check}`
  }
  throw new Error('no free 999 NHS number')
}

/** `9990597634` → `999 059 7634`. */
export function grouped (nhs) {
  return `${nhs.slice(0, 3)} ${nhs.slice(3, 6)} ${nhs.slice(6)}`
}

/**
 * Records of the Coventry demo upload (demo/uploads/E08000026.csv, loaded by `serve --demo`) whose
 * NHS number no other demo upload row holds, so a lookup shows that one plan: the first for which
 * `match(row)` is true (rows as objects keyed by the file's header), latest expected delivery
 * date and latest end date first, so that a plan is still shown for as long as can be.
 */
export function demoRecord (match) {
  const all = ['E06000023', 'E06000052', 'E08000026', 'E08000035', 'E09000012', 'E09000033', 'E10000016', 'E10000017']
    .flatMap((la) => csv(`uploads/${la}.csv`))
  const count = new Map()
  for (const row of all) count.set(row.nhs_number, (count.get(row.nhs_number) || 0) + 1)
  const rows = csv('uploads/E08000026.csv')
    .filter((row) => count.get(row.nhs_number) === 1)
    .sort((a, b) => (b.expected_delivery_date || '').localeCompare(a.expected_delivery_date || '') ||
      (b.end_date || '').localeCompare(a.end_date || ''))
  const found = rows.find(match)
  if (!found) throw new Error('no such demo record')
  return found
}
