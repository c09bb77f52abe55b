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
  NodeLogger,
  NodeState,
  NodeStatus,
  NodeStorageStatus,
  PeerProgress,
  PeerSpec,
  RaftNodeErrorCode,
  RaftNodeEvents,
  RaftNodeOptions,
  RoleChangeEvent,
  StateMachine,
  StopReason,
  StoppedEvent,
  WalModeName,
} from './node/index.js';
