// Starts `cpis serve --demo` (the binary named by CPIS_BIN) on a free loopback port with a fresh
// SQLite database, like tests/python/test_fhir_api.py does, and stops it afterwards.
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'

const STARTUP_MS = 60_000

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
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

/** Starts the server; resolves to { base, log(), stop() } once /readyz answers 200. */
export async function startServer () {
  const binary = process.env.CPIS_BIN
  if (!binary) throw new Error('CPIS_BIN must name the cpis binary (crates/cpis-cli/tests/web_browser.rs sets it)')
  const dir = mkdtempSync(path.join(tmpdir(), 'cpis-browser-'))
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const logPath = path.join(dir, 'server.log')
  const logFd = openSync(logPath, 'w')
  // The server's own settings come from the command line only, never from the caller's CPIS_*.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CPIS_')))
  const proc = spawn(binary, ['serve', '--demo', '--bind', `127.0.0.1:${port}`, '--database', `sqlite://${path.join(dir, 'cpis.db')}`], {
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
