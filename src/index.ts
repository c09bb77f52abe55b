export { walBackend, getWalBackend } from './wal/select-backend.js';
export type { WalBackendInfo } from './wal/select-backend.js';
export type {
  WalBackend,
  WalMode,
  WalModeOption,
  PreallocateStrategy,
  SegmentFile,
  ScanResult,
  DirSyncResult,
  DirectIoProbe,
} from './wal/backend.js';

// Embedding API: run a Raft member with your own replicated state machine (src/node).
export {
  RaftNode,
  RaftNodeError,
  NotLeaderError,
  NoLeaderError,
  TimeoutError,
  TooManyRequestsError,
  StoppedError,
  ProposalRejectedError,
  ProposalLostError,
  OutcomeUnknownError,
  InvalidArgumentError,
  MembershipError,
  SILENT_LOGGER,
} from './node/index.js';
export type {
  AppliedEntry,
  AppliedEvent,
  CallOptions,
  DirSyncPolicy,
  FatalEvent,
  LeaderChangeEvent,
  MemberInfo,
  MembershipRefusal,
  NodeLogger,
  NodeState,
  NodeStatus,
  NodeStorageStatus,
  PeerProgress,
  PeerSpec,
  RaftNodeErrorCode,
  RaftNodeEvents,
  RaftNodeOptions,
  ReadyOptions,
  RoleChangeEvent,
  StateMachine,
  StopOptions,
  StopReason,
  StoppedEvent,
  StoppedOutcome,
  WalModeName,
} from './node/index.js';

// The pure Raft core (src/raft): drive it yourself, as etcd's RawNode.
export {
  RawNode,
  MemoryStorage,
  SeededRandom,
  validateConfig,
  encodeMessage,
  decodeMessage,
  encodeMessages,
  decodeMessages,
  encodeConfChange,
  decodeConfChange,
  EntryType,
  ConfChangeType,
  MessageType,
  Role,
  NONE,
  ProposalDroppedError,
  InvariantError,
  CodecError,
} from './raft/index.js';
export type {
  RaftConfig,
  RaftLogger,
  Status as RaftStatus,
  Entry,
  HardState,
  ConfState,
  ConfChange,
  Message,
  Ready,
  ReadState,
  Snapshot,
  SnapshotMetadata,
  Storage,
  RandomSource,
  NodeId,
} from './raft/index.js';

// Durable storage (src/wal, src/snap): usable on their own.
export {
  Wal,
  WalCorruptionError,
  WalLockedError,
  DirSyncUnsupportedError,
  WalClosedError,
  WalExistsError,
  WalSnapshotNotFoundError,
  SnapshotCorruptionError,
} from './wal/index.js';
export type {
  WalOptions,
  WalCreateOptions,
  WalOpenOptions,
  OpenedWal,
  WalStatus,
  SaveOptions,
  SnapshotMarker,
  WalMetadata,
} from './wal/index.js';
export { Snapshotter, type LoadedSnapshot, type SnapshotterOptions } from './snap/index.js';
