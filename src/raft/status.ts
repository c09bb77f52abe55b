import { Role, type ConfState, type NodeId } from './types.js';
import type { ProgressState } from './tracker/progress.js';
import type { Raft } from './raft.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  recentActive: boolean;
  inflight: number;
  pendingSnapshot: number;
  isLearner: boolean;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId;
  leader: NodeId;
  role: Role;
  commit: number;
  applied: number;
  lastIndex: number;
  leadTransferee: NodeId;
  config: ConfState;
  /** Per-member replication progress; only on the leader, else null. */
  progress: Record<number, ProgressStatus> | null;
}

/** A point-in-time copy of the node's state for observability (no live references). */
export function getStatus(r: Raft): Status {
  let progress: Record<number, ProgressStatus> | null = null;
  if (r.state === Role.Leader) {
    progress = {};
    for (const id of r.trk.ids) {
      const pr = r.trk.progress.get(id)!;
      progress[id] = {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        recentActive: pr.recentActive,
        inflight: pr.inflights.count(),
        pendingSnapshot: pr.pendingSnapshot,
        isLearner: pr.isLearner,
      };
    }
  }
  return {
    id: r.id,
    term: r.term,
    vote: r.vote,
    leader: r.lead,
    role: r.state,
    commit: r.raftLog.committed,
    applied: r.raftLog.applied,
    lastIndex: r.raftLog.lastIndex(),
    leadTransferee: r.leadTransferee,
    config: r.trk.confState(),
    progress,
  };
}
