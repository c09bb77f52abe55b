import type { ConfState, Entry, HardState, Snapshot, Storage } from './types.js';
import { EntryType } from './types.js';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from './errors.js';
import { assert, assertIndex } from './assert.js';
import { cloneConfState, limitedSlice, EMPTY_BYTES } from './util.js';

/**
 * In-memory Storage with compaction and snapshots (etcd's MemoryStorage).
 *
 * `ents[0]` is a dummy entry holding the index and term of the last compacted entry (the
 * snapshot's), so `ents[i]` has index `ents[0].index + i`. Entries are never mutated after
 * they are stored; arrays handed out are copies.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
    data: EMPTY_BYTES,
  };
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES }];

  initialState(): { hardState: HardState; confState: ConfState } {
    return {
      hardState: { ...this.hardState },
      confState: cloneConfState(this.snap.metadata.confState),
    };
  }

  setHardState(hs: HardState): void {
    assertIndex(hs.term, 'hardState.term');
    assertIndex(hs.vote, 'hardState.vote');
    assertIndex(hs.commit, 'hardState.commit');
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /** Bootstrap helper: sets the membership reported by initialState(). */
  setConfState(cs: ConfState): void {
    this.snap = {
      metadata: { ...this.snap.metadata, confState: cloneConfState(cs) },
      data: this.snap.data,
    };
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new CompactedError(`entries(${lo}, ${hi}): compacted up to ${offset}`);
    const last = this.lastIndex();
    if (hi > last + 1) {
      throw new UnavailableError(`entries(${lo}, ${hi}): last index is ${last}`);
    }
    assert(lo <= hi, `entries: lo ${lo} > hi ${hi}`);
    if (lo === hi) return [];
    return limitedSlice(this.ents, lo - offset, hi - offset, maxBytes);
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new CompactedError(`term(${index}): compacted up to ${offset}`);
    const i = index - offset;
    if (i >= this.ents.length) {
      throw new UnavailableError(`term(${index}): last index is ${this.lastIndex()}`);
    }
    return this.ents[i]!.term;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot (a follower receiving MsgSnap). */
  applySnapshot(snap: Snapshot): void {
    const index = snap.metadata.index;
    assertIndex(index, 'snapshot index');
    assertIndex(snap.metadata.term, 'snapshot term');
    if (index <= this.snap.metadata.index) {
      throw new SnapshotOutOfDateError(
        `snapshot at ${index} is not newer than the held one at ${this.snap.metadata.index}`,
      );
    }
    this.snap = {
      metadata: {
        index,
        term: snap.metadata.term,
        confState: cloneConfState(snap.metadata.confState),
      },
      data: snap.data,
    };
    this.ents = [{ term: snap.metadata.term, index, type: EntryType.Normal, data: EMPTY_BYTES }];
  }

  /**
   * Records a snapshot of the state machine at `index` (which must be applied by the caller),
   * for sending to slow followers. Does not compact; call compact() separately.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    assertIndex(index, 'snapshot index');
    if (index <= this.snap.metadata.index) {
      throw new SnapshotOutOfDateError(
        `createSnapshot(${index}): already have a snapshot at ${this.snap.metadata.index}`,
      );
    }
    const offset = this.offset();
    assert(
      index <= this.lastIndex(),
      `createSnapshot(${index}) is out of bound lastIndex(${this.lastIndex()})`,
    );
    assert(index >= offset, `createSnapshot(${index}) is before the first entry ${offset}`);
    this.snap = {
      metadata: { index, term: this.ents[index - offset]!.term, confState: cloneConfState(confState) },
      data,
    };
    return this.snap;
  }

  /** Discards entries ≤ compactIndex. The caller must not compact past what it has applied. */
  compact(compactIndex: number): void {
    assertIndex(compactIndex, 'compactIndex');
    const offset = this.offset();
    if (compactIndex <= offset) {
      throw new CompactedError(`compact(${compactIndex}): already compacted up to ${offset}`);
    }
    assert(
      compactIndex <= this.lastIndex(),
      `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`,
    );
    const i = compactIndex - offset;
    const dummy: Entry = {
      term: this.ents[i]!.term,
      index: compactIndex,
      type: EntryType.Normal,
      data: EMPTY_BYTES,
    };
    const rest = this.ents.slice(i + 1);
    this.ents = [dummy];
    for (let k = 0; k < rest.length; k++) this.ents.push(rest[k]!);
  }

  /**
   * Appends entries, overwriting any conflicting suffix. Entries must be contiguous with (or
   * overlap) the existing log; entries at or before the compaction point are ignored.
   */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[entries.length - 1]!.index;
    if (last < first) return; // all already compacted
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      if (!(Number.isSafeInteger(e.index) && Number.isSafeInteger(e.term) && e.term >= 0)) {
        assert(false, `append: bad entry term/index ${e.term}/${e.index}`);
      }
      if (k > 0) assert(e.index === entries[k - 1]!.index + 1, 'append: entries not contiguous');
    }
    let start = 0;
    if (first > entries[0]!.index) start = first - entries[0]!.index;
    const offset = entries[start]!.index - this.offset();
    assert(
      offset <= this.ents.length,
      `append: missing log entry [last: ${this.lastIndex()}, append at: ${entries[start]!.index}]`,
    );
    this.ents.length = offset;
    for (let k = start; k < entries.length; k++) this.ents.push(entries[k]!);
  }
}
