import type { Entry, Snapshot } from './types.js';
import { assert, fail } from './assert.js';

/**
 * The tail of the log (and possibly an incoming snapshot) not yet persisted to Storage.
 *
 * `entries[i]` has index `offset + i`. Entries in [offset, offsetInProgress) have been handed
 * out in a Ready and are being written; they stay here until stableTo() confirms them.
 * Invariants: offset ≤ offsetInProgress ≤ offset + entries.length; if a snapshot is held,
 * offset = snapshot.index + 1.
 */
export class Unstable {
  snapshot: Snapshot | null = null;
  entries: Entry[] = [];
  offset: number;
  snapshotInProgress = false;
  offsetInProgress: number;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** Index of the first entry possibly held (snapshot index + 1), or -1 if unknown here. */
  maybeFirstIndex(): number {
    return this.snapshot !== null ? this.snapshot.metadata.index + 1 : -1;
  }

  /** Last index held here, or -1 if none. */
  maybeLastIndex(): number {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot !== null) return this.snapshot.metadata.index;
    return -1;
  }

  /** Term at index i if this structure knows it, else -1. */
  maybeTerm(i: number): number {
    if (i < this.offset) {
      if (this.snapshot !== null && this.snapshot.metadata.index === i) {
        return this.snapshot.metadata.term;
      }
      return -1;
    }
    const k = i - this.offset;
    if (k >= this.entries.length) {
      if (this.entries.length === 0 && this.snapshot !== null && this.snapshot.metadata.index === i) {
        return this.snapshot.metadata.term;
      }
      return -1;
    }
    return this.entries[k]!.term;
  }

  /** Entries not yet handed out for persistence (a fresh array), or an empty array. */
  nextEntries(): Entry[] {
    const inProgress = this.offsetInProgress - this.offset;
    if (inProgress === this.entries.length) return [];
    return this.entries.slice(inProgress);
  }

  hasNextEntries(): boolean {
    return this.offsetInProgress - this.offset < this.entries.length;
  }

  nextSnapshot(): Snapshot | null {
    if (this.snapshot === null || this.snapshotInProgress) return null;
    return this.snapshot;
  }

  /** Everything currently held is now being persisted by the application. */
  acceptInProgress(): void {
    if (this.entries.length > 0) this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== null) this.snapshotInProgress = true;
  }

  /**
   * Entries up to (index, term) are durable. Ignored if that entry has since been replaced
   * (a different term there) or is not held here.
   */
  stableTo(index: number, term: number): void {
    const t = this.maybeTerm(index);
    if (t < 0) return;
    if (index < this.offset) return; // matched the snapshot, not an entry
    if (t !== term) return; // replaced while being written
    const num = index + 1 - this.offset;
    this.entries = num === this.entries.length ? [] : this.entries.slice(num);
    this.offset = index + 1;
    if (this.offsetInProgress < this.offset) this.offsetInProgress = this.offset;
  }

  stableSnapTo(index: number): void {
    if (this.snapshot !== null && this.snapshot.metadata.index === index) {
      this.snapshot = null;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /** Appends `ents`, first truncating anything held at or after ents[0].index. */
  truncateAndAppend(ents: Entry[]): void {
    if (ents.length === 0) return;
    const fromIndex = ents[0]!.index;
    const end = this.offset + this.entries.length;
    if (fromIndex === end) {
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
    } else if (fromIndex <= this.offset) {
      // Replace everything; the log is being truncated before our tail.
      this.entries = ents.slice();
      this.offset = fromIndex;
      this.offsetInProgress = fromIndex;
    } else {
      assert(fromIndex < end, `unstable: gap appending at ${fromIndex}, end ${end}`);
      this.entries.length = fromIndex - this.offset;
      for (let i = 0; i < ents.length; i++) this.entries.push(ents[i]!);
      if (this.offsetInProgress > fromIndex) this.offsetInProgress = fromIndex;
    }
    this.checkInvariants();
  }

  /** Entries in [lo, hi) held here (a fresh array). */
  slice(lo: number, hi: number): Entry[] {
    this.mustCheckOutOfBounds(lo, hi);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }

  mustCheckOutOfBounds(lo: number, hi: number): void {
    if (lo > hi) fail(`unstable: invalid slice ${lo} > ${hi}`);
    const upper = this.offset + this.entries.length;
    if (lo < this.offset || hi > upper) {
      fail(`unstable.slice[${lo},${hi}) out of bound [${this.offset},${upper}]`);
    }
  }

  private checkInvariants(): void {
    if (
      !(this.offset <= this.offsetInProgress &&
        this.offsetInProgress <= this.offset + this.entries.length)
    ) {
      fail(
        `unstable offsets inconsistent: offset ${this.offset}, inProgress ${this.offsetInProgress}, len ${this.entries.length}`,
      );
    }
  }
}
