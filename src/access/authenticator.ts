// The Authenticator the broker core asks at CONNECT (src/contracts/access.ts): anonymous clients per the
// allowAnonymous setting, known MQTT users by their scrypt password record (src/access/users.ts).
// The common paths cost nothing: no username, or an unknown one while anonymous clients are allowed, are answered
// synchronously. A password check runs off the event loop and is bounded: at most `maxConcurrent` at once, at most
// `maxQueued` waiting (more: 'busy' at once), and an address with too many recent failures is refused without one
// ('throttled'). An unknown username costs the same check as a wrong password, so timing cannot tell them apart.
import type { AuthOutcome, AuthRefusal, Authenticator, Credentials } from '../contracts/access.ts'
import { dummyVerify } from './password.ts'
import { createFailureTable } from './throttle.ts'
import type { LoginRecord, MqttUserStore } from './users.ts'

export interface AuthenticatorOptions {
  users: Pick<MqttUserStore, 'loginRecord'>
  /** read at every CONNECT, so a settings change applies to the next one */
  settings: () => { allowAnonymous: boolean }
  /** password checks running at once (each uses a libuv thread and 16 MiB); default 4 */
  maxConcurrent?: number
  /** password checks waiting for a slot; past it 'busy' at once; default 256 */
  maxQueued?: number
  /** failed logins from one address within failureWindowMs after which it is 'throttled'; default 10 */
  maxFailures?: number
  /** default 60000 */
  failureWindowMs?: number
  /** addresses whose failures are remembered; past it the least recent is forgotten; default 10000 */
  maxTrackedAddresses?: number
  /** the clock of the failure window (tests) */
  now?: () => number
}

export interface BoundedAuthenticator extends Authenticator {
  /** the bounds at work: checks running and waiting, addresses with recent failures */
  stats(): { running: number; queued: number; trackedAddresses: number }
}

export const AUTH_DEFAULTS = {
  maxConcurrent: 4,
  maxQueued: 256,
  maxFailures: 10,
  failureWindowMs: 60_000,
  maxTrackedAddresses: 10_000,
} as const

const anonymous = (): AuthOutcome => ({ ok: true, username: null })

const refuse = (refusal: AuthRefusal, detail: string): AuthOutcome => ({ ok: false, refusal, detail })

/** A client-chosen name in an operator's sentence: quoted, escaped, shortened. */
const quote = (name: string) => JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name)

const seconds = (ms: number) => `${Math.ceil(ms / 1000)} s`

/** At most `maxConcurrent` jobs at once, at most `maxQueued` waiting; `tryRun` answers null when both are full. */
function createLimiter(maxConcurrent: number, maxQueued: number) {
  let running = 0
  const waiting: Array<() => void> = []
  const start = async <T>(job: () => Promise<T>): Promise<T> => {
    running++
    try {
      return await job()
    } finally {
      running--
      waiting.shift()?.()
    }
  }
  return {
    get running() {
      return running
    },
    get queued() {
      return waiting.length
    },
    tryRun<T>(job: () => Promise<T>): Promise<T> | null {
      if (running < maxConcurrent) return start(job)
      if (waiting.length >= maxQueued) return null
      return new Promise<T>((resolve, reject) => waiting.push(() => start(job).then(resolve, reject)))
    },
  }
}

export function createAuthenticator(opts: AuthenticatorOptions): BoundedAuthenticator {
  const o = {
    users: opts.users,
    settings: opts.settings,
    maxConcurrent: opts.maxConcurrent ?? AUTH_DEFAULTS.maxConcurrent,
    maxQueued: opts.maxQueued ?? AUTH_DEFAULTS.maxQueued,
    failureWindowMs: opts.failureWindowMs ?? AUTH_DEFAULTS.failureWindowMs,
  }
  const limiter = createLimiter(o.maxConcurrent, o.maxQueued)
  const failures = createFailureTable({
    maxFailures: opts.maxFailures ?? AUTH_DEFAULTS.maxFailures,
    windowMs: o.failureWindowMs,
    maxAddresses: opts.maxTrackedAddresses ?? AUTH_DEFAULTS.maxTrackedAddresses,
    now: opts.now ?? Date.now,
  })
  const notAllowed = 'anonymous clients are not allowed (setting allowAnonymous is false)'

  /** The 'throttled' refusal when `address` has too many recent failures, else null. */
  function throttled(address: string | null): AuthOutcome | null {
    if (address === null) return null
    const { forMs, failures: n } = failures.blocked(address)
    if (forMs <= 0) return null
    return refuse('throttled',
      `${n} failed attempt${n === 1 ? '' : 's'} from ${address} in the last ${seconds(o.failureWindowMs)}: refused without checking for ${seconds(forMs)} more`)
  }

  /** Never a rejection: an error is a refusal whose detail says what failed. */
  const internalError = (c: Credentials, err: unknown): AuthOutcome => {
    const who = c.username === null ? 'a client without a username' : `user ${quote(c.username)}`
    return refuse('busy', `the credentials of ${who} could not be checked (${(err as Error)?.message ?? String(err)}): refused`)
  }

  /** The password check itself, once a slot is free. */
  async function check(c: Credentials, username: string, record: LoginRecord | null): Promise<AuthOutcome> {
    // it may have waited in the queue while its address crossed the limit
    const stop = throttled(c.remoteAddress)
    if (stop !== null) return stop
    let outcome: AuthOutcome
    if (record === null) {
      await dummyVerify(c.password)
      outcome = refuse('unknown_user', `there is no MQTT user ${quote(username)} and ${notAllowed}`)
    } else {
      const matched = c.password === null ? await dummyVerify(null) : await record.verify(c.password)
      if (matched && record.enabled) return { ok: true, username: record.username }
      const sent = c.password === null ? 'no password was sent' : matched ? 'the password matched' : 'the password did not match'
      outcome = !record.enabled
        ? refuse('user_disabled', `user ${quote(username)} is disabled (${sent})`)
        : c.password === null
          ? refuse('wrong_password', `user ${quote(username)} sent no password`)
          : refuse('wrong_password', `the password for user ${quote(username)} did not match`)
    }
    if (c.remoteAddress !== null) failures.recordFailure(c.remoteAddress)
    return outcome
  }

  return {
    authenticate(c) {
      try {
        const { allowAnonymous } = o.settings()
        if (c.username === null) return allowAnonymous ? anonymous() : refuse('anonymous_not_allowed', `no username was sent and ${notAllowed}`)
        const record = o.users.loginRecord(c.username)
        // only known users must prove who they are
        if (record === null && allowAnonymous) return anonymous()
        const stop = throttled(c.remoteAddress)
        if (stop !== null) return stop
        const username = c.username
        const pending = limiter.tryRun(() => check(c, username, record))
        if (pending === null) {
          return refuse('busy',
            `${limiter.queued} password checks already waiting (${limiter.running} running): refused without checking user ${quote(username)}`)
        }
        return pending.catch((err: unknown) => internalError(c, err))
      } catch (err) {
        return internalError(c, err)
      }
    },
    stats: () => ({ running: limiter.running, queued: limiter.queued, trackedAddresses: failures.size }),
  }
}
