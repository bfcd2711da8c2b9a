// The ACL store (src/access/acl.ts) without the server: a listener that throws, the default policy read on each
// question (a new version even when nobody calls settingsChanged), the rules read back by a new store on the same
// database, a write that fails leaving the rules in force as they were, and a body that is not an object.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { openDatabase } from '../../src/db/open.ts'
import { createAclStore } from '../../src/access/acl.ts'
import { InvalidInputError, NotFoundError } from '../../src/contracts/errors.ts'

function setup() {
  const { db } = openDatabase(':memory:')
  const settings = { aclDefault: 'allow' as 'allow' | 'deny' }
  const errors: string[] = []
  const logger = { info() {}, error: (_o: unknown, msg: string) => void errors.push(msg) }
  const acl = createAclStore(db, { settings: () => settings, logger })
  return { db, settings, errors, acl, logger }
}

test('a listener that throws is logged; the write stands and the next listener is still called', () => {
  const { acl, errors } = setup()
  const seen: number[] = []
  acl.on('change', () => {
    throw new Error('boom')
  })
  acl.on('change', (c) => seen.push(c.version))
  const rule = acl.create({ topic: 'a/#', action: 'all', permission: 'deny' })
  assert.equal(acl.get(rule.id)?.topic, 'a/#')
  assert.deepEqual(seen, [2])
  assert.deepEqual(errors, ['an ACL change listener failed'])
})

test('a new default is a new version once settingsChanged() says so (the plugin calls it on every settings change)', () => {
  const { acl, settings } = setup()
  const seen: string[] = []
  acl.on('change', (c) => seen.push(`${c.what}@${c.version}`))
  const subject = { username: null, clientId: 'c' }
  assert.equal(acl.allowed(subject, 'publish', 'x'), true)
  settings.aclDefault = 'deny'
  acl.settingsChanged()
  assert.equal(acl.allowed(subject, 'publish', 'x'), false)
  assert.equal(acl.version, 2)
  assert.equal(acl.version, 2, 'reading it again changes nothing')
  // announced once; a settings change that leaves the default alone is no new version
  acl.settingsChanged()
  assert.deepEqual(seen, ['default@2'])
  // back again: still a new version (never an old number again)
  settings.aclDefault = 'allow'
  acl.settingsChanged()
  assert.equal(acl.allowsEverything, true)
  assert.equal(acl.version, 3)
})

test('a new store on the same database reads the rules back in position order', () => {
  const { db, acl, logger } = setup()
  acl.create({ topic: 'b', action: 'publish', permission: 'allow', username: 'bob', clientId: 'dev-?', comment: 'x' })
  acl.create({ topic: 'a', action: 'subscribe', permission: 'deny', anonymous: true, position: 1 })
  const again = createAclStore(db, { settings: () => ({ aclDefault: 'deny' }), logger })
  assert.deepEqual(again.list(), acl.list())
  assert.deepEqual(again.list().map((r) => r.topic), ['a', 'b'])
  assert.equal(again.allowed({ username: 'bob', clientId: 'dev-1' }, 'publish', 'b'), true)
  assert.equal(again.allowed({ username: 'bob', clientId: 'dev-10' }, 'publish', 'b'), false)
})

test('refused and failed writes leave the rules and the version as they were', () => {
  const { db, acl } = setup()
  const rule = acl.create({ topic: 'a', action: 'all', permission: 'deny' })
  const before = { rules: acl.list(), version: acl.version }
  assert.throws(() => acl.create({ topic: 'a/#/b', action: 'all', permission: 'deny' }), InvalidInputError)
  assert.throws(() => acl.update(rule.id, { position: 5 }), InvalidInputError)
  assert.throws(() => acl.update(999, { topic: 'b' }), NotFoundError)
  assert.throws(() => acl.delete(999), NotFoundError)
  // the database refuses (read-only): nothing half-done, the rules in force unchanged
  db.pragma('query_only = ON')
  assert.throws(() => acl.create({ topic: 'b', action: 'all', permission: 'allow', position: 1 }), /readonly|read-only|query_only/i)
  db.pragma('query_only = OFF')
  assert.deepEqual({ rules: acl.list(), version: acl.version }, before)
  assert.deepEqual(db.prepare('SELECT position, topic FROM acl_rules').all(), [{ position: 1, topic: 'a' }])
})

test('a body that is not an object is refused as input, not thrown as a TypeError', () => {
  const { acl } = setup()
  for (const body of [null, 'x', 5]) {
    assert.throws(() => acl.create(body as never), InvalidInputError)
    assert.throws(() => acl.update(1, body as never), (err) => err instanceof NotFoundError || err instanceof InvalidInputError)
  }
  const rule = acl.create({ topic: 'a', action: 'all', permission: 'allow' })
  assert.throws(() => acl.update(rule.id, null as never), InvalidInputError)
})
