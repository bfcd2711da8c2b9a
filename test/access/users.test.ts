// The MQTT users store on a real SQLite file (CRUD, input rules, write-only passwords, no password bytes on disk)
// and the authenticator over it (every outcome, synchronous where no password is checked, bounded concurrency and
// queue with a responsive event loop, throttling per address, a bounded address table, errors as refusals).
// One file for both, as the authenticator's cases need the store's real scrypt records. Longer than most for that.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { openDatabase } from '../../src/db/open.ts'
import { createUserStore, type LoginRecord, type MqttUserStore } from '../../src/access/users.ts'
import { createAuthenticator, type AuthenticatorOptions } from '../../src/access/authenticator.ts'
import { hashPassword, parseRecord, SCRYPT_PARAMS } from '../../src/access/password.ts'
import type { AuthOutcome, Credentials } from '../../src/contracts/access.ts'
import { DomainError } from '../../src/contracts/errors.ts'
import { tempDir } from '../helpers.ts'

const PASSWORD = 'correct horse battery staple 7f3a'

function setup(t: { after(fn: () => void): void }) {
  const { dir, cleanup } = tempDir('mqtt-users-')
  const path = join(dir, 'broker.db')
  const { db } = openDatabase(path)
  const lines: string[] = []
  const users = createUserStore(db, { logger: { info: (obj, msg) => lines.push(JSON.stringify({ ...obj, msg })) } })
  t.after(() => {
    db.close()
    cleanup()
  })
  return { db, path, users, lines }
}

/** The domain error `fn` throws (or rejects with): its code and the fields it names. */
async function domainError(fn: () => unknown): Promise<{ code: string; fields: string[][]; message: string }> {
  try {
    await fn()
  } catch (err) {
    assert.ok(err instanceof DomainError, `not a domain error: ${String(err)}`)
    return { code: err.code, fields: (err.fields ?? []).map((f) => [f.field, f.rule]), message: err.message }
  }
  assert.fail('did not throw')
}

const creds = (c: Partial<Credentials>): Credentials => ({ clientId: 'c1', username: null, password: null, remoteAddress: '192.0.2.1', ...c })
const pw = (s: string) => Buffer.from(s, 'utf8')

/** The outcome and whether it came synchronously (not a promise). */
async function auth(a: { authenticate(c: Credentials): AuthOutcome | Promise<AuthOutcome> }, c: Partial<Credentials>) {
  const r = a.authenticate(creds(c))
  const sync = !(r instanceof Promise)
  return { sync, outcome: await r }
}

// ---- the store ---------------------------------------------------------------------------------------------------

test('create, get, list (paged, case-sensitive binary order), update, delete; the password never comes back', async (t) => {
  const { users, lines } = setup(t)
  const alice = await users.create({ username: 'alice', password: PASSWORD, note: '  kitchen sensor  ' }, { actor: 'admin' })
  assert.deepEqual(Object.keys(alice).sort(), ['createdAt', 'enabled', 'note', 'updatedAt', 'username'])
  assert.equal(alice.enabled, true)
  assert.equal(alice.note, 'kitchen sensor', 'trimmed')
  assert.equal(alice.createdAt, alice.updatedAt)
  assert.deepEqual(users.get('alice'), alice)
  assert.equal(users.get('Alice'), null, 'usernames are case-sensitive')
  await users.create({ username: 'Alice', password: 'other', enabled: false, note: '' })
  assert.equal(users.get('Alice')?.note, null, 'an empty note is null')
  for (const name of ['bob', 'carol', 'dave']) await users.create({ username: name, password: PASSWORD })

  const page1 = users.list({ limit: 2 })
  assert.deepEqual(page1.items.map((u) => u.username), ['Alice', 'alice'])
  assert.equal(page1.nextCursor, 'alice')
  const page2 = users.list({ limit: 2, after: page1.nextCursor! })
  assert.deepEqual(page2.items.map((u) => u.username), ['bob', 'carol'])
  const page3 = users.list({ limit: 2, after: page2.nextCursor! })
  assert.deepEqual(page3.items.map((u) => u.username), ['dave'])
  assert.equal(page3.nextCursor, null)
  assert.equal(users.list().items.length, 5)

  await new Promise((r) => setTimeout(r, 5))
  const changed = await users.update('alice', { enabled: false, note: null }, { actor: 'admin' })
  assert.equal(changed.enabled, false)
  assert.equal(changed.note, null)
  assert.equal(changed.createdAt, alice.createdAt)
  assert.ok(changed.updatedAt > alice.updatedAt)
  assert.deepEqual(users.get('alice'), changed)
  assert.equal((await users.update('alice', { note: 'back' })).enabled, false, 'a patch keeps what it does not name')

  users.delete('alice', { actor: 'admin' })
  assert.equal(users.get('alice'), null)
  assert.equal(users.loginRecord('alice'), null)

  const everything = JSON.stringify([alice, changed, page1, page2, page3, users.list(), lines])
  assert.ok(!everything.includes(PASSWORD), 'no answer and no log line holds the password')
  assert.ok(!everything.includes('scrypt$'), 'nor its hash')
  assert.deepEqual(lines.map((l) => JSON.parse(l).msg), [
    'MQTT user "alice" created by admin', 'MQTT user "Alice" created', 'MQTT user "bob" created', 'MQTT user "carol" created',
    'MQTT user "dave" created', 'MQTT user "alice" updated: enabled, note by admin', 'MQTT user "alice" updated: note',
    'MQTT user "alice" deleted by admin',
  ])
})

test('bad input is refused naming each field and rule; nothing is stored', async (t) => {
  const { users } = setup(t)
  const cases: Array<[string, () => unknown, string[][]]> = [
    ['empty username', () => users.create({ username: '', password: 'x' }), [['username', 'minLength 1']]],
    ['username of 257 characters', () => users.create({ username: 'u'.repeat(257), password: 'x' }), [['username', 'maxLength 256']]],
    ['control character', () => users.create({ username: 'a\nb', password: 'x' }), [['username', 'no control characters']]],
    ['C1 control character', () => users.create({ username: 'a\u0085b', password: 'x' }), [['username', 'no control characters']]],
    ['lone surrogate', () => users.create({ username: 'a\ud800', password: 'x' }), [['username', 'no control characters']]],
    ['empty password', () => users.create({ username: 'u', password: '' }), [['password', 'minLength 1']]],
    ['513 two-byte characters', () => users.create({ username: 'u', password: 'é'.repeat(513) }), [['password', 'at most 1024 bytes']]],
    ['enabled not a boolean', () => users.create({ username: 'u', password: 'x', enabled: 'yes' as never }), [['enabled', 'type boolean']]],
    ['note too long', () => users.create({ username: 'u', password: 'x', note: 'n'.repeat(1001) }), [['note', 'null or maxLength 1000']]],
    ['two bad fields', () => users.create({ username: '', password: '' }), [['username', 'minLength 1'], ['password', 'minLength 1']]],
    ['empty patch', () => users.update('u', {}), [['(body)', 'minProperties 1']]],
    ['patch with an empty password', () => users.update('u', { password: '' }), [['password', 'minLength 1']]],
  ]
  for (const [name, fn, fields] of cases) {
    const e = await domainError(fn)
    assert.equal(e.code, 'INVALID_INPUT', name)
    assert.deepEqual(e.fields, fields, name)
  }
  assert.equal(users.list().items.length, 0)
  // the limits themselves are fine: 256 characters (astral ones count once), 1024 bytes, 1000 characters
  await users.create({ username: '😀'.repeat(256), password: 'é'.repeat(512), note: 'n'.repeat(1000) })
  assert.equal(users.list().items.length, 1)
})

test('a taken username is a conflict, an unknown one is not found', async (t) => {
  const { users } = setup(t)
  await users.create({ username: 'alice', password: PASSWORD })
  const dup = await domainError(() => users.create({ username: 'alice', password: 'other' }))
  assert.equal(dup.code, 'CONFLICT')
  assert.deepEqual(dup.fields, [['username', 'unique']])
  assert.match(dup.message, /already an MQTT user "alice"/)
  for (const fn of [() => users.update('nobody', { enabled: false }), () => users.delete('nobody')]) {
    const e = await domainError(fn)
    assert.equal(e.code, 'NOT_FOUND')
    assert.equal(e.message, 'there is no MQTT user "nobody"')
  }
})

test('the stored record is a salted scrypt hash; the password is nowhere in the database file', async (t) => {
  const { db, path, users } = setup(t)
  await users.create({ username: 'alice', password: PASSWORD })
  await users.create({ username: 'bob', password: PASSWORD })
  await users.update('bob', { password: `${PASSWORD}-v2` })
  const rows = db.prepare('SELECT username, password_hash FROM mqtt_users ORDER BY username').all() as Array<{ username: string; password_hash: string }>
  for (const row of rows) {
    assert.match(row.password_hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/)
    const { params, salt, hash } = parseRecord(row.password_hash)
    assert.deepEqual(params, SCRYPT_PARAMS)
    assert.equal(salt.length, 16)
    assert.equal(hash.length, 32)
  }
  assert.notEqual(rows[0].password_hash.split('$')[4], rows[1].password_hash.split('$')[4], 'each record has its own salt')
  assert.equal(await users.loginRecord('alice')!.verify(pw(PASSWORD)), true)
  assert.equal(await users.loginRecord('bob')!.verify(pw(PASSWORD)), false, 'the old password no longer matches')
  assert.equal(await users.loginRecord('bob')!.verify(pw(`${PASSWORD}-v2`)), true)

  // the raw bytes on disk: the WAL before a checkpoint, then the main file after one
  const needles = [pw(PASSWORD), Buffer.from(PASSWORD, 'utf16le')]
  const scan = (file: string) => {
    if (!existsSync(file)) return
    const bytes = readFileSync(file)
    assert.ok(bytes.includes(Buffer.from('alice')), `${file} holds the rows (the scan reads the right bytes)`)
    for (const n of needles) assert.equal(bytes.indexOf(n), -1, `${file} holds the password`)
  }
  scan(`${path}-wal`)
  db.pragma('wal_checkpoint(TRUNCATE)')
  scan(path)
})

test('the table is STRICT and checks its columns', (t) => {
  const { db } = setup(t)
  const insert = (username: string, enabled: unknown, hash = 'scrypt$1') =>
    db.prepare('INSERT INTO mqtt_users (username, password_hash, enabled, note, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?)')
      .run(username, hash, enabled as number, 'now', 'now')
  assert.throws(() => insert('a', 'yes'), /cannot store TEXT value in INTEGER column|CHECK constraint/)
  assert.throws(() => insert('a', 2), /CHECK constraint/)
  assert.throws(() => insert('', 1), /CHECK constraint/)
  assert.throws(() => insert('a', 1, 'plaintext'), /CHECK constraint/)
  insert('a', 1)
  insert('A', 1)
  assert.equal(db.prepare('SELECT count(*) FROM mqtt_users').pluck().get(), 2, 'case-sensitive primary key')
})

// ---- the authenticator -------------------------------------------------------------------------------------------

async function authSetup(t: { after(fn: () => void): void }, opts: Partial<AuthenticatorOptions> = {}) {
  const s = setup(t)
  await s.users.create({ username: 'alice', password: PASSWORD })
  await s.users.create({ username: 'bob', password: PASSWORD, enabled: false })
  const settings = { allowAnonymous: true }
  const authenticator = createAuthenticator({ users: s.users, settings: () => settings, ...opts })
  return { ...s, settings, authenticator }
}

/** Asserts the outcome, and that its detail never holds a password. */
function expectRefusal(r: { outcome: AuthOutcome }, refusal: string, detail: RegExp | string) {
  assert.equal(r.outcome.ok, false, JSON.stringify(r.outcome))
  if (r.outcome.ok) return
  assert.equal(r.outcome.refusal, refusal)
  if (typeof detail === 'string') assert.equal(r.outcome.detail, detail)
  else assert.match(r.outcome.detail, detail)
  assert.ok(!r.outcome.detail.includes(PASSWORD) && !r.outcome.detail.includes('wrong-guess'))
}

test('authenticate: every outcome, synchronous where no password is checked', async (t) => {
  const { authenticator: a, settings, users } = await authSetup(t)

  // anonymous allowed: no username, or one that is not a known user, costs nothing
  assert.deepEqual(await auth(a, {}), { sync: true, outcome: { ok: true, username: null } })
  assert.deepEqual(await auth(a, { username: 'stranger', password: pw('x') }), { sync: true, outcome: { ok: true, username: null } })
  // a known user must prove it even then
  assert.deepEqual(await auth(a, { username: 'alice', password: pw(PASSWORD) }), { sync: false, outcome: { ok: true, username: 'alice' } })
  expectRefusal(await auth(a, { username: 'alice', password: pw('wrong-guess') }), 'wrong_password', 'the password for user "alice" did not match')
  expectRefusal(await auth(a, { username: 'alice', password: null }), 'wrong_password', 'user "alice" sent no password')
  assert.deepEqual(await auth(a, { username: 'Alice', password: pw(PASSWORD) }), { sync: true, outcome: { ok: true, username: null } },
    'case-sensitive: "Alice" is not a known user, so an anonymous client')
  expectRefusal(await auth(a, { username: 'bob', password: pw(PASSWORD) }), 'user_disabled', 'user "bob" is disabled (the password matched)')
  expectRefusal(await auth(a, { username: 'bob', password: pw('wrong-guess') }), 'user_disabled', 'user "bob" is disabled (the password did not match)')

  // anonymous not allowed (read at every call)
  settings.allowAnonymous = false
  const none = await auth(a, {})
  assert.equal(none.sync, true)
  expectRefusal(none, 'anonymous_not_allowed', 'no username was sent and anonymous clients are not allowed (setting allowAnonymous is false)')
  const started = performance.now()
  const unknown = await auth(a, { username: 'stranger', password: pw('wrong-guess') })
  const unknownMs = performance.now() - started
  assert.equal(unknown.sync, false, 'an unknown user is answered after a password check, like a wrong password')
  assert.ok(unknownMs >= 10, `a dummy scrypt ran (${unknownMs.toFixed(1)} ms)`)
  expectRefusal(unknown, 'unknown_user', 'there is no MQTT user "stranger" and anonymous clients are not allowed (setting allowAnonymous is false)')
  assert.deepEqual(await auth(a, { username: 'alice', password: pw(PASSWORD) }), { sync: false, outcome: { ok: true, username: 'alice' } })

  // a change of the user applies to the next login
  await users.update('bob', { enabled: true })
  assert.deepEqual((await auth(a, { username: 'bob', password: pw(PASSWORD) })).outcome, { ok: true, username: 'bob' })
  await users.update('bob', { password: 'new one' })
  expectRefusal(await auth(a, { username: 'bob', password: pw(PASSWORD) }), 'wrong_password', /did not match/)
  users.delete('bob')
  expectRefusal(await auth(a, { username: 'bob', password: pw('new one') }), 'unknown_user', /no MQTT user "bob"/)
  // a password sent as bytes is compared as bytes
  await users.create({ username: 'utf8', password: 'pässwörd' })
  assert.equal((await auth(a, { username: 'utf8', password: Buffer.from('pässwörd', 'latin1') })).outcome.ok, false)
  assert.equal((await auth(a, { username: 'utf8', password: Buffer.from('pässwörd', 'utf8') })).outcome.ok, true)
})

test('authenticate never rejects: a failing store or a damaged record is a refusal with words for the operator', async (t) => {
  const { authenticator: a, db } = await authSetup(t)
  db.prepare("UPDATE mqtt_users SET password_hash = 'scrypt$16384$8$1$AAAA$AAAA' WHERE username = 'alice'").run()
  expectRefusal(await auth(a, { username: 'alice', password: pw(PASSWORD) }), 'busy',
    /^the credentials of user "alice" could not be checked \(the stored password record has a 3-byte salt and a 3-byte hash\): refused$/)

  const broken = createAuthenticator({ users: { loginRecord: () => { throw new Error('database is closed') } }, settings: () => ({ allowAnonymous: false }) })
  const sync = await auth(broken, { username: 'x', password: pw('wrong-guess') })
  assert.equal(sync.sync, true)
  expectRefusal(sync, 'busy', 'the credentials of user "x" could not be checked (database is closed): refused')
  const rejecting = createAuthenticator({
    users: { loginRecord: (username) => ({ username, enabled: true, verify: () => Promise.reject(new Error('thread pool gone')) }) },
    settings: () => ({ allowAnonymous: false }),
  })
  expectRefusal(await auth(rejecting, { username: 'x', password: pw('wrong-guess') }), 'busy', /could not be checked \(thread pool gone\)/)
  const badSettings = createAuthenticator({ users: { loginRecord: () => null }, settings: () => { throw new Error('no settings') } })
  expectRefusal(await auth(badSettings, {}), 'busy', /^the credentials of a client without a username could not be checked \(no settings\): refused$/)
})

test('bounded: 4 checks at once, 256 waiting, the rest busy at once; the event loop stays responsive', async (t) => {
  const { authenticator: a, db } = await authSetup(t, { maxConcurrent: 4, maxQueued: 256 })
  // what is tested is the queue, not the key derivation: alice's record gets a cheap scrypt cost (the record says its
  // own parameters), so 260 checks do not hold both cores for seconds while other test files run beside this one
  db.prepare('UPDATE mqtt_users SET password_hash = ? WHERE username = ?')
    .run(await hashPassword(pw(PASSWORD), { ...SCRYPT_PARAMS, N: 1024 }), 'alice')
  // the event loop's worst delay while the checks run, sampled with setImmediate
  let worstLagMs = 0
  let sampling = true
  const sample = () => {
    const asked = performance.now()
    setImmediate(() => {
      worstLagMs = Math.max(worstLagMs, performance.now() - asked)
      if (sampling) setTimeout(sample, 1)
    })
  }

  // distinct addresses: the throttle must not be what answers
  const results = Array.from({ length: 300 }, (_, i) => a.authenticate(creds({ username: 'alice', password: pw(PASSWORD), remoteAddress: `10.0.${i >> 8}.${i & 255}` })))
  sample() // from here on, while the checks run
  assert.deepEqual(a.stats(), { running: 4, queued: 256, trackedAddresses: 0 })
  const busy = results.filter((r) => !(r instanceof Promise))
  assert.equal(busy.length, 40, 'past 4 running and 256 waiting: busy, synchronously')
  for (const r of busy) expectRefusal({ outcome: r as AuthOutcome }, 'busy', '256 password checks already waiting (4 running): refused without checking user "alice"')
  const outcomes = await Promise.all(results)
  sampling = false
  assert.equal(outcomes.filter((o) => o.ok).length, 260)
  assert.deepEqual(a.stats(), { running: 0, queued: 0, trackedAddresses: 0 })
  assert.ok(worstLagMs < 50, `the event loop answered within ${worstLagMs.toFixed(1)} ms at worst`)
})

test('throttled per address after 10 failures in the window, without a check; recovers when the window passes', async (t) => {
  let now = 1_000_000
  const { authenticator: a, settings } = await authSetup(t, { maxFailures: 10, failureWindowMs: 60_000, now: () => now })
  settings.allowAnonymous = false
  a.authenticate(creds({ username: null })) // refused, but no password was checked: not a failure
  const attacker = { remoteAddress: '203.0.113.9' }
  for (let i = 0; i < 10; i++) {
    now += 1000
    // wrong passwords, unknown users and disabled users all count
    const name = ['alice', 'stranger', 'bob'][i % 3]
    const r = await auth(a, { ...attacker, username: name, password: pw('wrong-guess') })
    expectRefusal(r, ['wrong_password', 'unknown_user', 'user_disabled'][i % 3], /./)
  }
  // now (1_010_000) is 9 s after the first failure (1_001_000): 51 s more
  const blocked = await auth(a, { ...attacker, username: 'alice', password: pw(PASSWORD) })
  assert.equal(blocked.sync, true, 'refused at once, no check run')
  expectRefusal(blocked, 'throttled', '10 failed attempts from 203.0.113.9 in the last 60 s: refused without checking for 51 s more')
  expectRefusal(await auth(a, { ...attacker, username: 'stranger', password: pw('wrong-guess') }), 'throttled', /^10 failed attempts/)
  // anonymous clients cost nothing and are still accepted when allowed; other addresses are not affected
  settings.allowAnonymous = true
  assert.deepEqual(await auth(a, { ...attacker }), { sync: true, outcome: { ok: true, username: null } })
  assert.deepEqual(await auth(a, { ...attacker, username: 'stranger' }), { sync: true, outcome: { ok: true, username: null } })
  assert.deepEqual((await auth(a, { remoteAddress: '198.51.100.7', username: 'alice', password: pw(PASSWORD) })).outcome, { ok: true, username: 'alice' })

  now += 50_999
  expectRefusal(await auth(a, { ...attacker, username: 'alice', password: pw(PASSWORD) }), 'throttled', /for 1 s more$/)
  now += 1 // the first failure leaves the window: one more attempt may run
  assert.deepEqual(await auth(a, { ...attacker, username: 'alice', password: pw(PASSWORD) }), { sync: false, outcome: { ok: true, username: 'alice' } })
  // a success does not wipe the count: the next failure puts it at 10 again
  expectRefusal(await auth(a, { ...attacker, username: 'alice', password: pw('wrong-guess') }), 'wrong_password', /did not match/)
  expectRefusal(await auth(a, { ...attacker, username: 'alice', password: pw(PASSWORD) }), 'throttled', /^10 failed attempts/)
  now += 60_000
  assert.deepEqual((await auth(a, { ...attacker, username: 'alice', password: pw(PASSWORD) })).outcome, { ok: true, username: 'alice' })
})

test('checks queued behind others are throttled when their address crosses the limit meanwhile', async () => {
  let checks = 0
  const record = (username: string): LoginRecord => ({ username, enabled: true, verify: async () => (checks++, false) })
  const a = createAuthenticator({ users: { loginRecord: record }, settings: () => ({ allowAnonymous: false }), maxConcurrent: 1, maxFailures: 3 })
  const outcomes = await Promise.all(Array.from({ length: 10 }, () => a.authenticate(creds({ username: 'u', password: pw('wrong-guess') }))))
  assert.deepEqual(outcomes.map((o) => (o.ok ? 'ok' : o.refusal)), [...Array(3).fill('wrong_password'), ...Array(7).fill('throttled')])
  assert.equal(checks, 3, 'no check ran for the throttled ones')
})

test('the per-address table stays bounded under 20000 distinct addresses; the least recent are forgotten', async () => {
  const users: Pick<MqttUserStore, 'loginRecord'> = { loginRecord: (username) => ({ username, enabled: true, verify: async () => false }) }
  const a = createAuthenticator({ users, settings: () => ({ allowAnonymous: false }), maxFailures: 1, maxTrackedAddresses: 10_000 })
  const address = (i: number) => `2001:db8::${i.toString(16)}`
  for (let i = 0; i < 20_000; i++) {
    await a.authenticate(creds({ username: 'u', password: pw('wrong-guess'), remoteAddress: address(i) }))
    assert.ok(a.stats().trackedAddresses <= 10_000)
  }
  assert.equal(a.stats().trackedAddresses, 10_000)
  // the newest are still throttled (one failure is the limit here), the oldest were forgotten
  expectRefusal(await auth(a, { username: 'u', password: pw('wrong-guess'), remoteAddress: address(19_999) }), 'throttled', /^1 failed attempt from 2001:db8::4e1f /)
  expectRefusal(await auth(a, { username: 'u', password: pw('wrong-guess'), remoteAddress: address(0) }), 'wrong_password', /did not match/)
})
