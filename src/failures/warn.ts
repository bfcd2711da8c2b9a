// The failure log's warnings: each problem is logged at most once per 10 s, with how many happened meanwhile.
import type { Logger } from '../contracts/logger.ts'

export type Warn = (what: string, obj: object) => void

export function rateLimitedWarn(log: Logger | undefined, now: () => number, everyMs = 10_000): Warn {
  const lastWarned = new Map<string, { at: number; suppressed: number }>()
  return (what, obj) => {
    const t = now()
    const w = lastWarned.get(what)
    if (w && t - w.at < everyMs) {
      w.suppressed++
      return
    }
    lastWarned.set(what, { at: t, suppressed: 0 })
    log?.warn({ ...obj, suppressedSinceLast: w?.suppressed ?? 0 }, what)
  }
}
