// Starts `cpis serve --demo` (the binary named by CPIS_BIN) on a free loopback port with a fresh
// SQLite database, like tests/python/test_fhir_api.py does, and stops it afterwards.
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

const STARTUP_MS = 60_000

/**
 * Reserves a free loopback port: resolves to { port, release() }. The port stays bound until
 * release(), so that nothing started meanwhile (an identity provider on port 0) can be given it.
 */
function reservePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      srv.unref() // a server prepared but never started must not keep the test process alive
      const { port } = srv.address()
      resolve({ port, release: () => new Promise((resolve) => srv.close(() => resolve())) })
    })
  })
}

async function ready (base) {
  try {
    const r = await fetch(`${base}/readyz`)
    return r.status === 200
  } catch {
    return false
  }
}

/**
 * Prepares a server without starting it: resolves to { base, start({ config }) }, so that a test
 * can give the base URL to something that must exist before the server starts (an identity
 * provider needs cpis's redirect URI, and cpis's configuration names the provider).
 * `config`, when given, is `(base, dir) => TOML text`: it is written to cpis.toml in the server's
 * temporary directory `dir` and passed as the global `--config` flag (before `serve`); files it
 * names (a JWKS) can be written to `dir` too, which stop() removes. start() resolves as
 * startServer does.
 */
export async function prepareServer () {
  const binary = process.env.CPIS_BIN
  if (!binary) throw new Error('CPIS_BIN must name the cpis binary (crates/cpis-cli/tests/web_browser.rs sets it)')
  const reservation = await reservePort()
  const { port } = reservation
  const base = `http://127.0.0.1:${port}`
  return {
    base,
    async start ({ config } = {}) {
      const dir = mkdtempSync(path.join(tmpdir(), 'cpis-browser-'))
      const global = []
      if (config) {
        const configPath = path.join(dir, 'cpis.toml')
        writeFileSync(configPath, config(base, dir))
        global.push('--config', configPath)
      }
      await reservation.release()
      return run(binary, dir, port, base, global)
    }
  }
}

/** Starts the server; resolves to { base, log(), stop() } once /readyz answers 200. */
export async function startServer ({ config } = {}) {
  return (await prepareServer()).start({ config })
}

async function run (binary, dir, port, base, global) {
  const logPath = path.join(dir, 'server.log')
  const logFd = openSync(logPath, 'w')
  // The server's own settings come from the command line (and the test's own cpis.toml) only,
  // never from the caller's CPIS_*.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CPIS_')))
  const args = [...global, 'serve', '--demo', '--bind', `127.0.0.1:${port}`, '--database', `sqlite://${path.join(dir, 'cpis.db')}`]
  const proc = spawn(binary, args, {
    cwd: dir, env, stdio: ['ignore', logFd, logFd]
  })
  let exited = null
  proc.on('exit', (code) => { exited = code })
  const log = () => readFileSync(logPath, 'utf8')
  const deadline = Date.now() + STARTUP_MS
  while (!(await ready(base))) {
    if (exited !== null) throw new Error(`cpis serve exited with ${exited} before ready:\n${log().slice(-4000)}`)
    if (Date.now() > deadline) {
      proc.kill()
      throw new Error(`cpis serve not ready after ${STARTUP_MS} ms:\n${log().slice(-4000)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return {
    base,
    log,
    async stop () {
      if (exited === null) {
        const done = new Promise((resolve) => proc.once('exit', resolve))
        proc.kill('SIGTERM')
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
        await done
        clearTimeout(timer)
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
