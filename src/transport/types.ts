/**
 * Public types of the peer transport: options, limits and statistics.
 *
 * The transport moves Raft `Message`s between cluster members over HTTP/1.1. It is lossy by
 * design (Raft tolerates loss, duplication and reordering): when a peer is slow or down, messages
 * beyond a bounded per-peer queue are dropped, counted, and the runtime is told the peer is
 * unreachable so the Raft core throttles (probe state) and retransmits.
 */

import type { Message, NodeId } from '../raft/types.js';
import type { SnapshotBody } from './snapshot-stream.js';
import type { MessageCheck } from './validate.js';

/** Structured logger; structurally compatible with the Raft core's logger. */
export interface TransportLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export const NOOP_LOGGER: TransportLogger = {
  debug() {},
  info() {},
  warn() {},
};

/** Memory and size bounds. Every field must be a positive safe integer. */
export interface TransportLimits {
  /** Largest `POST /raft` body accepted by the peer server, and the largest batch this node
   * sends (batches are split to fit; one message bigger than this is dropped). */
  bodyBytesMax: number;
  /** Largest snapshot accepted and sent: a streamed snapshot's body (its state), or the whole
   * message of one sent without a body. Default 8 GiB. */
  snapshotBytesMax: number;
  /** Messages waiting to be sent to one peer (not counting requests already in flight). */
  queueMessagesMax: number;
  /** Estimated bytes waiting to be sent to one peer. */
  queueBytesMax: number;
}

export const DEFAULT_LIMITS: TransportLimits = {
  bodyBytesMax: 16 * 1024 * 1024,
  snapshotBytesMax: 8 * 1024 * 1024 * 1024,
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
};

/** Per-peer reconnect gate: after a failure new batches are dropped for a delay that doubles
 * on each consecutive failure up to `maxMs`; a success resets it, and a valid request from the
 * peer (it is up) ends the current delay. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 2000 };

export interface TransportOptions {
  /** This node's id (positive safe integer). */
  id: NodeId;
  /** Cluster identity: requests carrying another one are refused with 412. */
  clusterId: string;
  /** Initial members: id → base URL (`http://host:port`). May include this node (ignored for
   * sending, and counted as a known sender). */
  peers: Map<NodeId, string>;
  /** Default '127.0.0.1'. */
  listenHost?: string;
  /** 0 picks a free port; see `Transport.address()`. */
  listenPort: number;
  /** Called with each received batch, in arrival order, synchronously from the request
   * handler. Throwing makes the request fail with 500 (the transport keeps serving). */
  onMessages(msgs: Message[]): void;
  /** Checks every received message beyond what the Raft core requires (messageProblem, always
   * applied): returns why the message must be refused, or null. A batch with a refused message
   * is answered 400 with that reason and not delivered. The runtime checks the bytes it puts
   * into entries and snapshots here. */
  checkMessage?: MessageCheck;
  /** Called with a received `MessageType.Snap` message; the sender is told success once the
   * promise resolves. Without it snapshots are delivered through `onMessages`. */
  onSnapshot?(msg: Message): Promise<void>;
  /** For an outgoing `MessageType.Snap` message: the body to stream after it (its snapshot data
   * then only describes the state), or null to send the message whole. */
  snapshotSource?(msg: Message): SnapshotBody | null;
  /** Called with a received streamed snapshot: the message (its descriptor) and the body, whose
   * chunks are CRC-checked as they arrive. The receiver must read the body to its end (or throw;
   * a SnapshotStreamError's status goes back to the sender) before the promise resolves; the
   * sender is told success once it has. Without it streamed snapshots are refused (400). */
  onSnapshotStream?(msg: Message, body: AsyncIterable<Uint8Array>, bodyBytes: number): Promise<void>;
  /** A peer could not be reached or messages to it were dropped (→ RawNode.reportUnreachable). */
  onUnreachable(id: NodeId): void;
  /**
   * Forwarded proposals (`MessageType.Prop`) to peer `id` that certainly never reached it:
   * dropped before being sent (backing off, queue full) or met a refused connection. The peer
   * did not append their entries, so they may be proposed again. (A Prop whose request failed
   * any other way may have been appended, and is not reported.) Optional.
   */
  onProposalsNotSent?(id: NodeId, msgs: Message[]): void;
  /** Outcome of sending a snapshot to a peer (→ RawNode.reportSnapshot). */
  onSnapshotStatus(id: NodeId, ok: boolean): void;
  /** A peer answered 410 Gone: it has applied this node's removal from the cluster (a committed
   * fact the core never tells a removed follower). Optional. */
  onRemoved?(byPeer: NodeId): void;
  limits?: Partial<TransportLimits>;
  logger?: TransportLogger;
  /** Requests allowed in flight on one peer connection (HTTP/1.1 pipelining depth). Default 8:
   * deep enough to hide round trips, shallow enough that a busy peer makes messages queue up
   * here, where they are batched into fewer, larger requests. */
  pipelining?: number;
  backoff?: Partial<BackoffOptions>;
  /** How long the peer server may hold the answer to a peer's batch, waiting for messages to
   * carry back in it, before answering 204 (see reply.ts). Default 20. */
  replyHoldMs?: number;
  /** Time to wait for a peer's response to a message batch before failing it. Default 5000. */
  requestTimeoutMs?: number;
  /** Time to wait for the answer to a snapshot (the receiver may persist it first). Default 60000. */
  snapshotTimeoutMs?: number;
  /** TCP connect timeout. Default 2000. */
  connectTimeoutMs?: number;
}

/** Counters for one remote peer. All counts are since the peer was added. */
export interface PeerStats {
  id: NodeId;
  url: string;
  /** Messages acknowledged (204) by the peer. */
  sentMessages: number;
  /** Batches acknowledged by the peer: our requests it accepted, plus batches we sent back in
   * the answers to its requests. */
  sentBatches: number;
  /** Of `sentBatches`, those carried in answers to the peer's own requests. */
  sentAsReplies: number;
  /** Messages the peer sent back in answers to our requests. */
  receivedReplyMessages: number;
  /** Answers to our requests whose batch was refused (malformed or not allowed). */
  badReplies: number;
  /** Encoded bytes acknowledged by the peer. */
  sentBytes: number;
  /** Messages dropped: queue full, backing off, failed request, too large, or peer removed. */
  droppedMessages: number;
  /** Failed requests (network errors, timeouts, non-2xx answers), snapshots included. */
  failures: number;
  /** Messages waiting in the queue now. */
  queuedMessages: number;
  /** Estimated bytes waiting in the queue now. */
  queuedBytes: number;
  /** Batch requests in flight now. */
  inflightRequests: number;
  /** True while new batches to this peer are being dropped after a failure. */
  backingOff: boolean;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotInFlight: boolean;
}

/** Counters of the peer server (what this node received). */
export interface ServerStats {
  receivedBatches: number;
  receivedMessages: number;
  receivedBytes: number;
  receivedSnapshots: number;
  /** Requests answered with a 4xx/5xx status, by status code. */
  rejected: Record<number, number>;
}

export interface TransportStats {
  peers: PeerStats[];
  server: ServerStats;
  /** Messages addressed to ids that are not peers (or to this node) and therefore dropped. */
  droppedUnknownPeer: number;
}

/** HTTP header names used on peer requests. */
export const HEADER_CLUSTER_ID = 'x-raftkv-cluster-id';
export const HEADER_FROM = 'x-raftkv-from';
export const HEADER_TO = 'x-raftkv-to';
/** On a `POST /raft`: the sender takes messages back in the response body (200, msgpack). */
export const HEADER_ACCEPT_REPLIES = 'x-raftkv-replies';

export const PATH_MESSAGES = '/raft';
export const PATH_SNAPSHOT = '/raft/snapshot';
export const PATH_HEALTH = '/raft/health';
