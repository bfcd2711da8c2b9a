// The import rule checker: a pure function over a Map of repository-relative path ('src/mqtt/broker.ts') to source
// text. It reads no disk, so a test can run it over the real tree with files planted in memory.
import { isBuiltin } from 'node:module'
import { posix } from 'node:path'
import { extractImports, type FoundImport } from './imports.ts'
import { RULES, type Rules } from './rules.ts'

export type Target =
  | { kind: 'builtin'; name: string }
  | { kind: 'package'; name: string }
  | { kind: 'layer'; layer: string; path: string }
  | { kind: 'outside'; path: string }
  | { kind: 'unknown' }

export interface ResolvedImport extends FoundImport {
  file: string
  layer: string
  target: Target
}

export interface Report {
  imports: ResolvedImport[]
  /** One line per import the table forbids: "src/x.ts imports '...' (layer a -> layer b not allowed)". */
  violations: string[]
  /** One line per cycle between layers: "layer cycle a -> b -> a: <the import behind each edge>". */
  cycles: string[]
  /** Run-time imports of the core (mqtt/) that are not Node built-ins, mqtt-packet, contracts/ or mqtt/ itself. */
  coreRuntime: string[]
  /** layer -> the other layers it imports (type-only imports included). */
  graph: Map<string, Set<string>>
}

/** The core and what it may load at run time: "the core's runtime imports are Node built-ins, mqtt-packet and contracts". */
export const CORE = { layer: 'mqtt', layers: ['contracts', 'mqtt'], packages: ['mqtt-packet'] } as const

/** 'src/mqtt/handlers/x.ts' -> 'mqtt'; 'src/app.ts' -> 'app.ts'. */
export function layerOf(path: string): string {
  return path.split('/')[1]!
}

/** 'typebox/value' -> 'typebox', '@fastify/error/x' -> '@fastify/error'. */
export function packageName(specifier: string): string {
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

export function resolve(file: string, specifier: string | null): Target {
  if (specifier === null) return { kind: 'unknown' }
  if (specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../')) {
    const path = posix.normalize(posix.join(posix.dirname(file), specifier))
    if (!path.startsWith('src/')) return { kind: 'outside', path }
    return { kind: 'layer', layer: layerOf(path), path }
  }
  if (specifier.startsWith('/') || (/^[a-z]+:/i.test(specifier) && !specifier.startsWith('node:'))) {
    return { kind: 'outside', path: specifier }
  }
  if (isBuiltin(specifier)) return { kind: 'builtin', name: specifier }
  return { kind: 'package', name: packageName(specifier) }
}

const describeTarget = (t: Target): string => {
  switch (t.kind) {
    case 'builtin': return `built-in ${t.name}`
    case 'package': return `package ${t.name}`
    case 'layer': return `layer ${t.layer}`
    case 'outside': return `${t.path} (outside src/)`
    case 'unknown': return 'a computed specifier'
  }
}

function allowed(rules: Rules, from: string, t: Target): boolean {
  const rule = rules[from]
  if (t.kind === 'builtin') return true
  if (!rule) return false
  switch (t.kind) {
    case 'package': return rule.packages === 'any' || rule.packages.includes(t.name)
    case 'layer': return t.layer === from ? rule.ownLayer !== false : rule.layers.includes(t.layer)
    default: return false
  }
}

function runtimeAllowedInCore(t: Target): boolean {
  switch (t.kind) {
    case 'builtin': return true
    case 'package': return (CORE.packages as readonly string[]).includes(t.name)
    case 'layer': return (CORE.layers as readonly string[]).includes(t.layer)
    default: return false
  }
}

/** Strongly connected components of the layer graph (Tarjan), each sorted, only those with more than one layer. */
function components(graph: Map<string, Set<string>>): string[][] {
  let index = 0
  const idx = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: string[][] = []
  const visit = (v: string) => {
    idx.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!idx.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!))
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        scc.push(w)
      } while (w !== v)
      if (scc.length > 1) out.push(scc.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v)
  return out.sort((a, b) => a[0]!.localeCompare(b[0]!))
}

/** A shortest cycle through `start` inside one component, as a list of layers ending where it starts. */
function cycleThrough(graph: Map<string, Set<string>>, scc: Set<string>, start: string): string[] {
  const parent = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const v = queue.shift()!
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!scc.has(w)) continue
      if (w === start) {
        const path = [v]
        while (path[0] !== start) path.unshift(parent.get(path[0]!)!)
        return [...path, start]
      }
      if (!parent.has(w)) {
        parent.set(w, v)
        queue.push(w)
      }
    }
  }
  return [start]
}

export function checkImports(files: ReadonlyMap<string, string>, rules: Rules = RULES): Report {
  const imports: ResolvedImport[] = []
  const violations: string[] = []
  const coreRuntime: string[] = []
  const graph = new Map<string, Set<string>>()
  /** 'a -> b' -> the first import (in path order) that makes the edge. */
  const witness = new Map<string, ResolvedImport>()

  for (const file of [...files.keys()].sort()) {
    const layer = layerOf(file)
    if (!rules[layer]) violations.push(`${file} is in layer ${layer}, which the import table does not list`)
    if (!graph.has(layer)) graph.set(layer, new Set())
    for (const found of extractImports(files.get(file)!)) {
      const target = resolve(file, found.specifier)
      const imp: ResolvedImport = { ...found, file, layer, target }
      imports.push(imp)
      const quoted = found.specifier === null ? `<computed> (line ${found.line})` : `'${found.specifier}'`
      if (!allowed(rules, layer, target)) {
        violations.push(`${file} imports ${quoted} (layer ${layer} -> ${describeTarget(target)} not allowed)`)
      }
      if (layer === CORE.layer && !found.typeOnly && !runtimeAllowedInCore(target)) {
        coreRuntime.push(`${file} imports ${quoted} at run time (${describeTarget(target)}; the core's runtime imports are Node built-ins, mqtt-packet and contracts)`)
      }
      if (target.kind === 'layer' && target.layer !== layer) {
        graph.get(layer)!.add(target.layer)
        if (!graph.has(target.layer)) graph.set(target.layer, new Set())
        const edge = `${layer} -> ${target.layer}`
        if (!witness.has(edge)) witness.set(edge, imp)
      }
    }
  }

  const cycles = components(graph).map((scc) => {
    const cycle = cycleThrough(graph, new Set(scc), scc[0]!)
    const because = cycle.slice(0, -1).map((from, i) => {
      const w = witness.get(`${from} -> ${cycle[i + 1]}`)!
      return `${w.file} imports '${w.specifier}'`
    })
    return `layer cycle ${cycle.join(' -> ')} (all of ${scc.join(', ')}): ${because.join('; ')}`
  })

  return { imports, violations, cycles, coreRuntime, graph }
}
