// The ACL the `--acl=N` variant runs our broker under: N rules created through POST /api/acl (the admin API, as an
// operator would), none of which matches the bench's topics except the last, and with deny rules among them so that
// the broker cannot skip the ACL (it asks no question only while the rules can deny nothing).
//
//   rule k (k < N-1), in turn:
//     allow  username user-k            users/user-k/#          (another user's topics; never matches an anonymous client)
//     allow  clientId sensor-k-*        sensors/k/#             (a client-id glob checked against every bench client id)
//     deny   any client                 private/tenant-k/#      (applies to every client: its filter is compared)
//   rule N:  allow  any client          bench/#                 (covers every bench topic and filter)
//
// The bench clients are anonymous, so a question walks all N rules before the last one decides. aclDefault stays at
// its default (allow): the last rule is what a deny-by-default operator would need, and it is the one that answers.
import { BenchClient } from './wsclient.ts'

export interface AclRuleBody {
  username?: string
  clientId?: string
  topic: string
  action: 'publish' | 'subscribe' | 'all'
  permission: 'allow' | 'deny'
  comment?: string
}

export function benchAclRules(n: number): AclRuleBody[] {
  const rules: AclRuleBody[] = []
  for (let k = 0; k < n - 1; k++) {
    switch (k % 3) {
      case 0: rules.push({ username: `user-${k}`, topic: `users/user-${k}/#`, action: 'all', permission: 'allow' }); break
      case 1: rules.push({ clientId: `sensor-${k}-*`, topic: `sensors/${k}/#`, action: 'all', permission: 'allow' }); break
      default: rules.push({ topic: `private/tenant-${k}/#`, action: 'all', permission: 'deny' })
    }
  }
  if (n > 0) rules.push({ topic: 'bench/#', action: 'all', permission: 'allow', comment: 'the bench topics' })
  return rules
}

async function api(httpUrl: string, token: string, method: string, route: string, body?: unknown): Promise<{ status: number, json: any }> {
  const res = await fetch(`${httpUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

/**
 * Create `n` rules (benchAclRules) on our broker and check that they are in force: the rule list has them, a bench
 * topic is allowed by the last rule, a tenant's topic is denied, and the broker itself refuses a subscription to it.
 */
export async function installAcl(httpUrl: string, wsUrl: string, token: string, n: number): Promise<void> {
  for (const rule of benchAclRules(n)) {
    const r = await api(httpUrl, token, 'POST', '/api/acl', rule)
    if (r.status !== 201) throw new Error(`POST /api/acl ${JSON.stringify(rule)}: HTTP ${r.status} ${JSON.stringify(r.json)}`)
  }
  const list = await api(httpUrl, token, 'GET', '/api/acl')
  if (list.status !== 200 || list.json.items.length !== n) {
    throw new Error(`GET /api/acl: expected ${n} rules, got HTTP ${list.status} ${list.json?.items?.length}`)
  }
  const ask = async (topic: string, action: 'publish' | 'subscribe') =>
    (await api(httpUrl, token, 'POST', '/api/acl/check', { clientId: 'fanin-pub-0-x', action, topic })).json
  const allowed = await ask('bench/fanin/0', 'publish')
  if (allowed?.allowed !== true || allowed.decidedBy?.position !== n) {
    throw new Error(`ACL check: bench/fanin/0 should be allowed by rule ${n}: ${JSON.stringify(allowed)}`)
  }
  const sub = await ask('bench/fanin/+', 'subscribe')
  if (sub?.allowed !== true) throw new Error(`ACL check: subscribing to bench/fanin/+ should be allowed: ${JSON.stringify(sub)}`)
  if (n >= 3) {
    const denied = await ask('private/tenant-2/x', 'publish')
    if (denied?.allowed !== false) throw new Error(`ACL check: private/tenant-2/x should be denied: ${JSON.stringify(denied)}`)
    // and the broker applies it: SUBACK 0x80 for a filter a deny rule overlaps
    const c = await BenchClient.connect(wsUrl, 'acl-check')
    const refused = await c.subscribe('private/tenant-2/#', 0).then(() => false, () => true)
    await c.end()
    if (!refused) throw new Error('ACL: the broker granted a subscription to private/tenant-2/# that rule 3 denies')
  }
}
