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
