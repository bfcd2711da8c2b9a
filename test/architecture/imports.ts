// Finds every import of a TypeScript source without a parser: a small tokenizer that knows comments, strings,
// template literals (with nested ${...}) and regular expression literals, so that an `import` inside any of them
// is not taken for one, then a pass over the tokens that recognises
//   import x, { y } from '...'   import type { T } from '...'   import { type T } from '...'   import '...'
//   export * from '...'          export { y } from '...'        export type { T } from '...'
//   import('...')                typeof import('...')           import x = require('...')      require('...')
// An import is `typeOnly` when it is erased from the emitted JavaScript (import type, export type, only inline
// `type` specifiers, `typeof import(...)` or `import('...').T` in a type position).

export type ImportKind = 'import' | 'side-effect' | 'export' | 'dynamic' | 'require'

export interface FoundImport {
  /** The module specifier as written; null when a dynamic import or require has a non-literal argument. */
  specifier: string | null
  kind: ImportKind
  typeOnly: boolean
  line: number
}

interface Token {
  type: 'id' | 'str' | 'tmpl' | 'num' | 'regex' | 'punct'
  value: string
  line: number
  /** For 'tmpl': the template has no ${...} substitution (then it is a literal like a string). */
  plain?: boolean
}

// After these keywords a `/` starts a regular expression, not a division.
const REGEX_AFTER_KEYWORD = new Set([
  'return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'instanceof', 'yield',
  'await', 'extends',
])

const isIdStart = (c: string) => /[A-Za-z_$#\u0080-\uffff]/.test(c)
const isIdPart = (c: string) => /[\w$\u0080-\uffff]/.test(c)

function tokenize(src: string): Token[] {
  const tokens: Token[] = []
  // One entry per open `{`: 'brace' for code, 'tmpl' for a template's `${`.
  const braces: Array<'brace' | 'tmpl'> = []
  let i = 0
  let line = 1
  const n = src.length

  /** Reads a template literal's text from i (just after ` or the } closing a substitution). */
  const readTemplate = (startLine: number, continued: boolean) => {
    let text = ''
    while (i < n) {
      const c = src[i]
      if (c === '\\') {
        text += src[i + 1] ?? ''
        if (src[i + 1] === '\n') line++
        i += 2
        continue
      }
      if (c === '`') {
        i++
        tokens.push({ type: 'tmpl', value: text, line: startLine, plain: !continued })
        return
      }
      if (c === '$' && src[i + 1] === '{') {
        i += 2
        tokens.push({ type: 'tmpl', value: text, line: startLine, plain: false })
        braces.push('tmpl')
        return
      }
      if (c === '\n') line++
      text += c
      i++
    }
  }

  const regexAllowed = () => {
    const prev = tokens[tokens.length - 1]
    if (!prev) return true
    if (prev.type === 'id') return REGEX_AFTER_KEYWORD.has(prev.value)
    if (prev.type === 'punct') return !(prev.value === ')' || prev.value === ']' || prev.value === '}')
    return false
  }

  while (i < n) {
    const c = src[i]!
    if (c === '\n') {
      line++
      i++
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\f' || c === '\v' || c === '\uFEFF') {
      i++
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2)
      const stop = end === -1 ? n : end + 2
      for (let k = i; k < stop; k++) if (src[k] === '\n') line++
      i = stop
    } else if (c === '"' || c === "'") {
      const startLine = line
      let text = ''
      i++
      while (i < n && src[i] !== c && src[i] !== '\n') {
        if (src[i] === '\\') {
          text += src[i + 1] ?? ''
          if (src[i + 1] === '\n') line++
          i += 2
        } else {
          text += src[i]
          i++
        }
      }
      i++
      tokens.push({ type: 'str', value: text, line: startLine })
    } else if (c === '`') {
      i++
      readTemplate(line, false)
    } else if (c === '}' && braces[braces.length - 1] === 'tmpl') {
      braces.pop()
      i++
      readTemplate(line, true)
    } else if (isIdStart(c)) {
      const start = i
      i++
      while (i < n && isIdPart(src[i]!)) i++
      tokens.push({ type: 'id', value: src.slice(start, i), line })
    } else if (/[0-9]/.test(c)) {
      const start = i
      while (i < n && /[\w.]/.test(src[i]!)) i++
      tokens.push({ type: 'num', value: src.slice(start, i), line })
    } else if (c === '/' && regexAllowed()) {
      const start = i
      let inClass = false
      i++
      while (i < n && src[i] !== '\n') {
        const r = src[i]
        if (r === '/' && !inClass) break
        if (r === '[') inClass = true
        else if (r === ']') inClass = false
        i += r === '\\' ? 2 : 1
      }
      i++
      while (i < n && isIdPart(src[i]!)) i++
      tokens.push({ type: 'regex', value: src.slice(start, i), line })
    } else {
      if (c === '{') braces.push('brace')
      else if (c === '}') braces.pop()
      tokens.push({ type: 'punct', value: c, line })
      i++
    }
  }
  return tokens
}

const isPunct = (t: Token | undefined, v: string) => t !== undefined && t.type === 'punct' && t.value === v
const isId = (t: Token | undefined, v?: string) => t !== undefined && t.type === 'id' && (v === undefined || t.value === v)
/** A string, or a template literal without substitutions. */
const literal = (t: Token | undefined): string | null =>
  t === undefined ? null : t.type === 'str' || (t.type === 'tmpl' && t.plain) ? t.value : null

/**
 * Reads a brace list `{ a, type B, c as d }` starting at tokens[k] === '{'. Returns the index after the closing brace
 * and whether every specifier carries an inline `type` (and there is at least one).
 */
function readSpecifiers(tokens: Token[], k: number): { next: number; allInlineType: boolean } {
  let j = k + 1
  let specs = 0
  let typed = 0
  let current: string[] = []
  const close = () => {
    if (current.length === 0) return
    specs++
    // `type X` or `type X as Y` (but not `type` alone, nor `type as X`, which name a binding called "type")
    if (current[0] === 'type' && current.length > 1 && !(current[1] === 'as' && current.length === 3)) typed++
    current = []
  }
  while (j < tokens.length && !isPunct(tokens[j], '}')) {
    const t = tokens[j]!
    if (isPunct(t, ',')) close()
    else current.push(t.value)
    j++
  }
  close()
  return { next: j + 1, allInlineType: specs > 0 && typed === specs }
}

export function extractImports(src: string): FoundImport[] {
  const tokens = tokenize(src)
  const found: FoundImport[] = []
  /** `require` tokens already recorded as part of `import x = require(...)`. */
  const consumed = new Set<number>()

  for (let k = 0; k < tokens.length; k++) {
    const tok = tokens[k]!
    if (tok.type !== 'id') continue
    const prev = tokens[k - 1]
    // `x.import(...)`, `x.require(...)`, `{ import: 1 }`-style member names are not imports.
    if (isPunct(prev, '.') || isPunct(tokens[k + 1], ':')) continue

    if (tok.value === 'import') {
      const next = tokens[k + 1]
      if (isPunct(next, '.')) continue // import.meta
      if (isPunct(next, '(')) {
        const spec = literal(tokens[k + 2])
        const closed = isPunct(tokens[k + 3], ')')
        // In a type position: `typeof import('x')` or `import('x').Name` (a promise has no such members but then/catch/finally).
        const member = closed && isPunct(tokens[k + 4], '.') ? tokens[k + 5] : undefined
        const typeOnly =
          isId(prev, 'typeof') || (member !== undefined && isId(member) && !['then', 'catch', 'finally'].includes(member.value))
        found.push({ specifier: spec !== null && closed ? spec : null, kind: 'dynamic', typeOnly, line: tok.line })
        continue
      }
      const bare = literal(next)
      if (bare !== null) {
        found.push({ specifier: bare, kind: 'side-effect', typeOnly: false, line: tok.line })
        continue
      }
      // import [type] <clause> from '...'   |   import [type] x = require('...')
      let j = k + 1
      let typeOnly = false
      if (isId(tokens[j], 'type') && !isPunct(tokens[j + 1], ',') && !(isId(tokens[j + 1], 'from') && literal(tokens[j + 2]) !== null) && !isPunct(tokens[j + 1], '=')) {
        typeOnly = true
        j++
      }
      let hasBinding = false // a default or namespace binding (never erased by inline `type`)
      let allInlineType = false
      while (j < tokens.length) {
        const t = tokens[j]!
        if (isId(t, 'from') && literal(tokens[j + 1]) !== null) {
          found.push({
            specifier: literal(tokens[j + 1]),
            kind: 'import',
            typeOnly: typeOnly || (!hasBinding && allInlineType),
            line: tok.line,
          })
          break
        }
        if (isPunct(t, '{')) {
          const r = readSpecifiers(tokens, j)
          allInlineType = r.allInlineType
          j = r.next
          continue
        }
        if (isPunct(t, '=')) {
          if (isId(tokens[j + 1], 'require') && isPunct(tokens[j + 2], '(')) {
            const spec = literal(tokens[j + 3])
            found.push({ specifier: spec, kind: 'require', typeOnly, line: tok.line })
            consumed.add(j + 1)
          }
          break
        }
        if (t.type === 'id' || isPunct(t, '*') || isPunct(t, ',')) {
          if (t.type === 'id' || isPunct(t, '*')) hasBinding = true
          j++
          continue
        }
        break // not an import declaration after all
      }
      continue
    }

    if (tok.value === 'export') {
      let j = k + 1
      let typeOnly = false
      if (isId(tokens[j], 'type') && (isPunct(tokens[j + 1], '{') || isPunct(tokens[j + 1], '*'))) {
        typeOnly = true
        j++
      }
      if (isPunct(tokens[j], '*')) {
        j++
        if (isId(tokens[j], 'as')) j += 2
      } else if (isPunct(tokens[j], '{')) {
        const r = readSpecifiers(tokens, j)
        typeOnly = typeOnly || r.allInlineType
        j = r.next
      } else {
        continue // export const / function / default / import x = ...: no module specifier here
      }
      if (isId(tokens[j], 'from') && literal(tokens[j + 1]) !== null) {
        found.push({ specifier: literal(tokens[j + 1]), kind: 'export', typeOnly, line: tok.line })
      }
      continue
    }

    if (tok.value === 'require' && !consumed.has(k) && isPunct(tokens[k + 1], '(') && !isId(prev, 'function')) {
      const spec = literal(tokens[k + 2])
      found.push({ specifier: spec !== null && isPunct(tokens[k + 3], ')') ? spec : null, kind: 'require', typeOnly: false, line: tok.line })
    }
  }
  return found
}
