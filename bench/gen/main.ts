// A load-generator process: forked by bench/run.ts, takes one job over IPC, runs it, sends the result back, exits.
// It never shares an event loop with a broker, and it ends itself when the bench goes away.
import { runJob, type Job } from './scenarios.ts'

process.on('disconnect', () => process.exit(0))
process.once('message', async (job: Job) => {
  try {
    const result = await runJob(job)
    process.send?.({ ok: true, result }, () => process.exit(0))
  } catch (err) {
    process.send?.({ ok: false, error: (err as Error).stack ?? String(err) }, () => process.exit(1))
  }
})
