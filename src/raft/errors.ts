/**
 * Typed errors of the Raft core. Callers distinguish them with `instanceof`; each carries a
 * stable `name` so they also survive structured logging.
 */

export type ProposalDropReason =
  | 'no-leader'
  | 'transferring-leader'
  | 'conf-change-pending'
  | 'forwarding-disabled'
  | 'uncommitted-size-limit'
  | 'not-a-member'
  | 'invalid-conf-change';

/** A proposal (or read / conf change) was not accepted. The caller decides whether to retry. */
export class ProposalDroppedError extends Error {
  override readonly name = 'ProposalDroppedError';
  readonly reason: ProposalDropReason;
  constructor(reason: ProposalDropReason, detail?: string) {
    super(`proposal dropped: ${reason}${detail ? ` (${detail})` : ''}`);
    this.reason = reason;
  }
}

/** The requested index lies at or before the storage's snapshot (compacted away). */
export class CompactedError extends Error {
  override readonly name = 'CompactedError';
  constructor(message = 'requested index is unavailable due to compaction') {
    super(message);
  }
}

/** The requested index lies beyond the storage's last index. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  constructor(message = 'requested entry at index is unavailable') {
    super(message);
  }
}

/** A snapshot older than the one already held was offered. */
export class SnapshotOutOfDateError extends Error {
  override readonly name = 'SnapshotOutOfDateError';
  constructor(message = 'requested index is older than the existing snapshot') {
    super(message);
  }
}

/** Invalid RaftConfig (or a call that is invalid for the node's configuration). */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** An internal invariant was violated: a bug or corrupted state. Never caught and ignored. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

/** Malformed wire or storage data handed to a decoder. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}

/** A message was handed to RawNode.step that step does not accept (local type, bad shape). */
export class StepError extends Error {
  override readonly name = 'StepError';
}
