/** Peer transport: pipelined undici clients + node:http peer server. */
export { Transport } from './transport.js';
export { estimateMessageBytes } from './peer.js';
export type { MessageCheck } from './validate.js';
export { trace, traceNow, traceOn } from './trace.js';
export {
  HEADER_SNAPSHOT_STREAM,
  SNAPSHOT_WIRE_CHUNK_BYTES,
  SnapshotStreamError,
  type SnapshotBody,
} from './snapshot-stream.js';
export {
  DEFAULT_BACKOFF,
  DEFAULT_LIMITS,
  HEADER_ACCEPT_REPLIES,
  HEADER_CLUSTER_ID,
  HEADER_FROM,
  HEADER_TO,
  NOOP_LOGGER,
  PATH_HEALTH,
  PATH_MESSAGES,
  PATH_SNAPSHOT,
  type BackoffOptions,
  type PeerStats,
  type ServerStats,
  type TransportLimits,
  type TransportLogger,
  type TransportOptions,
  type TransportStats,
} from './types.js';
