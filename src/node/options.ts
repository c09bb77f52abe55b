/**
 * Options of RaftNode.start and the user state machine contract, with validation and defaults.
 */

import type { NodeId } from '../raft/types.js';
import { isReadIndexFanout, type ReadIndexFanout } from '../raft/config.js';
import type { WalBackend } from '../wal/backend.js';
import type { FileSystem } from '../wal/file-system.js';
import { InvalidArgumentError } from './errors.js';
import type { NodeSimulation } from './runtime-io.js';

/** A committed entry handed to the state machine (the runtime's envelope already removed). */
export interface AppliedEntry {
  index: number;
  term: number;
  /** The bytes given to `propose`. */
  data: Uint8Array;
}

/**
 * The replicated state machine. The runtime calls it from one place, strictly in log order,
 * never concurrently with itself: `apply` for every committed proposal, `snapshot` when it is
 * time to compact the log (everything up to the last applied entry is reflected), `restore` at
 * start-up and when the leader sends a snapshot (replaces the whole state).
 *
 * `apply` must be deterministic. Its return value (or resolved value) is what `propose`
 * resolves with on the node where the proposal was made; to report a per-entry failure to the
 * caller, RETURN an error value. Throwing is treated as a broken state machine: the node stops
 * (fatal), because skipping a committed entry would make this replica diverge.
 *
 * `snapshot` should capture the state quickly (the node processes no Raft batch meanwhile);
 * `restore` receives exactly the bytes a `snapshot` produced (possibly on another node).
 *
 * Big state: implement the streaming pair too, and snapshots never hold the state in memory
 * (the node writes the stream to its snapshot file in chunks, a lagging follower receives it
 * as a stream and restores from its file). `snapshotStream()` must capture the state as of the
 * call (by the time its promise resolves): the node iterates the stream afterwards, in the
 * background, while later entries are applied. `restoreStream(source)` replaces the whole
 * state with what `source` yields (what a `snapshotStream` — or `snapshot` — produced, in
 * chunks of any size) and must read it to its end; the data is only known good once the
 * iteration ends without throwing. Without them the node uses `snapshot`/`restore`.
 */
export interface StateMachine<R = unknown> {
  apply(entry: AppliedEntry): R | Promise<R>;
  snapshot(): Uint8Array | Promise<Uint8Array>;
  restore(data: Uint8Array): void | Promise<void>;
  snapshotStream?(): AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>;
  restoreStream?(source: AsyncIterable<Uint8Array>): void | Promise<void>;
}

export interface PeerSpec {
  id: NodeId;
  /** Base URL of the peer's Raft endpoint, e.g. `http://127.0.0.1:12379`. */
  url: string;
}

/** Structured logger (compatible with the Raft core's and the transport's). */
export interface NodeLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Default of RaftNodeOptions.snapshotBytesMax (and the CLI's --snapshot-bytes-max). */
export const DEFAULT_SNAPSHOT_BYTES_MAX = 8 * 1024 * 1024 * 1024;

export const SILENT_LOGGER: NodeLogger = { debug() {}, info() {}, warn() {}, error() {} };

export type WalModeName = 'auto' | 'buffered' | 'direct' | 'dsync';
export type DirSyncPolicy = 'auto' | 'strict';

export interface RaftNodeOptions<R = unknown> {
  /** This node's id: a positive safe integer, unique in the cluster. */
  id: NodeId;
  /** Members this node knows at start, INCLUDING itself (its URL gives the peer listen port).
   * For a brand-new cluster these are the initial voters; with `join` the existing members
   * plus this node. */
  peers: PeerSpec[];
  /** Start with an empty log and wait to be added by the cluster (addVoter/addLearner on a
   * member). Ignored when the data directory already holds a WAL. */
  join?: boolean;
  /** Directory for the WAL (`<dataDir>/wal`) and snapshots (`<dataDir>/snap`). */
  dataDir: string;
  stateMachine: StateMachine<R>;
  /** Peers refuse messages carrying another cluster id. Default 'raftkv'. */
  clusterId?: string;
  /** Milliseconds per Raft tick. Default 100. */
  tickMs?: number;
  /** Election timeout in ticks (randomised in [T, 2T)). Default 10. */
  electionTicks?: number;
  /** Heartbeat interval in ticks. Default 1. */
  heartbeatTicks?: number;
  /** Take a snapshot after this many applied entries since the last one. Default 10000. */
  snapshotCount?: number;
  /** Entries kept in the log behind a snapshot so slow followers catch up without a
   * snapshot. Default 10000. */
  snapshotCatchUpEntries?: number;
  /** WAL write mode. Default 'auto' (O_DIRECT where usable, else buffered). */
  walMode?: WalModeName;
  /** Size WAL segments are preallocated to. Default 64 MiB. */
  walSegmentBytes?: number;
  /** Directory-fsync policy of the WAL. Default 'auto' (warn once where unsupported). */
  dirSync?: DirSyncPolicy;
  /** Default true. */
  preVote?: boolean;
  /** Default true. */
  checkQuorum?: boolean;
  /** Who a readBarrier's heartbeat round asks: 'quorum' (default) just enough followers for a
   * quorum, those that answered the last read first, the rest at the next heartbeat if they do not answer;
   * 'all' every member at once, as etcd does. Reads are linearizable either way. */
  readIndexFanout?: ReadIndexFanout;
  /** Default true: a follower forwards proposals to the leader. When false, `propose` on a
   * follower rejects with NotLeaderError naming the leader. */
  forwardProposals?: boolean;
  /** Interface the peer server binds. Default '127.0.0.1'. */
  listenHost?: string;
  /** Default timeout of propose / readBarrier / membership calls. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Default true: while no leader is known (an election is running) propose, readBarrier,
   * the membership calls and transferLeadership wait for one within their timeout, as etcd's
   * server does, and reject with NoLeaderError only if none appears in time. false: they
   * reject with NoLeaderError at once. A call's own `waitForLeader` overrides this. */
  waitForLeader?: boolean;
  /** Largest snapshot (the state machine's snapshot stream) this node sends to or accepts from
   * a peer; a bigger one fails to send (413 on the receiver) and the follower must catch up
   * otherwise. 0 = unlimited. Default 8 GiB. */
  snapshotBytesMax?: number;
  /** Max bytes of entries per append message. Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max append messages in flight per follower. Default 256. */
  maxInflightMsgs?: number;
  /** Proposals and membership changes waiting for their outcome on this node; one more is
   * refused at once with TooManyRequestsError (retryable). Default 10000. */
  maxPendingProposals?: number;
  /** readBarrier calls waiting on this node; one more is refused at once with
   * TooManyRequestsError (retryable). Default 10000. */
  maxPendingReads?: number;
  /** While leader, refuse proposals (ProposalRejectedError, reason 'uncommitted-size-limit')
   * once the payload bytes of uncommitted entries in the log exceed this; a memory guard when
   * followers cannot keep up. 0 = unlimited. Default 1 GiB. */
  maxUncommittedEntriesSize?: number;
  /** A leader tells followers a new commit index in its next append or heartbeat; when none
   * goes to a follower within this many milliseconds, the empty append that carries it is
   * sent. At low load (a serial client) this saves a round trip per write; followers apply
   * at most this much later. 0 sends it at once (etcd's behaviour). Default 5. */
  commitNotifyDelayMs?: number;
  /** After each Ready pass, keep the event loop polling (yielding the CPU every turn) for this
   * long instead of sleeping, so answers that come back within it need no wake-up: lower
   * latency at low load, paid for in otherwise-idle CPU. 0 disables it; it is off anyway
   * without the native addon. Default 1000 µs. See loop-spin.ts. */
  idleSpinUs?: number;
  logger?: NodeLogger;
  /** Advanced: the WAL backend to use (default: the native addon where it loads, else the
   * pure-TypeScript one). Tests use it to inject I/O faults. */
  walBackend?: WalBackend;
  /** @internal For the deterministic simulator: the filesystem the data directory lives on
   * (WAL, snapshots). Default node:fs; any other runs the js WAL backend over it. */
  fileSystem?: FileSystem;
  /** Aborts start-up (start then rejects with StoppedError and releases everything); after
   * start-up, aborting stops the node like stop(). */
  signal?: AbortSignal;
  /** @internal The deterministic simulator's clock, randomness and transport (runtime-io.ts). */
  simulation?: NodeSimulation;
}

export interface ResolvedOptions<R> {
  id: NodeId;
  peers: Map<NodeId, string>;
  selfUrl: URL;
  join: boolean;
  dataDir: string;
  stateMachine: StateMachine<R>;
  clusterId: string;
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  snapshotCount: number;
  snapshotCatchUpEntries: number;
  walMode: WalModeName;
  walSegmentBytes: number | null;
  dirSync: DirSyncPolicy;
  preVote: boolean;
  checkQuorum: boolean;
  readIndexFanout: ReadIndexFanout;
  forwardProposals: boolean;
  listenHost: string;
  requestTimeoutMs: number;
  waitForLeader: boolean;
  maxSizePerMsg: number;
  /** Number.MAX_SAFE_INTEGER when unlimited. */
  snapshotBytesMax: number;
  maxInflightMsgs: number;
  maxPendingProposals: number;
  maxPendingReads: number;
  maxUncommittedEntriesSize: number;
  commitNotifyDelayMs: number;
  idleSpinUs: number;
  logger: NodeLogger;
  walBackend: WalBackend | null;
  fileSystem: FileSystem | null;
  signal: AbortSignal | null;
  simulation: NodeSimulation | null;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new InvalidArgumentError(`option ${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  if (v > max) throw new InvalidArgumentError(`option ${name} must be at most ${max}, got ${v}`);
  return v;
}

function booleanOption(name: string, value: boolean | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidArgumentError(`option ${name} must be true or false, got ${String(value)}`);
  return value;
}

export function validateNodeId(what: string, id: unknown): NodeId {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw new InvalidArgumentError(`${what} must be a positive safe integer, got ${String(id)}`);
  }
  return id;
}

export function validatePeerUrl(what: string, url: unknown): URL {
  if (typeof url !== 'string') throw new InvalidArgumentError(`${what} must be a string URL, got ${typeof url}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidArgumentError(`${what} is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:') {
    throw new InvalidArgumentError(`${what} must be an http:// URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.port === '') {
    throw new InvalidArgumentError(`${what} must name a port explicitly, got ${JSON.stringify(url)}`);
  }
  return parsed;
}

/** Peer URLs are kept normalised without a trailing slash so they compare and concatenate. */
export function normalizePeerUrl(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

export function resolveOptions<R>(o: RaftNodeOptions<R>): ResolvedOptions<R> {
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('RaftNode.start needs an options object');
  const id = validateNodeId('option id', o.id);
  if (!Array.isArray(o.peers) || o.peers.length === 0) {
    throw new InvalidArgumentError('option peers must be a non-empty array of { id, url } (including this node)');
  }
  const peers = new Map<NodeId, string>();
  let selfUrl: URL | null = null;
  for (const [i, p] of o.peers.entries()) {
    const peerId = validateNodeId(`peers[${i}].id`, p?.id);
    const url = validatePeerUrl(`peers[${i}].url`, p?.url);
    if (peers.has(peerId)) throw new InvalidArgumentError(`peers lists node ${peerId} twice`);
    peers.set(peerId, normalizePeerUrl(url));
    if (peerId === id) selfUrl = url;
  }
  if (selfUrl === null) {
    throw new InvalidArgumentError(`option peers must include this node (id ${id}): its URL gives the listen port`);
  }
  if (typeof o.dataDir !== 'string' || o.dataDir === '') throw new InvalidArgumentError('option dataDir must be a non-empty path');
  const sm = o.stateMachine;
  if (
    typeof sm !== 'object' || sm === null ||
    typeof sm.apply !== 'function' || typeof sm.snapshot !== 'function' || typeof sm.restore !== 'function'
  ) {
    throw new InvalidArgumentError('option stateMachine must have apply(entry), snapshot() and restore(bytes) methods');
  }
  if ((sm.snapshotStream === undefined) !== (sm.restoreStream === undefined) ||
    (sm.snapshotStream !== undefined && (typeof sm.snapshotStream !== 'function' || typeof sm.restoreStream !== 'function'))) {
    throw new InvalidArgumentError('option stateMachine: snapshotStream() and restoreStream(source) go together (both methods or neither)');
  }
  const electionTicks = positiveInt('electionTicks', o.electionTicks, 10);
  const heartbeatTicks = positiveInt('heartbeatTicks', o.heartbeatTicks, 1);
  if (heartbeatTicks >= electionTicks) {
    throw new InvalidArgumentError(`heartbeatTicks (${heartbeatTicks}) must be smaller than electionTicks (${electionTicks})`);
  }
  const walMode = o.walMode ?? 'auto';
  if (!['auto', 'buffered', 'direct', 'dsync'].includes(walMode)) {
    throw new InvalidArgumentError(`option walMode must be auto, buffered, direct or dsync, got ${String(walMode)}`);
  }
  const dirSync = o.dirSync ?? 'auto';
  if (dirSync !== 'auto' && dirSync !== 'strict') {
    throw new InvalidArgumentError(`option dirSync must be auto or strict, got ${String(dirSync)}`);
  }
  const readIndexFanout = o.readIndexFanout ?? 'quorum';
  if (!isReadIndexFanout(readIndexFanout)) {
    throw new InvalidArgumentError(`option readIndexFanout must be quorum or all, got ${String(readIndexFanout)}`);
  }
  const clusterId = o.clusterId ?? 'raftkv';
  if (typeof clusterId !== 'string' || clusterId === '') throw new InvalidArgumentError('option clusterId must be a non-empty string');
  const logger = o.logger ?? SILENT_LOGGER;
  return {
    id,
    peers,
    selfUrl,
    join: o.join === true,
    dataDir: o.dataDir,
    stateMachine: sm,
    clusterId,
    tickMs: positiveInt('tickMs', o.tickMs, 100),
    electionTicks,
    heartbeatTicks,
    snapshotCount: positiveInt('snapshotCount', o.snapshotCount, 10_000),
    snapshotCatchUpEntries: positiveInt('snapshotCatchUpEntries', o.snapshotCatchUpEntries, 10_000, 0),
    walMode,
    walSegmentBytes: o.walSegmentBytes === undefined ? null : positiveInt('walSegmentBytes', o.walSegmentBytes, 0, 4096),
    dirSync,
    preVote: o.preVote ?? true,
    checkQuorum: o.checkQuorum ?? true,
    readIndexFanout,
    forwardProposals: o.forwardProposals ?? true,
    listenHost: o.listenHost ?? '127.0.0.1',
    requestTimeoutMs: positiveInt('requestTimeoutMs', o.requestTimeoutMs, 5000),
    waitForLeader: booleanOption('waitForLeader', o.waitForLeader, true),
    maxSizePerMsg: positiveInt('maxSizePerMsg', o.maxSizePerMsg, 1024 * 1024),
    snapshotBytesMax: positiveInt('snapshotBytesMax', o.snapshotBytesMax, DEFAULT_SNAPSHOT_BYTES_MAX, 0) || Number.MAX_SAFE_INTEGER,
    maxInflightMsgs: positiveInt('maxInflightMsgs', o.maxInflightMsgs, 256),
    maxPendingProposals: positiveInt('maxPendingProposals', o.maxPendingProposals, 10_000),
    maxPendingReads: positiveInt('maxPendingReads', o.maxPendingReads, 10_000),
    maxUncommittedEntriesSize: positiveInt('maxUncommittedEntriesSize', o.maxUncommittedEntriesSize, 1024 * 1024 * 1024, 0),
    commitNotifyDelayMs: positiveInt('commitNotifyDelayMs', o.commitNotifyDelayMs, 5, 0),
    idleSpinUs: positiveInt('idleSpinUs', o.idleSpinUs, 1000, 0, 100_000),
    logger,
    walBackend: o.walBackend ?? null,
    fileSystem: o.fileSystem ?? null,
    signal: o.signal ?? null,
    simulation: o.simulation ?? null,
  };
}
