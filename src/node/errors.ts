/**
 * Typed errors of the embedding API. Every error a RaftNode call rejects with is a RaftNodeError
 * with a stable `code`, so callers can branch without string matching:
 *
 *   try { await node.propose(bytes) } catch (e) {
 *     if (e instanceof NoLeaderError) retryLater();
 *     else if (e instanceof TimeoutError) checkIdempotentlyThenRetry();
 *   }
 *
 * `retryable` says whether simply calling again may succeed (the request was certainly not
 * applied, or applying it twice is the caller's concern as documented on the error).
 */

import type { NodeId } from '../raft/types.js';

export type RaftNodeErrorCode =
  | 'NOT_LEADER'
  | 'NO_LEADER'
  | 'TIMEOUT'
  | 'STOPPED'
  | 'PROPOSAL_REJECTED'
  | 'PROPOSAL_LOST'
  | 'OUTCOME_UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'MEMBERSHIP'
  | 'TOO_MANY_REQUESTS';

export class RaftNodeError extends Error {
  readonly code: RaftNodeErrorCode;
  /** True when the request certainly did not take effect and calling again may succeed. */
  readonly retryable: boolean;

  constructor(code: RaftNodeErrorCode, message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
  }
}

/**
 * This node is not the leader and the request cannot be forwarded (proposal forwarding is
 * disabled, or the operation must run on the leader). `leaderId`/`leaderUrl` say where to go
 * (0 / null when unknown).
 */
export class NotLeaderError extends RaftNodeError {
  readonly leaderId: NodeId;
  readonly leaderUrl: string | null;

  constructor(leaderId: NodeId, leaderUrl: string | null, what: string) {
    super(
      'NOT_LEADER',
      `${what}: this node is not the leader` +
        (leaderId !== 0 ? `; the leader is node ${leaderId}${leaderUrl !== null ? ` at ${leaderUrl}` : ''}` : ''),
      true,
    );
    this.leaderId = leaderId;
    this.leaderUrl = leaderUrl;
  }
}

/**
 * No leader is known (election in progress, or this node cannot reach a quorum). Nothing was
 * proposed; retrying is safe. By default a call first waits for a leader within its timeout
 * (`waitedMs` says how long); with `waitForLeader: false` it fails at once (`waitedMs` 0).
 */
export class NoLeaderError extends RaftNodeError {
  readonly waitedMs: number;

  constructor(what: string, waitedMs = 0) {
    super(
      'NO_LEADER',
      waitedMs > 0
        ? `${what}: no leader became known within ${waitedMs} ms (an election may be in progress, or this node cannot reach a quorum); nothing was proposed, retry later`
        : `${what}: no leader is known (an election may be in progress); nothing was proposed, retry later`,
      true,
    );
    this.waitedMs = waitedMs;
  }
}

/**
 * The request did not complete in time. For a proposal or a membership change this does NOT
 * mean it failed: the entry may still be committed and applied later. Retry only if the
 * operation is idempotent, or check its effect first.
 */
export class TimeoutError extends RaftNodeError {
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number, mayStillCommit: boolean) {
    super(
      'TIMEOUT',
      `${what}: timed out after ${timeoutMs} ms` +
        (mayStillCommit ? '; the entry may still be committed and applied later' : ''),
      !mayStillCommit,
    );
    this.timeoutMs = timeoutMs;
  }
}

/**
 * What a StoppedError says about the request's effect:
 * - 'not-proposed': refused before anything was handed to Raft; it certainly did not and will
 *   not take effect (safe to send again, to another member).
 * - 'unknown': it was already proposed (appended, or forwarded to the leader) when the node
 *   stopped; the rest of the cluster may still commit and apply it. Check before retrying
 *   unless the operation is idempotent.
 */
export type StoppedOutcome = 'not-proposed' | 'unknown';

/** The node is stopping or stopped (gracefully, removed from the cluster, or after a fatal
 * storage error, which is then the `cause`). `outcome` says whether the request may still take
 * effect elsewhere. Never retryable on this node. */
export class StoppedError extends RaftNodeError {
  readonly outcome: StoppedOutcome;

  constructor(what: string, reason: string, cause?: unknown, outcome: StoppedOutcome = 'not-proposed') {
    super(
      'STOPPED',
      `${what}: the node is stopped (${reason}); ` +
        (outcome === 'unknown'
          ? 'the request was already proposed and may still be committed by the rest of the cluster'
          : 'nothing was proposed'),
      false,
      cause !== undefined ? { cause } : undefined,
    );
    this.outcome = outcome;
  }
}

/** The Raft core refused the proposal outright (nothing was appended): a leadership transfer
 * is in progress, a membership change is still pending, the uncommitted-size limit is reached,
 * or this node is not a member. `reason` is the core's reason. */
export class ProposalRejectedError extends RaftNodeError {
  readonly reason: string;

  constructor(what: string, reason: string) {
    super('PROPOSAL_REJECTED', `${what}: rejected by Raft (${reason}); nothing was proposed`, true);
    this.reason = reason;
  }
}

/** The proposal was appended to the log at `index` but a new leader overwrote that index with a
 * different entry, which then committed: the proposal certainly did not and will not apply. */
export class ProposalLostError extends RaftNodeError {
  readonly index: number;
  readonly term: number;

  constructor(what: string, index: number, term: number, committedTerm: number) {
    super(
      'PROPOSAL_LOST',
      `${what}: the entry at index ${index} (term ${term}) was overwritten by a new leader ` +
        `(term ${committedTerm} committed there); it was not applied, retry`,
      true,
    );
    this.index = index;
    this.term = term;
  }
}

/** The node installed a snapshot covering the proposal's index before it could see the entry
 * itself: the entry may or may not be part of that snapshot. */
export class OutcomeUnknownError extends RaftNodeError {
  constructor(what: string, index: number, snapshotIndex: number) {
    super(
      'OUTCOME_UNKNOWN',
      `${what}: a snapshot up to index ${snapshotIndex} replaced the log around index ${index} ` +
        'before the entry was applied locally; it may or may not have been applied',
      false,
    );
  }
}

/** Too many requests of this kind are already waiting for their outcome on this node
 * (maxPendingProposals / maxPendingReads). Nothing was proposed; retry once some complete. */
export class TooManyRequestsError extends RaftNodeError {
  readonly limit: number;

  constructor(what: string, limit: number) {
    super(
      'TOO_MANY_REQUESTS',
      `${what}: ${limit} requests of this kind are already pending on this node (the limit); nothing was proposed, retry later`,
      true,
    );
    this.limit = limit;
  }
}

/** Bad input to an API call (detected before anything was proposed). */
export class InvalidArgumentError extends RaftNodeError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message, false);
  }
}

/**
 * Why a membership change was refused:
 * - 'invalid': not possible from the current configuration (already a member, not a learner,
 *   the last voter, …);
 * - 'not-enough-active-voters': afterwards the voters the leader has heard from recently would
 *   not make a quorum (adding a voter that is down or not yet caught up, removing an active
 *   voter while others are down);
 * - 'learner-not-ready': the learner to promote is not active or not caught up with the leader
 *   (its match index is below 90% of the leader's).
 * The last three are checked on the leader against its replication progress, as etcd's strict
 * reconfiguration check does; `force` (CallOptions) skips them.
 */
export type MembershipRefusal = 'invalid' | 'not-enough-active-voters' | 'learner-not-ready';

/** A membership change that was refused: nothing changed. `reason` says why; the unsafe-change
 * reasons are retryable (the members may catch up or come back). */
export class MembershipError extends RaftNodeError {
  readonly reason: MembershipRefusal;

  constructor(message: string, reason: MembershipRefusal = 'invalid') {
    super('MEMBERSHIP', message, reason !== 'invalid');
    this.reason = reason;
  }
}
