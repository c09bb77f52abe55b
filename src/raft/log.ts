import type { Entry, Snapshot, Storage } from './types.js';
import { Unstable } from './unstable.js';
import { CompactedError, UnavailableError } from './errors.js';
import { assert, fail } from './assert.js';
import { limitSize, entrySize } from './util.js';
import type { RaftLogger } from './config.js';

/**
 * The Raft log: stable entries in Storage followed by the unstable tail, plus the commit and
 * apply cursors.
 *
 * Invariants (asserted): applied ≤ applying ≤ committed ≤ lastIndex; committed never decreases;
 * committed entries are never truncated.
 */
export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed on a quorum. */
  committed: number;
  /** Highest index handed out to the application for applying (≥ applied). */
  applying: number;
  /** Highest index the application has applied. */
  applied: number;
  /** Max bytes of committed entries handed out per Ready. */
  readonly maxApplyingEntsSize: number;
  private readonly logger: RaftLogger;

  constructor(storage: Storage, maxApplyingEntsSize: number, logger: RaftLogger) {
    this.storage = storage;
    this.logger = logger;
    this.maxApplyingEntsSize = maxApplyingEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    checkIndex(first, 'storage.firstIndex()');
    checkIndex(last, 'storage.lastIndex()');
    assert(first >= 1 && last >= first - 1, `storage indexes inconsistent: first ${first}, last ${last}`);
    this.unstable = new Unstable(last + 1);
    // Everything up to the snapshot is committed and applied by definition.
    this.committed = first - 1;
    this.applying = first - 1;
    this.applied = first - 1;
  }

  toString(): string {
    return `committed=${this.committed}, applied=${this.applied}, applying=${this.applying}, unstable.offset=${this.unstable.offset}, unstable.offsetInProgress=${this.unstable.offsetInProgress}, len(unstable.entries)=${this.unstable.entries.length}`;
  }

  /**
   * Appends entries after checking that (index, logTerm) matches our log. Returns the index
   * of the last new entry, or -1 if the log does not match (the caller rejects).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNewIndex = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      if (ci <= this.committed) {
        fail(`entry ${ci} conflicts with committed entry [committed(${this.committed})]`);
      }
      const offset = index + 1;
      const from = ci - offset;
      assert(from >= 0 && from < ents.length, `maybeAppend: conflict index ${ci} out of range`);
      this.append(from === 0 ? ents : ents.slice(from));
    }
    this.commitTo(Math.min(committed, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries (truncating a conflicting unstable tail); returns the new last index. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    if (after < this.committed) {
      fail(`append: after(${after}) is out of range [committed(${this.committed})]`);
    }
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * Index of the first entry in `ents` that is new or conflicts with an existing entry (same
   * index, different term), or 0 if all are already present. Entries must be contiguous.
   */
  findConflict(ents: Entry[]): number {
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i]!;
      if (!this.matchTerm(e.index, e.term)) {
        if (e.index <= this.lastIndex()) {
          this.logger.debug('found conflict', {
            index: e.index,
            existingTerm: this.zeroTermOnOutOfBounds(e.index),
            conflictingTerm: e.term,
          });
        }
        return e.index;
      }
    }
    return 0;
  }

  /**
   * The largest (index, term) with index ≤ `index` and term ≤ `term` in our log: the best
   * guess of where our log and one whose entry at `index` has `term` may still match
   * (etcd's findConflictByTerm). Term 0 means "unknown" (compacted or empty).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const ourTerm = this.tryTerm(index);
      if (ourTerm < 0) return { index, term: 0 };
      if (ourTerm <= term) return { index, term: ourTerm };
    }
    return { index: 0, term: 0 };
  }

  /** Unstable entries not yet handed out for persistence. */
  nextUnstableEnts(): Entry[] {
    return this.unstable.nextEntries();
  }

  hasNextUnstableEnts(): boolean {
    return this.unstable.hasNextEntries();
  }

  hasNextOrInProgressUnstableEnts(): boolean {
    return this.unstable.entries.length > 0;
  }

  /**
   * Committed entries ready to hand to the application (after `applying`), limited to
   * maxApplyingEntsSize bytes. None while a snapshot is pending: it must be applied first.
   */
  nextCommittedEnts(): Entry[] {
    if (this.hasNextOrInProgressSnapshot()) return [];
    const lo = this.applying + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxApplyingEntsSize);
  }

  hasNextCommittedEnts(): boolean {
    if (this.hasNextOrInProgressSnapshot()) return false;
    return this.applying < this.committed;
  }

  nextUnstableSnapshot(): Snapshot | null {
    return this.unstable.nextSnapshot();
  }

  hasNextUnstableSnapshot(): boolean {
    return this.unstable.nextSnapshot() !== null;
  }

  hasNextOrInProgressSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  snapshot(): Snapshot {
    if (this.unstable.snapshot !== null) return this.unstable.snapshot;
    return this.storage.snapshot();
  }

  firstIndex(): number {
    const i = this.unstable.maybeFirstIndex();
    if (i >= 0) return i;
    const f = this.storage.firstIndex();
    if (!(Number.isSafeInteger(f) && f >= 1)) checkIndex(f, 'storage.firstIndex()');
    return f;
  }

  lastIndex(): number {
    const i = this.unstable.maybeLastIndex();
    if (i >= 0) return i;
    const l = this.storage.lastIndex();
    if (!(Number.isSafeInteger(l) && l >= 0)) checkIndex(l, 'storage.lastIndex()');
    return l;
  }

  commitTo(toCommit: number): void {
    // Never decrease commit.
    if (this.committed < toCommit) {
      if (this.lastIndex() < toCommit) {
        fail(
          `tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
        );
      }
      this.committed = toCommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    if (this.committed < i || i < this.applied) {
      fail(`applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`);
    }
    this.applied = i;
    if (this.applying < i) this.applying = i;
  }

  acceptApplying(i: number): void {
    if (this.committed < i) fail(`applying(${i}) is out of range [committed(${this.committed})]`);
    this.applying = i;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  acceptUnstable(): void {
    this.unstable.acceptInProgress();
  }

  lastTerm(): number {
    const t = this.tryTerm(this.lastIndex());
    if (t < 0) fail(`unexpected error when getting the last term (last index ${this.lastIndex()})`);
    return t;
  }

  /**
   * Term of the entry at i; -1 if compacted or beyond the last index. The valid range is
   * [firstIndex − 1, lastIndex]: the term just before the first entry is kept for matching.
   */
  tryTerm(i: number): number {
    const ut = this.unstable.maybeTerm(i);
    if (ut >= 0) return ut;
    if (i + 1 < this.firstIndex()) return -1;
    if (i > this.lastIndex()) return -1;
    let t: number;
    try {
      t = this.storage.term(i);
    } catch (err) {
      if (err instanceof CompactedError || err instanceof UnavailableError) return -1;
      throw err;
    }
    if (!(Number.isSafeInteger(t) && t >= 0)) checkIndex(t, `storage.term(${i})`);
    return t;
  }

  /** Term at i, or 0 when i is out of the available range. */
  zeroTermOnOutOfBounds(i: number): number {
    const t = this.tryTerm(i);
    return t < 0 ? 0 : t;
  }

  /**
   * Entries from i on, at most maxSize bytes (at least one). Throws CompactedError if i is
   * compacted.
   */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  /** All entries from the first index (tests and debugging). */
  allEntries(): Entry[] {
    for (;;) {
      try {
        return this.entries(this.firstIndex(), Number.MAX_SAFE_INTEGER);
      } catch (err) {
        // A concurrent compaction can race; retry.
        if (err instanceof CompactedError) continue;
        throw err;
      }
    }
  }

  /**
   * Whether a candidate whose last entry is (lastIndex, term) has a log at least as
   * up-to-date as ours (§5.4.1): higher last term, or equal term and at least as long.
   */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  matchTerm(i: number, term: number): boolean {
    const t = this.tryTerm(i);
    return t >= 0 && t === term;
  }

  /** Commits up to (index) if the entry there has `term` (the leader's current term). */
  maybeCommit(index: number, term: number): boolean {
    if (index > this.committed && this.zeroTermOnOutOfBounds(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.logger.info('log starts to restore snapshot', {
      log: this.toString(),
      index: s.metadata.index,
      term: s.metadata.term,
    });
    assert(s.metadata.index >= this.committed, 'restore: snapshot behind commit');
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /**
   * Entries in [lo, hi), at most maxSize bytes but at least one. Throws CompactedError if
   * lo is compacted.
   */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    if (lo === hi) return [];
    const uOffset = this.unstable.offset;
    if (lo >= uOffset) {
      const ents = this.unstable.slice(lo, hi);
      return limitSize(ents, maxSize);
    }
    const cut = Math.min(hi, uOffset);
    const stored = this.storage.entries(lo, cut, maxSize);
    if (stored.length === 0) fail(`storage returned no entries for [${lo}, ${cut})`);
    for (let i = 0; i < stored.length; i++) {
      const e = stored[i]!;
      if (e.index !== lo + i) {
        fail(`storage.entries(${lo}, ${cut}) returned index ${e.index} at position ${i}`);
      }
      if (!(Number.isSafeInteger(e.term) && e.term >= 0)) checkIndex(e.term, 'storage entry term');
    }
    // Storage cut the result short because of the size limit: done.
    if (stored.length < cut - lo) return stored;
    if (hi <= uOffset) return stored;
    // Continue with unstable entries while the size budget allows.
    let size = 0;
    for (let i = 0; i < stored.length; i++) size += entrySize(stored[i]!);
    const u = this.unstable.entries;
    const end = hi - uOffset;
    let k = 0;
    for (; k < end; k++) {
      size += entrySize(u[k]!);
      if (size > maxSize) break;
    }
    if (k === 0) return stored;
    // Never extend the array Storage returned: it may be the implementation's own.
    return stored.concat(u.slice(0, k));
  }

  private mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) fail(`invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) throw new CompactedError(`slice(${lo}, ${hi}): first index is ${fi}`);
    const length = this.lastIndex() + 1 - fi;
    if (hi > fi + length) fail(`slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}

function checkIndex(n: number, what: string): void {
  if (!(Number.isSafeInteger(n) && n >= 0)) {
    fail(`${what} must be a non-negative safe integer, got ${String(n)}`);
  }
}
