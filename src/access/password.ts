// Password records of MQTT users: scrypt (node:crypto, async: the key derivation runs on libuv's thread pool, never
// on the event loop), a random 16-byte salt, stored as one self-describing string `scrypt$N$r$p$saltB64$hashB64`.
// A record keeps its own parameters, so records written with older parameters still verify after a change.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

export interface ScryptParams {
  /** CPU/memory cost, a power of two */
  N: number
  /** block size */
  r: number
  /** parallelization */
  p: number
  /** derived key length, bytes */
  keylen: number
}

/** What new passwords are hashed with: 16 MiB and about 50 ms of one core per hash or check. */
export const SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ N: 16384, r: 8, p: 1, keylen: 32 })
export const SALT_BYTES = 16

/** Bounds of a stored record's parameters: a damaged or hostile row cannot ask for gigabytes or minutes. */
const MAX_N = 2 ** 20
const MAX_R = 32
const MAX_P = 16
const MAX_MEMORY_BYTES = 256 * 1024 * 1024

const RECORD = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/

interface ParsedRecord {
  params: ScryptParams
  salt: Buffer
  hash: Buffer
}

const derive = (password: Buffer, salt: Buffer, params: ScryptParams): Promise<Buffer> => {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 2 * 128 * params.N * params.r + 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scrypt(password, salt, params.keylen, options, (err, key) => (err ? reject(err) : resolve(key)))
  })
}

/** A stored record -> its parts; throws an Error saying what is wrong with it (never quoting the hash). */
export function parseRecord(record: string): ParsedRecord {
  const m = RECORD.exec(record)
  if (m === null) throw new Error('the stored password record is not of the form scrypt$N$r$p$salt$hash')
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const salt = Buffer.from(m[4], 'base64')
  const hash = Buffer.from(m[5], 'base64')
  const powerOfTwo = N >= 2 && (N & (N - 1)) === 0
  if (!powerOfTwo || N > MAX_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P || 128 * N * r > MAX_MEMORY_BYTES) {
    throw new Error(`the stored password record has scrypt parameters out of bounds (N=${N}, r=${r}, p=${p})`)
  }
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) {
    throw new Error(`the stored password record has a ${salt.length}-byte salt and a ${hash.length}-byte hash`)
  }
  return { params: { N, r, p, keylen: hash.length }, salt, hash }
}

/** A new record for `password` (a random salt, SCRYPT_PARAMS unless told otherwise). */
export async function hashPassword(password: Buffer, params: ScryptParams = SCRYPT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const hash = await derive(password, salt, params)
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Does `password` match `record`? Compared in constant time. Rejects when the record is unreadable. */
export async function verifyPassword(password: Buffer, record: string): Promise<boolean> {
  const { params, salt, hash } = parseRecord(record)
  return timingSafeEqual(await derive(password, salt, params), hash)
}

/**
 * The cost of a verification without a record to check against: for a username that is not known, so that its
 * refusal takes as long as a wrong password's. Always false.
 */
export async function dummyVerify(password: Buffer | null): Promise<false> {
  await derive(password ?? Buffer.alloc(0), randomBytes(SALT_BYTES), SCRYPT_PARAMS)
  return false
}
