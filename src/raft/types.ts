/**
 * Plain data types shared by the Raft core, its storage, the codec and the runtime.
 *
 * Terms and indexes are JS numbers. They must be safe integers (≤ 2^53 − 1): every boundary
 * that accepts them from outside (codec decode, Storage, step) asserts it. Node ids are
 * positive safe integers; 0 means "none".
 *
 * This file is a contract between src/raft (the core), test/sim (the simulator),
 * src/wal (which persists Entry/HardState/SnapshotMetadata) and src/transport (which ships
 * Message). Change it deliberately.
 */

export type NodeId = number;
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque application bytes; for ConfChange entries the encoded ConfChange. Empty for the
   * no-op entry a new leader appends. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** Voters, learners; learners never count in quorums. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** The state machine bytes. */
  data: Uint8Array;
}

export enum ConfChangeType {
  AddVoter = 0,
  RemoveNode = 1,
  AddLearner = 2,
  /** Promote a learner to voter (same effect as AddVoter on a learner). */
  PromoteLearner = 3,
}

export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque context, e.g. the peer URL of a node being added. */
  context: Uint8Array;
}

export enum MessageType {
  // Local messages (never sent over the network).
  Hup = 0,
  Beat = 1,
  Prop = 2, // also sent over the network: a follower forwards proposals to the leader
  Unreachable = 3,
  SnapStatus = 4,
  CheckQuorum = 5,
  // Network messages.
  App = 10,
  AppResp = 11,
  Vote = 12,
  VoteResp = 13,
  PreVote = 14,
  PreVoteResp = 15,
  Heartbeat = 16,
  HeartbeatResp = 17,
  Snap = 18,
  TimeoutNow = 19,
  ReadIndex = 20,
  ReadIndexResp = 21,
  TransferLeader = 22,
}

/**
 * One Raft message. Fields not meaningful for a type are 0 / empty / false.
 * `logTerm` + `index` describe the entry preceding `entries` in App, the candidate's last log
 * position in Vote/PreVote, and the reject hint's term in AppResp.
 */
export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /**
   * AppResp with reject: the follower's hint (index) where the logs may match.
   * App and Heartbeat: the leader's clock (tick count) when it sent the message; the follower
   * echoes it in the HeartbeatResp and in an accepting AppResp, so the leader knows when a
   * follower's lease began at the latest (CheckQuorum, lease-based reads). 0 = not stamped.
   */
  rejectHint: number;
  snapshot: Snapshot | null;
  /** ReadIndex request context / heartbeat context; opaque bytes. */
  context: Uint8Array;
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

export interface SoftState {
  leader: NodeId;
  role: Role;
}

/** A completed ReadIndex request: once applied ≥ index the read may be served. */
export interface ReadState {
  index: number;
  context: Uint8Array;
}

export interface Ready {
  /** Changed since the last Ready, or null. */
  softState: SoftState | null;
  /** Must be persisted before `messages` that depend on it are sent; null when unchanged. */
  hardState: HardState | null;
  /** Entries to append to stable storage before sending dependent messages. */
  entries: Entry[];
  /** A snapshot to persist and apply; null if none. */
  snapshot: Snapshot | null;
  /** Committed entries to apply to the state machine, in order. */
  committedEntries: Entry[];
  /** Messages to send only after snapshot/entries/hardState of this Ready are persisted
   * (votes, vote responses, append responses, …). */
  messages: Message[];
  /** Messages a leader may send at once, in parallel with persisting its own entries
   * (App, Heartbeat, Snap, TimeoutNow from the leader of the current term): they depend on
   * nothing this node has not already made durable (its term and vote were synced before it
   * won the election). Always empty when this node is not the leader. */
  parallelMessages: Message[];
  readStates: ReadState[];
  /** True when entries, vote or term changed: the write must be synced before messages go. */
  mustSync: boolean;
}

/**
 * Read-only view of the stable log the core consults. The WAL-backed implementation comes
 * from the runtime; MemoryStorage is the in-memory one.
 */
export interface Storage {
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries in [lo, hi), at most maxBytes in total but always at least one if any exist.
   * Throws CompactedError if lo ≤ snapshot index, UnavailableError if hi > lastIndex + 1. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at index; the snapshot's index answers with the snapshot's term. */
  term(index: number): number;
  lastIndex(): number;
  /** Index of the first available entry (snapshot index + 1). */
  firstIndex(): number;
  snapshot(): Snapshot;
}

/** Injected randomness: the core never calls Math.random. Returns an integer in [0, n). */
export interface RandomSource {
  intn(n: number): number;
}
