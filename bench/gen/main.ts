// A load-generator process: forked by bench/run.ts, takes one job over IPC, runs it, sends the result back, exits.
// It never shares an event loop with a broker, and it ends itself when the bench goes away.
// Attack and probe jobs (bench/gen/attacks.ts), the reconnect storm (bench/gen/storm.ts) and the idle fleet
// (bench/gen/idle.ts) also report their phases ({ phase }) and end early on { stop: true }.
import { runJob, type Job } from './scenarios.ts'
import { runAttack, requestStop, type AttackJob, type ProbeJob } from './attacks.ts'
import { reconnectStorm, requestStormStop, type ReconnectStormJob } from './storm.ts'
import { idleFleet, requestIdleStop, type IdleFleetJob } from './idle.ts'
import { topicAlias, type TopicAliasJob } from './alias.ts'
import { spreadMemory, type SpreadMemoryJob } from './cluster.ts'

type AnyJob = Job | AttackJob | ProbeJob | ReconnectStormJob | IdleFleetJob | TopicAliasJob | SpreadMemoryJob

const isAttack = (job: AnyJob): job is AttackJob | ProbeJob => job.scenario === 'probe' || job.scenario.startsWith('attack-')

process.on('disconnect', () => process.exit(0))
process.once('message', async (job: AnyJob) => {
  process.on('message', (m: { stop?: boolean }) => { if (m?.stop) { requestStop(); requestStormStop(); requestIdleStop() } })
  const notify = (phase: string) => process.send?.({ phase, at: Date.now() })
  try {
    const result = job.scenario === 'reconnect-storm' ? await reconnectStorm(job, notify)
      : job.scenario === 'idle-fleet' ? await idleFleet(job, notify)
        : job.scenario === 'topic-alias' ? await topicAlias(job)
          : job.scenario === 'spread-memory' ? await spreadMemory(job)
            : isAttack(job) ? await runAttack(job, notify) : await runJob(job)
    process.send?.({ ok: true, result }, () => process.exit(0))
  } catch (err) {
    process.send?.({ ok: false, error: (err as Error).stack ?? String(err) }, () => process.exit(1))
  }
})
