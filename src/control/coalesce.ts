// One run at a time of a task that catches up (pull what is new, ship what waits): a call while it runs gets the
// next run, which starts once this one ends, however many calls wait for it. Every caller's promise settles after
// a run that started after its call, so "caught up" holds for what was there when it asked.
export function coalesce(task: () => Promise<void>): () => Promise<void> {
  let current: Promise<void> | null = null
  let next: Promise<void> | null = null
  const start = (): Promise<void> => {
    const run = task().finally(() => {
      if (current === run) current = null
    })
    current = run
    return run
  }
  return () => {
    if (next !== null) return next
    if (current === null) return start()
    next = current.catch(() => {}).then(() => {
      next = null
      return start()
    })
    return next
  }
}
