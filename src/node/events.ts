/** Events a RaftNode emits (a typed node:events EventEmitter). */

import type { NodeId, Role } from '../raft/types.js';

export interface LeaderChangeEvent {
  /** 0 when no leader is known. */
  leader: NodeId;
  leaderUrl: string | null;
  previous: NodeId;
  term: number;
}

export interface RoleChangeEvent {
  role: Role;
  previous: Role;
  term: number;
}

export interface AppliedEvent {
  /** Index of the last entry the state machine has applied (after a batch). */
  index: number;
}

export type StopReason = 'stopped' | 'removed' | 'fatal';

export interface StoppedEvent {
  reason: StopReason;
  /** Human-readable explanation. */
  detail: string;
  /** The error that stopped the node, for reason 'fatal'. */
  error: Error | null;
}

export interface FatalEvent {
  /** What failed (WAL write, snapshot save, state machine apply, …) and why. */
  error: Error;
  detail: string;
}

export interface RaftNodeEvents {
  'leader-change': [LeaderChangeEvent];
  'role-change': [RoleChangeEvent];
  applied: [AppliedEvent];
  stopped: [StoppedEvent];
  fatal: [FatalEvent];
}
