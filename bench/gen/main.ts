// A load-generator process: forked by bench/run.ts, takes one job over IPC, runs it, sends the result back, exits.
// It never shares an event loop with a broker, and it ends itself when the bench goes away.
// Attack and probe jobs (bench/gen/attacks.ts) also report their phases ({ phase }) and end early on { stop: true }.
import { runJob, type Job } from './scenarios.ts'
import { runAttack, requestStop, type AttackJob, type ProbeJob } from './attacks.ts'

type AnyJob = Job | AttackJob | ProbeJob

const isAttack = (job: AnyJob): job is AttackJob | ProbeJob => job.scenario === 'probe' || job.scenario.startsWith('attack-')

process.on('disconnect', () => process.exit(0))
process.once('message', async (job: AnyJob) => {
  process.on('message', (m: { stop?: boolean }) => { if (m?.stop) requestStop() })
  try {
    const result = isAttack(job)
      ? await runAttack(job, (phase) => process.send?.({ phase, at: Date.now() }))
      : await runJob(job)
    process.send?.({ ok: true, result }, () => process.exit(0))
  } catch (err) {
    process.send?.({ ok: false, error: (err as Error).stack ?? String(err) }, () => process.exit(1))
  }
})
