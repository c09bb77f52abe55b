/** The embedding API: run a Raft member with your own replicated state machine. */
export { RaftNode } from './raft-node.js';
export type { CallOptions, MemberInfo, NodeState, NodeStatus, PeerProgress, ReadyOptions, StopOptions } from './raft-node.js';
export type {
  AppliedEntry,
  DirSyncPolicy,
  NodeLogger,
  PeerSpec,
  RaftNodeOptions,
  StateMachine,
  WalModeName,
} from './options.js';
export { SILENT_LOGGER } from './options.js';
export type {
  AppliedEvent,
  FatalEvent,
  LeaderChangeEvent,
  RaftNodeEvents,
  RoleChangeEvent,
  StopReason,
  StoppedEvent,
} from './events.js';
export {
  InvalidArgumentError,
  MembershipError,
  NoLeaderError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalLostError,
  ProposalRejectedError,
  RaftNodeError,
  StoppedError,
  TimeoutError,
  TooManyRequestsError,
  type MembershipRefusal,
  type RaftNodeErrorCode,
  type StoppedOutcome,
} from './errors.js';
export type { NodeStorageStatus } from './storage.js';
// Write-path latency tracing (RAFTKV_TRACE=DIR), shared with the layers above.
export { trace, traceOn } from '../transport/trace.js';
