// Errors the stores and the database layer raise, as plain classes with a stable `code`. They know nothing of HTTP:
// src/errors.ts maps each code to a status and one JSON body. Their messages are written for an operator.

/** One broken rule of one input field: `{ field: 'connectTimeoutMs', rule: 'maximum 600000', message: 'must be <= 600000' }`. */
export interface FieldError {
  field: string
  rule: string
  message: string
}

export class DomainError extends Error {
  readonly code: string
  /** the fields the error is about, when it is about input */
  readonly fields: FieldError[] | undefined

  constructor(code: string, message: string, opts: { cause?: unknown; fields?: FieldError[] } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.fields = opts.fields
  }
}

// ---- refused input and missing things (the caller can fix them) ---------------------------------------------------

/** An input error naming each broken field and rule. The message lists them too, for callers that show only it. */
export class InvalidInputError extends DomainError {
  declare readonly fields: FieldError[]
  constructor(fields: FieldError[]) {
    super('INVALID_INPUT', `invalid input: ${fields.map((f) => `${f.field}: ${f.rule}`).join('; ')}`, { fields })
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string) {
    super('NOT_FOUND', message)
  }
}

/** The thing to create exists already (e.g. an MQTT user with that username). */
export class ConflictError extends DomainError {
  constructor(message: string, fields?: FieldError[]) {
    super('CONFLICT', message, { fields })
  }
}

export class VersionNotFoundError extends DomainError {
  constructor(version: number, newest: number, fields?: FieldError[]) {
    super('VERSION_NOT_FOUND', `there is no settings version ${version} (the newest is ${newest})`, { fields })
  }
}

export class StaleVersionError extends DomainError {
  constructor(given: string, current: number, fields?: FieldError[]) {
    super('STALE_VERSION', `If-Match ${given} is stale: the settings are at version ${current}; reload them and retry`, { fields })
  }
}

// ---- the store could not do it (the broker goes on) ---------------------------------------------------------------

export class StoreUnavailableError extends DomainError {
  constructor(why: string, inForce: number, cause?: unknown) {
    super('STORE_UNAVAILABLE',
      `the settings database could not be written (${why}); nothing was changed, the broker keeps running on version ${inForce}`,
      { cause })
  }
}

export class SettingsCorruptError extends DomainError {
  constructor(version: number, why: string) {
    super('SETTINGS_CORRUPT', `settings version ${version} stored in the database is invalid (${why}); roll back with the API or fix the row`)
  }
}

// ---- start-up (server.ts prints the message alone, one line, no stack) --------------------------------------------

export class DbOpenError extends DomainError {
  constructor(path: string, why: string, cause?: unknown) {
    super('DB_OPEN_FAILED', `cannot open the database at DB_PATH=${path}: ${why}`, { cause })
  }
}

export class DbNotADatabaseError extends DomainError {
  constructor(path: string, cause?: unknown) {
    super('DB_NOT_A_DATABASE',
      `DB_PATH=${path} is not an SQLite database (or is encrypted or damaged); move it away or set DB_PATH to another file`, { cause })
  }
}

export class DbTooNewError extends DomainError {
  constructor(path: string, found: number, known: number) {
    super('DB_TOO_NEW',
      `the database at DB_PATH=${path} has schema version ${found}, newer than this build knows (${known}): it was written by a newer release; run that release or set DB_PATH to another file`)
  }
}

export class DbMigrationError extends DomainError {
  constructor(migration: string, path: string, why: string, cause?: unknown) {
    super('DB_MIGRATION_FAILED', `migration ${migration} failed on DB_PATH=${path}: ${why} (nothing of it was applied)`, { cause })
  }
}

// ---- field errors from a schema validator -------------------------------------------------------------------------

/** A validation error as Ajv and TypeBox both report it. */
export interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

const ruleOf = (e: SchemaError): string => {
  const p = e.params
  switch (e.keyword) {
    case 'type': return p.type === 'null' ? 'null' : `type ${String(p.type)}`
    case 'minimum': case 'maximum': case 'exclusiveMinimum': case 'exclusiveMaximum':
    case 'minLength': case 'maxLength': case 'minProperties': case 'maxProperties': case 'minItems': case 'maxItems':
      return `${e.keyword} ${String(p.limit)}`
    case 'const': return `const ${JSON.stringify(p.allowedValue ?? p.const)}`
    case 'enum': return `one of ${JSON.stringify(p.allowedValues)}`
    case 'pattern': return `pattern ${String(p.pattern)}`
    case 'format': return `format ${String(p.format)}`
    default: return e.keyword
  }
}

/**
 * Field errors from Ajv or TypeBox errors: one entry per field and rule, named by its dotted path
 * (`values.connectTimeoutMs`, or `(body)` for the whole body). A union's branch errors fold into one rule,
 * e.g. `null or minimum 1`. `rename` maps a dotted path ('' for the root) to the name the caller knows.
 */
export function fieldErrorsFromSchema(
  errors: readonly SchemaError[],
  rename: (path: string) => string = (p) => p || '(body)',
): FieldError[] {
  const name = (pointer: string) =>
    rename(pointer.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')).join('.'))
  const join = (base: string, key: string) => (base === '' ? `/${key}` : `${base}/${key}`)
  const unions = new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.instancePath))
  const out: FieldError[] = []
  const seen = new Set<string>()
  const add = (f: FieldError) => {
    const key = `${f.field}\0${f.rule}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push(f)
    }
  }
  for (const e of errors) {
    if (unions.has(e.instancePath)) {
      const branches = errors.filter((b) => b.instancePath === e.instancePath && b.keyword !== 'anyOf' && b.keyword !== 'oneOf')
      const rule = [...new Set(branches.map(ruleOf))].join(' or ') || 'one of the allowed forms'
      add({ field: name(e.instancePath), rule, message: `must be ${rule}` })
      continue
    }
    // TypeBox reports an extra key twice (a `false` sub-schema and `additionalProperties`); keep the latter
    if (e.keyword === 'boolean') continue
    if (e.keyword === 'additionalProperties') {
      const extra = e.params.additionalProperties ?? e.params.additionalProperty
      for (const key of Array.isArray(extra) ? extra : [extra]) {
        add({ field: name(join(e.instancePath, String(key))), rule: 'unknown key', message: 'is not a known key' })
      }
    } else if (e.keyword === 'required') {
      const missing = e.params.requiredProperties ?? e.params.missingProperty
      for (const key of Array.isArray(missing) ? missing : [missing]) {
        add({ field: name(join(e.instancePath, String(key))), rule: 'required', message: 'is required' })
      }
    } else {
      add({ field: name(e.instancePath), rule: ruleOf(e), message: e.message ?? ruleOf(e) })
    }
  }
  return out
}
