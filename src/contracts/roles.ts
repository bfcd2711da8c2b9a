// The roles of admin tokens, least first: each one may do what the ones before it may, and more.
//   viewer    reads the broker: settings and their history, failures, connections, users, ACL, retained, sessions
//   operator  also changes them (settings, MQTT users, ACL rules, retained and session deletes) and reads the audit trail
//   admin     also manages the admin tokens
// A route declares the least role it needs, or 'public' (no token: /healthz, /metrics, the UI's files).
export const ROLES = ['viewer', 'operator', 'admin'] as const
export type Role = (typeof ROLES)[number]
export type RouteRole = Role | 'public'

/** Does a token of role `have` pass a route that needs `need`? */
export const roleAllows = (have: Role, need: Role): boolean => ROLES.indexOf(have) >= ROLES.indexOf(need)

export const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value)
