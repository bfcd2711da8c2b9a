// The failure reasons of DESIGN.md (src/failures/schema.ts FAILURE_REASONS), with a colour and a short label each.
export const REASONS = [
  { id: 'connect_timeout', label: 'connect timeout', color: '#e4572e' },
  { id: 'closed_before_connect', label: 'closed before CONNECT', color: '#f3a712' },
  { id: 'keepalive_timeout', label: 'keepalive timeout', color: '#7b4fb8' },
  { id: 'connection_lost', label: 'connection lost', color: '#1982c4' },
  { id: 'protocol_error', label: 'protocol error', color: '#c9184a' },
  { id: 'connect_rejected', label: 'CONNECT rejected', color: '#5a9e1b' },
  { id: 'packet_too_large', label: 'packet too large', color: '#00a6a6' },
  { id: 'websocket_error', label: 'WebSocket error', color: '#6c757d' },
  { id: 'taken_over', label: 'taken over', color: '#b5838d' },
  { id: 'auth_failed', label: 'auth failed', color: '#8d6e3f' },
  { id: 'slow_consumer', label: 'slow consumer', color: '#3d5a80' },
  { id: 'tls_error', label: 'TLS error', color: '#9c6644' },
]

const byId = new Map(REASONS.map((r) => [r.id, r]))

export const reasonInfo = (id) => byId.get(id) ?? { id, label: String(id).replaceAll('_', ' '), color: '#999999' }

export const PHASES = { handshake: 'handshake', awaiting_connect: 'awaiting CONNECT', connected: 'connected' }
