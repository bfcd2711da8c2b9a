// Summarise a V8 .cpuprofile (as `npm run bench -- --profile` writes under bench-output/profiles/): the functions
// with the most self time, and the inclusive time of our own code (src/), so that the hot packet path is visible
// without opening DevTools.
//
//   npx tsx bench/profile-summary.ts bench-output/profiles/fanin-ours-r1.cpuprofile [--top=30] [--all]
//     [--grep=REGEX]     inclusive time of the functions whose name or file matches
//     [--callers=NAME]   the heaviest stacks leading to a function
import fs from 'node:fs'
import path from 'node:path'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const file = process.argv[2]
if (!file) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile> [--top=N]')
  process.exit(2)
}
const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 30)
const prof: CpuProfile = JSON.parse(fs.readFileSync(file, 'utf8'))

const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

// Only the measurement window when the bench left one beside the profile (<name>.window.json, monotonic µs).
const windowFile = file.replace(/\.cpuprofile$/, '.window.json')
const win: { startUs: number, endUs: number } | null = fs.existsSync(windowFile) && !process.argv.includes('--all')
  ? JSON.parse(fs.readFileSync(windowFile, 'utf8'))
  : null

// time per sample: the delta to the next sample (V8's convention)
const selfUs = new Map<number, number>()
let t = prof.startTime
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i]
  if (win !== null && (t < win.startUs || t > win.endUs)) continue
  const dt = prof.timeDeltas[i + 1] ?? 0
  selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + dt)
}
const idleUs = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0)
for (const [id] of selfUs) if (byId.get(id)!.callFrame.functionName === '(idle)') selfUs.delete(id)
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0)

function shortUrl(url: string): string {
  if (!url) return ''
  const p = url.replace(/^file:\/\//, '')
  const nm = p.lastIndexOf('node_modules/')
  if (nm >= 0) return p.slice(nm + 'node_modules/'.length)
  const src = p.indexOf('/src/')
  if (src >= 0) return p.slice(src + 1)
  return path.basename(p)
}
function key(cf: CallFrame): string {
  const name = cf.functionName || '(anonymous)'
  const where = shortUrl(cf.url)
  return where ? `${name}  ${where}:${cf.lineNumber + 1}` : name
}

// self time by function
const self = new Map<string, number>()
for (const [id, us] of selfUs) {
  const k = key(byId.get(id)!.callFrame)
  self.set(k, (self.get(k) ?? 0) + us)
}
// inclusive time by function (each sample counted once per distinct function on its stack)
const incl = new Map<string, number>()
for (const [id, us] of selfUs) {
  const seen = new Set<string>()
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const k = key(byId.get(n)!.callFrame)
    if (seen.has(k)) continue
    seen.add(k)
    incl.set(k, (incl.get(k) ?? 0) + us)
  }
}
// self time by package / area
const area = new Map<string, number>()
for (const [id, us] of selfUs) {
  const cf = byId.get(id)!.callFrame
  const u = shortUrl(cf.url)
  const a = !u ? (cf.functionName.startsWith('(') ? cf.functionName : '(native)')
    : u.startsWith('src/') ? u.split('/').slice(0, 2).join('/')
      : cf.url.includes('node_modules/') ? u.split('/')[0].startsWith('@') ? u.split('/').slice(0, 2).join('/') : u.split('/')[0]
        : cf.url.startsWith('node:') ? 'node:' + u : u
  area.set(a, (area.get(a) ?? 0) + us)
}

const pct = (us: number) => ((us * 100) / totalUs).toFixed(1).padStart(5) + '%'
const print = (title: string, m: Map<string, number>, n: number, filter: (k: string) => boolean = () => true) => {
  console.log(`\n${title}`)
  for (const [k, us] of [...m].filter(([k]) => filter(k)).sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`  ${pct(us)}  ${k}`)
}
console.log(`${file}: ${((totalUs + idleUs) / 1e6).toFixed(2)} s sampled${win ? ' (the measurement window only; --all for everything)' : ''}, ` +
  `${((idleUs * 100) / (totalUs + idleUs)).toFixed(1)}% idle; shares below are of the busy time`)
print('self time by area', area, 15)
print(`self time, top ${top}`, self, top)
print('inclusive time, our code (src/)', incl, top, (k) => / src\//.test(k))
// --grep=REGEX: inclusive time of every function whose name or file matches
const grep = process.argv.find((a) => a.startsWith('--grep='))?.slice(7)
if (grep) print(`inclusive time matching /${grep}/`, incl, top || 30, (k) => new RegExp(grep).test(k))

// --callers=NAME: the heaviest stacks leading to a function (e.g. --callers=NodeError)
const callersOf = process.argv.find((a) => a.startsWith('--callers='))?.slice(10)
if (callersOf) {
  const stacks = new Map<string, number>()
  for (const [id, us] of selfUs) {
    const frames: string[] = []
    let hit = false
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const cf = byId.get(n)!.callFrame
      if (cf.functionName === callersOf) hit = true
      if (hit) frames.push(key(cf))
    }
    if (!hit) continue
    const k = frames.slice(0, 12).join('\n      <- ')
    stacks.set(k, (stacks.get(k) ?? 0) + us)
  }
  console.log(`\nstacks leading to ${callersOf}`)
  for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`  ${pct(us)}  ${k}\n`)
}
