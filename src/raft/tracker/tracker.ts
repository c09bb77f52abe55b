import type { ConfState, NodeId } from '../types.js';
import { Progress } from './progress.js';
import { Inflights } from './inflights.js';
import { majorityCommitIndex, voteResult, type VoteResult } from '../quorum.js';
import { assert } from '../assert.js';

/**
 * Membership (voters, learners) plus the leader's per-node Progress and the candidate's
 * vote tally. Iteration is always in ascending node id order so message emission is
 * deterministic.
 */
export class ProgressTracker {
  /** Voter ids, sorted ascending. */
  voters: NodeId[] = [];
  /** Learner ids, sorted ascending. */
  learners: NodeId[] = [];
  /** Progress for every voter and learner. */
  readonly progress = new Map<NodeId, Progress>();
  /** All member ids (voters ∪ learners), sorted ascending. */
  ids: NodeId[] = [];
  readonly votes = new Map<NodeId, boolean>();
  readonly maxInflight: number;
  readonly maxInflightBytes: number;
  private readonly scratch: number[] = [];
  private readonly matchOf = (id: NodeId): number => this.progress.get(id)!.match;

  constructor(maxInflight: number, maxInflightBytes: number) {
    this.maxInflight = maxInflight;
    this.maxInflightBytes = maxInflightBytes;
  }

  newProgress(next: number, isLearner: boolean, recentActive: boolean): Progress {
    return new Progress(next, new Inflights(this.maxInflight, this.maxInflightBytes), isLearner, recentActive);
  }

  confState(): ConfState {
    return { voters: this.voters.slice(), learners: this.learners.slice() };
  }

  isVoter(id: NodeId): boolean {
    const pr = this.progress.get(id);
    return pr !== undefined && !pr.isLearner;
  }

  /** True when the only voter is… a single voter (then reads need no round trip). */
  isSingleton(): boolean {
    return this.voters.length === 1;
  }

  /** Adds or updates membership of `id` (voter or learner), keeping lists sorted. */
  setMember(id: NodeId, isLearner: boolean, nextIndex: number): void {
    let pr = this.progress.get(id);
    if (pr === undefined) {
      // A new member counts as recently active so CheckQuorum does not depose the leader
      // before it had a chance to respond.
      pr = this.newProgress(Math.max(nextIndex, 1), isLearner, true);
      this.progress.set(id, pr);
    }
    pr.isLearner = isLearner;
    this.rebuildLists();
  }

  removeMember(id: NodeId): void {
    this.progress.delete(id);
    this.votes.delete(id);
    this.rebuildLists();
  }

  private rebuildLists(): void {
    const ids = [...this.progress.keys()].sort((a, b) => a - b);
    this.ids = ids;
    this.voters = ids.filter((id) => !this.progress.get(id)!.isLearner);
    this.learners = ids.filter((id) => this.progress.get(id)!.isLearner);
    for (const id of ids) assert(Number.isSafeInteger(id) && id > 0, `bad member id ${id}`);
  }

  /** Highest index replicated on a majority of voters. */
  committed(): number {
    return majorityCommitIndex(this.voters, this.matchOf, this.scratch);
  }

  /**
   * The largest value v such that a majority of voters have valueOf(id) ≥ v (0 without
   * voters): e.g. the newest send tick a quorum has acknowledged.
   */
  quorumValue(valueOf: (id: NodeId) => number): number {
    return majorityCommitIndex(this.voters, valueOf, this.scratch);
  }

  resetVotes(): void {
    this.votes.clear();
  }

  /** Records a vote from `id` (first vote wins; duplicates are ignored). */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Granted and rejected counts among voters, and the outcome. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: voteResult(this.voters, this.votes) };
  }

  voteResultOf(acks: ReadonlyMap<NodeId, boolean>): VoteResult {
    return voteResult(this.voters, acks);
  }
}
