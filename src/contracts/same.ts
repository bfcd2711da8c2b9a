// A compile-time check that two types are the same: a TypeBox schema's Static<> type against the plain contract it
// implements, so that there is still one source of truth for each shape and the two cannot drift apart.
//   type Checked = Assert<Same<Static<typeof Schema>, Contract>>     (fails to compile when they differ)

export type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
export type Assert<T extends true> = T
