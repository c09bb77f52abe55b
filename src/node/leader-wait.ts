/**
 * Requests held while no leader is known, as etcd's server holds its clients' proposals during
 * an election instead of failing them.
 *
 * A request is parked when the Raft core refuses it for want of a leader (so nothing of it
 * reached the core), and handed back to the runtime, oldest first, once the core knows a
 * leader. Parking keeps the caller's single deadline: the call's timer runs from the moment
 * of the call, so time spent here counts against its timeout, and a call whose deadline passes
 * while parked fails with NoLeaderError ("nothing was proposed"), never with TimeoutError
 * ("may still commit"). Calls whose caller asked for `waitForLeader: false` are never parked.
 */

import { InvariantError } from '../raft/index.js';

/** What this module needs of a pending call (call.ts's PendingCall). */
export interface WaitingCall {
  readonly settled: boolean;
  reject(error: Error): void;
}

export class LeaderWait {
  /** Insertion order is call order: resumeAll hands calls on oldest first. */
  private readonly parked = new Map<WaitingCall, () => void>();
  private readonly failFast = new WeakSet<WaitingCall>();

  /** Parked calls (settled ones leave at the next resumeAll or unpark). */
  get size(): number {
    return this.parked.size;
  }

  /** `call` must fail at once when no leader is known: its caller passed waitForLeader: false. */
  markFailFast(call: WaitingCall): void {
    this.failFast.add(call);
  }

  /**
   * Holds `call` until a leader is known, then runs `resume` (which hands it to the core again,
   * and may park it again). Returns false, parking nothing, when the call must fail fast.
   */
  park(call: WaitingCall, resume: () => void): boolean {
    if (call.settled) throw new InvariantError('LeaderWait.park: the call is already settled');
    if (this.parked.has(call)) throw new InvariantError('LeaderWait.park: the call is already parked');
    if (this.failFast.has(call)) return false;
    this.parked.set(call, resume);
    return true;
  }

  /** Takes `call` out (its deadline passed). True if it was parked, i.e. never reached the core. */
  unpark(call: WaitingCall): boolean {
    return this.parked.delete(call);
  }

  /** A leader is known: hands every parked call back, oldest first. */
  resumeAll(): void {
    const parked = [...this.parked];
    this.parked.clear();
    for (const [call, resume] of parked) if (!call.settled) resume();
  }

  /** The node stops: every parked call fails with `error`. */
  rejectAll(error: Error): void {
    const parked = [...this.parked.keys()];
    this.parked.clear();
    for (const call of parked) call.reject(error);
  }
}
