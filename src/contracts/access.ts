// Who may connect and what they may touch: what the broker core asks of the client-auth and ACL stores
// (src/access/), which answer from SQLite and the hot settings. The core holds no credentials and no rules.

/** What a CONNECT says about who the client is. The password never leaves this object: it is not logged or stored. */
export interface Credentials {
  clientId: string
  /** as sent (null when the CONNECT had none) */
  username: string | null
  password: Buffer | null
  remoteAddress: string | null
}

/** Why a CONNECT was refused for its credentials (the `auth_failed` record tells them apart in words). */
export type AuthRefusal =
  | 'anonymous_not_allowed'
  | 'unknown_user'
  | 'wrong_password'
  | 'user_disabled'
  /** too many failed attempts from this remote address: refused without checking */
  | 'throttled'
  /** too many verifications already waiting: refused without checking */
  | 'busy'

export type AuthOutcome =
  | {
    ok: true
    /** the identity ACL rules see: a known user's name, or null for an anonymous client */
    username: string | null
  }
  | { ok: false; refusal: AuthRefusal; detail: string }

export interface Authenticator {
  /** Synchronous when no password needs checking; a password check runs off the event loop. Never rejects. */
  authenticate(c: Credentials): AuthOutcome | Promise<AuthOutcome>
}

export type AclAction = 'publish' | 'subscribe'

/** Who asks, as the ACL rules match them. */
export interface AclSubject {
  /** a known user's name, null for an anonymous client */
  username: string | null
  clientId: string
}

export interface Authorizer {
  /** Changes whenever the rules or the default policy change: answers cached under an older one are stale. */
  readonly version: number
  /**
   * May `subject` publish to `topic` (a topic name), or subscribe to `topic` (a topic filter: allowed when every
   * topic it can match is allowed)? Also asked for each delivery (action 'subscribe', the message's topic name), so
   * that a rule added later stops a subscription that it forbids.
   */
  allowed(subject: AclSubject, action: AclAction, topic: string): boolean
  /** true when nothing can be denied (no deny rule, default allow): the core then skips every check */
  readonly allowsEverything: boolean
}
