// One CIDR block ("10.0.0.0/8", "2001:db8::/32", or a bare address for one host) read from text: the one parser the
// settings store validates profiles with and the core's profile matcher builds its address lists from.
import { isIP } from 'node:net'

export interface Cidr {
  address: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

/** The block `text` names, or null when it is not an IPv4 or IPv6 address with an optional /prefix in range. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/')
  const address = slash === -1 ? text : text.slice(0, slash)
  const version = isIP(address)
  if (version === 0) return null
  const bits = version === 4 ? 32 : 128
  if (slash === -1) return { address, prefix: bits, family: version === 4 ? 'ipv4' : 'ipv6' }
  const prefixText = text.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText)) return null
  const prefix = Number(prefixText)
  return prefix <= bits ? { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' } : null
}
