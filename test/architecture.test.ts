// The import rule of src/ (test/architecture/rules.ts): which layer may import which layer and which packages, no
// cycle between layers, and the core (mqtt/) loads only Node built-ins, mqtt-packet and contracts/ at run time.
// The checker is a pure function over a Map of path -> source, so the tests below also prove it catches what it
// should by running it over the real tree plus files planted in memory.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { checkImports } from './architecture/check.ts'
import { extractImports } from './architecture/imports.ts'
import { RULES } from './architecture/rules.ts'

const ROOT = join(import.meta.dirname, '..')

/** Every .ts file under src/, keyed by its repository-relative path with forward slashes. */
function readTree(dir = 'src', into = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory()) readTree(path, into)
    else if (/\.[cm]?tsx?$/.test(entry.name)) into.set(path, readFileSync(join(ROOT, path), 'utf8'))
  }
  return into
}

const list = (lines: string[]) => lines.map((l) => `\n  ${l}`).join('')

test('the import extractor finds every form of import, and none inside comments, strings, templates or regexps', () => {
  const src = [
    "// import x from 'in-a-line-comment'",
    "/* import y from 'in-a-block-comment' */",
    "import a, { b, c as d } from 'pkg-a'",
    'import {',
    '  e,',
    '  type F,',
    "} from '../multi/line.ts'",
    "import type { G } from 'pkg-types'",
    "import { type H, type I } from 'pkg-inline-types'",
    "import * as ns from 'node:fs'",
    "import 'side-effect'",
    "export * from './re-export-all.ts'",
    "export * as all from './re-export-ns.ts'",
    "export { j, k as l } from './re-export-some.ts'",
    "export type { M } from './re-export-types.ts'",
    "const s = \"import z from 'in-a-string'\"",
    "const t = `import z from 'in-a-template' ${'nested' + `${\"x\"}`} still a template import('no')`",
    "const r = /import q from 'in-a-regexp'[/']/g",
    "const lazy = await import('./dynamic.ts')",
    "type Lazy = typeof import('./dynamic-type.ts')",
    "let n: import('./type-position.ts').Name",
    "import('./then.ts').then(() => 1)",
    'import(name)',
    "const meta = import.meta.url, obj = { import: 1 }, call = obj.import",
    "import legacy = require('cjs-pkg')",
    "const req = require('required-pkg')",
    'const half = 10 / 2 / 1',
    "export const after = 'the lexer is still in step here'",
    "import last from 'last-one'",
  ].join('\n')
  const found = extractImports(src).map((i) => `${i.kind}${i.typeOnly ? ' type' : ''} ${i.specifier} @${i.line}`)
  assert.deepEqual(found, [
    'import pkg-a @3',
    'import ../multi/line.ts @4',
    'import type pkg-types @8',
    'import type pkg-inline-types @9',
    'import node:fs @10',
    'side-effect side-effect @11',
    'export ./re-export-all.ts @12',
    'export ./re-export-ns.ts @13',
    'export ./re-export-some.ts @14',
    'export type ./re-export-types.ts @15',
    'dynamic ./dynamic.ts @19',
    'dynamic type ./dynamic-type.ts @20',
    'dynamic type ./type-position.ts @21',
    'dynamic ./then.ts @22',
    'dynamic null @23',
    'require cjs-pkg @25',
    'require required-pkg @26',
    'import last-one @29',
  ])
})

test('the rule table is itself acyclic and names only its own layers', () => {
  const names = Object.keys(RULES)
  for (const [layer, rule] of Object.entries(RULES)) {
    for (const other of rule.layers) assert.ok(names.includes(other), `${layer} allows unknown layer ${other}`)
  }
  // Every allowed edge, as files: if even the table permitted a cycle the checker could not forbid one.
  const fileOf = (layer: string) => (layer.endsWith('.ts') ? `src/${layer}` : `src/${layer}/x.ts`)
  const tree = new Map<string, string>()
  for (const [layer, rule] of Object.entries(RULES)) {
    const from = fileOf(layer)
    const specifier = (to: string) => {
      const rel = posix.relative(posix.dirname(from), fileOf(to))
      return rel.startsWith('.') ? rel : `./${rel}`
    }
    tree.set(from, rule.layers.map((to) => `import '${specifier(to)}'`).join('\n'))
  }
  const report = checkImports(tree)
  assert.deepEqual(report.violations, [], `the table's own edges break it:${list(report.violations)}`)
  assert.deepEqual(report.cycles, [], `the table allows a cycle:${list(report.cycles)}`)
})

test('src/ follows the import rule: no forbidden import, no cycle between layers, a core that loads only built-ins, mqtt-packet and contracts', () => {
  const tree = readTree()
  assert.ok(tree.size > 20 && tree.has('src/server.ts') && tree.has('src/mqtt/broker.ts'), 'read the real src/ tree')
  const report = checkImports(tree)
  assert.ok(report.imports.length > 100, 'found the imports of the real tree')
  assert.deepEqual(report.violations, [], `imports the table forbids:${list(report.violations)}`)
  assert.deepEqual(report.cycles, [], `cycles between layers:${list(report.cycles)}`)
  assert.deepEqual(report.coreRuntime, [], `run-time imports of the core:${list(report.coreRuntime)}`)
})

test('the checker reports every planted violation, type-only imports included, and nothing else', () => {
  const real = readTree()
  const before = checkImports(real)
  const planted = new Map(real)
  planted.set('src/mqtt/planted.ts', "import Database from 'better-sqlite3'\nexport const db = new Database(':memory:')\n")
  planted.set('src/mqtt/planted2.ts', "import { FailureStore } from '../failures/store.ts'\nexport { FailureStore }\n")
  planted.set('src/mqtt/handlers/planted-type.ts', "import type { FastifyInstance } from 'fastify'\nexport type App = FastifyInstance\n")
  planted.set('src/mqtt/planted-lazy.ts', "export const load = () => import('../plugins/broker.ts')\n")
  planted.set('src/failures/planted.ts', "import type { Broker } from '../mqtt/broker.ts'\nexport type B = Broker\n")
  planted.set('src/failures/planted2.ts', "export * from '../settings/store.ts'\n")
  planted.set('src/db/planted.ts', "import { DEFAULT_SETTINGS } from '../settings/schema.ts'\nexport { DEFAULT_SETTINGS }\n")
  planted.set('src/contracts/planted.ts', "import Type from 'typebox'\nexport const T = Type.String()\n")
  planted.set('src/routes/planted.ts', "import '../plugins/auth.ts'\nimport { x } from './health.ts'\nexport { x }\n")
  planted.set('src/settings/planted.ts', "import { AppError } from '../errors.ts'\nexport { AppError }\n")
  planted.set('src/server.ts', `${real.get('src/server.ts')}\nimport 'fastify'\n`)
  planted.set('src/util/planted.ts', "export const u = 1\n")
  const report = checkImports(planted)

  const added = report.violations.filter((v) => !before.violations.includes(v))
  assert.deepEqual(added.sort(), [
    "src/contracts/planted.ts imports 'typebox' (layer contracts -> package typebox not allowed)",
    "src/db/planted.ts imports '../settings/schema.ts' (layer db -> layer settings not allowed)",
    "src/failures/planted.ts imports '../mqtt/broker.ts' (layer failures -> layer mqtt not allowed)",
    "src/failures/planted2.ts imports '../settings/store.ts' (layer failures -> layer settings not allowed)",
    "src/mqtt/handlers/planted-type.ts imports 'fastify' (layer mqtt -> package fastify not allowed)",
    "src/mqtt/planted-lazy.ts imports '../plugins/broker.ts' (layer mqtt -> layer plugins not allowed)",
    "src/mqtt/planted.ts imports 'better-sqlite3' (layer mqtt -> package better-sqlite3 not allowed)",
    "src/mqtt/planted2.ts imports '../failures/store.ts' (layer mqtt -> layer failures not allowed)",
    "src/routes/planted.ts imports '../plugins/auth.ts' (layer routes -> layer plugins not allowed)",
    "src/routes/planted.ts imports './health.ts' (layer routes -> layer routes not allowed)",
    "src/server.ts imports 'fastify' (layer server.ts -> package fastify not allowed)",
    "src/settings/planted.ts imports '../errors.ts' (layer settings -> layer errors.ts not allowed)",
    'src/util/planted.ts is in layer util, which the import table does not list',
  ])

  // The run-time rule of the core: the type-only import of fastify is erased, the others load at run time.
  const core = report.coreRuntime.filter((v) => !before.coreRuntime.includes(v))
  assert.deepEqual(core.map((v) => v.split(' at run time')[0]).sort(), [
    "src/mqtt/planted-lazy.ts imports '../plugins/broker.ts'",
    "src/mqtt/planted.ts imports 'better-sqlite3'",
    "src/mqtt/planted2.ts imports '../failures/store.ts'",
  ])
})

test('the checker reports a planted cycle between layers, even one made by a type-only import', () => {
  const real = readTree()
  const planted = new Map(real)
  // contracts -> db (type-only) closes a loop with db -> contracts, which the real tree has.
  planted.set('src/contracts/planted-cycle.ts', "import type { Database } from '../db/open.ts'\nexport type D = Database\n")
  // settings -> failures -> settings
  planted.set('src/settings/planted-cycle.ts', "import { FailureStore } from '../failures/store.ts'\nexport { FailureStore }\n")
  planted.set('src/failures/planted-cycle.ts', "import { SettingsStore } from '../settings/store.ts'\nexport { SettingsStore }\n")
  const report = checkImports(planted)
  const dbEdge = [...report.imports].find((i) => i.layer === 'db' && i.target.kind === 'layer' && i.target.layer === 'contracts')
  assert.ok(dbEdge, 'the real tree has a db -> contracts import')
  assert.deepEqual(report.cycles, [
    `layer cycle contracts -> db -> contracts (all of contracts, db): src/contracts/planted-cycle.ts imports '../db/open.ts'; ${dbEdge.file} imports '${dbEdge.specifier}'`,
    "layer cycle failures -> settings -> failures (all of failures, settings): src/failures/planted-cycle.ts imports '../settings/store.ts'; src/settings/planted-cycle.ts imports '../failures/store.ts'",
  ])
})
