// Free text an operator writes (a user's note, a rule's comment): trimmed, and an empty one stored as null.
export const trimmedOrNull = (s: string | null | undefined): string | null =>
  typeof s === 'string' && s.trim() !== '' ? s.trim() : null
