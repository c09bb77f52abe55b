import { Inflights } from './inflights.js';
import { fail } from '../assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * The leader's view of one follower (etcd's tracker.Progress).
 *
 * - probe: at most one App in flight (until it is answered or a heartbeat response comes),
 *   used to find where the follower's log matches ours.
 * - replicate: optimistic pipelining; `next` advances as messages are sent, bounded by the
 *   inflight window (count and bytes).
 * - snapshot: a snapshot is on its way; nothing else is sent until it is reported.
 *
 * Invariants (checked after every transition, see checkInvariants): match < next; a pending
 * snapshot exactly in snapshot state; inflight entries only in replicate state.
 */
export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot being sent while in snapshot state, else 0. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round (the leader is always active). A hint for
   * sending snapshots and for status; leadership and leases use `ackedSendTick`. */
  recentActive = false;
  /**
   * Leader clock value (Raft.clock) at which the leader SENT the newest App/Heartbeat this
   * follower has echoed back, in this term; 0 = none. Receiving that message restarted the
   * follower's election timer, so it refuses votes until electionTimeout of its ticks later:
   * the base of the leader's read lease.
   */
  ackedSendTick = 0;
  /** Leader clock value at which this member's liveness grace began (the leader's term
   * started, or the member was added): CheckQuorum counts it as acked at that tick, so it is
   * not deposed before the member had a chance to answer. Never counts for the read lease. */
  graceTick = 0;
  /** Leader-local sequence number of this voter's latest ack that counted toward a pending
   * ReadIndex round (0 = none this term): ReadIndex rounds ask the most recent first. */
  readAckSeq = 0;
  /** Sending App messages is paused (probe sent, or inflight window full). */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;
  isLearner: boolean;
  /** Highest commit index this follower was told about (App or heartbeat); a hint only. */
  sentCommit = 0;

  constructor(next: number, inflights: Inflights, isLearner: boolean, recentActive = false) {
    this.next = next;
    this.inflights = inflights;
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.sentCommit = 0;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /**
   * The tracker's invariants, asserted after each transition: a violation means the leader's
   * view of this follower is corrupt and it would send the wrong entries (fail loudly).
   */
  private checkInvariants(transition: string): void {
    if (
      !(this.match < this.next) ||
      (this.state === 'snapshot') !== (this.pendingSnapshot > 0) ||
      (this.state !== 'replicate' && this.inflights.count() > 0)
    ) {
      fail(`progress invariant broken after ${transition}: ${this.toString()}`);
    }
  }

  becomeProbe(): void {
    // After a snapshot, probe from the snapshot index on (the follower presumably has it).
    if (this.state === 'snapshot') {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
    this.checkInvariants('becomeProbe');
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
    this.checkInvariants('becomeReplicate');
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
    this.checkInvariants('becomeSnapshot');
  }

  /**
   * Bookkeeping after sending an App with `entries` entries totalling `bytes`, the first at
   * `nextIndex`.
   */
  updateOnEntriesSend(entries: number, bytes: number, nextIndex: number): void {
    switch (this.state) {
      case 'replicate':
        if (entries > 0) {
          const last = nextIndex + entries - 1;
          this.next = last + 1;
          this.inflights.add(last, bytes);
        }
        // A full window turns this message into a probe: wait for acks before sending more.
        this.msgAppFlowPaused = this.inflights.full();
        break;
      case 'probe':
        if (entries > 0) this.msgAppFlowPaused = true;
        break;
      default:
        fail(`sending append in unhandled state ${this.state}`);
    }
    this.checkInvariants('updateOnEntriesSend');
  }

  /** Called on an accepting AppResp for index n; false if it was stale (n ≤ match). */
  maybeUpdate(n: number): boolean {
    if (n <= this.match) return false;
    this.match = n;
    if (this.next < n + 1) this.next = n + 1;
    this.msgAppFlowPaused = false;
    this.checkInvariants('maybeUpdate');
    return true;
  }

  /**
   * Called on a rejected App for index `rejected`; `matchHint` is the leader's best guess of
   * the last matching index. Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      // Stale if we already know the follower has `rejected`.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      this.checkInvariants('maybeDecrTo');
      return true;
    }
    // Non-replicating followers are probed one entry at a time, so the rejection must be for
    // next − 1 to be current.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    this.checkInvariants('maybeDecrTo');
    return true;
  }

  /** Whether the leader should hold off sending App messages to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
      case 'replicate':
        return this.msgAppFlowPaused;
      default:
        return true;
    }
  }

  toString(): string {
    return `state=${this.state} match=${this.match} next=${this.next}${this.isLearner ? ' learner' : ''}${this.msgAppFlowPaused ? ' paused' : ''}${this.pendingSnapshot ? ` pendingSnap=${this.pendingSnapshot}` : ''}${this.recentActive ? '' : ' inactive'} inflight=${this.inflights.count()}`;
  }
}
