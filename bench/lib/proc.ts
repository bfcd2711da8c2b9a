// Process bookkeeping for the bench: every child it starts is tracked and killed on exit, error or signal.
import net from 'node:net'
import fs from 'node:fs'
import type { ChildProcess } from 'node:child_process'

const children = new Set<ChildProcess>()
/** What must be undone outside this process when the bench is stopped by a signal (onAbort) */
const undo = new Set<() => Promise<void>>()
let hooked = false
/** a signal arrived: whatever is started from now on is killed at once (the bench is on its way out) */
let aborting = false

function hook(): void {
  if (hooked) return
  hooked = true
  process.once('exit', killAll)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      aborting = true
      killAll()
      if (undo.size === 0) process.exit(130)
      // e.g. a cluster's NATS streams and PostgreSQL database: at most 10 s, then out all the same
      const all = [...undo].map((fn) => fn().catch(() => {}))
      undo.clear()
      Promise.race([Promise.all(all), sleep(10_000)]).finally(() => process.exit(130))
    })
  }
}

/** Track a child so that it is killed when the bench exits for any reason. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  hook()
  if (aborting) killAll()
  return child
}

/**
 * `fn` undoes something the bench made outside its processes (a NATS stream, a database); it runs when the bench is
 * stopped by a signal, after the children were killed. The function returned forgets it (call it once it is undone).
 */
export function onAbort(fn: () => Promise<void>): () => void {
  hook()
  undo.add(fn)
  return () => { undo.delete(fn) }
}

export function killAll(): void {
  for (const c of children) {
    try { c.kill('SIGKILL') } catch { /* already gone */ }
  }
  children.clear()
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(() => { try { child.kill('SIGKILL') } catch { /* gone */ } }, graceMs)
    child.once('exit', () => { clearTimeout(timer); resolve() })
    try { child.kill('SIGTERM') } catch { clearTimeout(timer); resolve() }
  })
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port
      srv.close(() => resolve(port))
    })
  })
}

/** VmRSS of a process in KiB, from /proc/<pid>/status (null if unreadable). */
export function rssKiB(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

/** CPU time (user+system) of a process in ms, from /proc/<pid>/stat (null if unreadable). */
export function cpuMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields[11] = utime, fields[12] = stime (clock ticks; 100 Hz on Linux)
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return null
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Poll `check` until it resolves true or `timeoutMs` passes. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`${what}: process exited (${child.exitCode ?? child.signalCode})`)
    try { if (await check()) return } catch { /* not yet */ }
    await sleep(100)
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms`)
}

/** Resolves true when a TCP connection to host:port succeeds. */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** Busy CPU time of the whole machine in ms (all cores), from /proc/stat (null if unreadable). */
export function machineBusyMs(): number | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal ...
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0)
    return busy * 10
  } catch {
    return null
  }
}
