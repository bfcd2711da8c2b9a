// Time units of the failure log: counters are kept per minute, ages are given in days.

export const MINUTE_MS = 60_000
export const DAY_MS = 86_400_000

/** The start of the minute holding `t` (epoch ms). */
export const minuteOf = (t: number): number => Math.floor(t / MINUTE_MS) * MINUTE_MS

export const iso = (ms: number): string => new Date(ms).toISOString()
