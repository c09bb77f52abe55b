/**
 * Unit tests: MemoryStorage, Unstable and RaftLog (etcd's storage_test, log_unstable_test and
 * log_test, ported in spirit).
 */
import assert from 'node:assert/strict';
import {
  MemoryStorage,
  CompactedError,
  UnavailableError,
  SnapshotOutOfDateError,
  InvariantError,
  EntryType,
  type Entry,
  type Snapshot,
} from '../../src/raft/index.js';
import { Unstable } from '../../src/raft/unstable.js';
import { RaftLog } from '../../src/raft/log.js';
import { NOOP_LOGGER } from '../../src/raft/config.js';
import { ENTRY_OVERHEAD_BYTES } from '../../src/raft/util.js';

function ent(index: number, term: number, data = ''): Entry {
  return { index, term, type: EntryType.Normal, data: new TextEncoder().encode(data) };
}
const ids = (es: Entry[]): string[] => es.map((e) => `${e.index}@${e.term}`);

function snap(index: number, term: number, voters: number[] = [1]): Snapshot {
  return { metadata: { index, term, confState: { voters, learners: [] } }, data: new Uint8Array([1]) };
}

/** Storage with a snapshot at 3@3 and entries 4@4, 5@5. */
function storage345(): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot(snap(3, 3));
  s.append([ent(4, 4), ent(5, 5)]);
  return s;
}

describe('MemoryStorage', function () {
  it('term(): compacted below the snapshot, snapshot term at its index, unavailable past the end', function () {
    const s = storage345();
    assert.throws(() => s.term(2), CompactedError);
    assert.equal(s.term(3), 3);
    assert.equal(s.term(4), 4);
    assert.equal(s.term(5), 5);
    assert.throws(() => s.term(6), UnavailableError);
    assert.equal(s.firstIndex(), 4);
    assert.equal(s.lastIndex(), 5);
  });

  it('entries(): bounds, and the byte limit always returns at least one entry', function () {
    const s = storage345();
    s.append([ent(6, 6, 'x'.repeat(100))]);
    assert.throws(() => s.entries(3, 5, Infinity), CompactedError);
    assert.throws(() => s.entries(4, 8, Infinity), UnavailableError);
    assert.deepEqual(ids(s.entries(4, 7, Infinity)), ['4@4', '5@5', '6@6']);
    assert.deepEqual(ids(s.entries(4, 7, 0)), ['4@4'], 'at least one entry');
    assert.deepEqual(ids(s.entries(4, 7, 2 * ENTRY_OVERHEAD_BYTES)), ['4@4', '5@5']);
    assert.deepEqual(ids(s.entries(4, 7, 2 * ENTRY_OVERHEAD_BYTES + 99)), ['4@4', '5@5']);
    assert.deepEqual(s.entries(5, 5, Infinity), []);
  });

  it('append(): overwrites a conflicting suffix, ignores compacted entries, refuses gaps', function () {
    const s = storage345();
    s.append([ent(3, 3), ent(4, 4), ent(5, 5)]);
    assert.deepEqual(ids(s.entries(4, 6, Infinity)), ['4@4', '5@5']);
    s.append([ent(5, 6), ent(6, 6)]);
    assert.deepEqual(ids(s.entries(4, 7, Infinity)), ['4@4', '5@6', '6@6']);
    s.append([ent(2, 1), ent(3, 3), ent(4, 7)]);
    assert.deepEqual(ids(s.entries(4, 5, Infinity)), ['4@7'], 'truncated after the overwrite');
    assert.equal(s.lastIndex(), 4);
    s.append([ent(1, 1), ent(2, 1)]); // entirely compacted: no-op
    assert.equal(s.lastIndex(), 4);
    assert.throws(() => s.append([ent(6, 7)]), InvariantError, 'gap');
  });

  it('compact(): drops entries ≤ index and keeps the term of the compaction point', function () {
    const s = storage345();
    s.append([ent(6, 6)]);
    assert.throws(() => s.compact(3), CompactedError);
    s.compact(4);
    assert.equal(s.firstIndex(), 5);
    assert.equal(s.term(4), 4);
    assert.throws(() => s.term(3), CompactedError);
    assert.throws(() => s.compact(7), InvariantError);
    s.compact(6);
    assert.equal(s.firstIndex(), 7);
    assert.equal(s.lastIndex(), 6);
  });

  it('createSnapshot() and applySnapshot() refuse older snapshots', function () {
    const s = storage345();
    const sn = s.createSnapshot(5, { voters: [1, 2], learners: [3] }, new Uint8Array([9]));
    assert.deepEqual(sn.metadata, { index: 5, term: 5, confState: { voters: [1, 2], learners: [3] } });
    assert.throws(() => s.createSnapshot(4, { voters: [], learners: [] }, new Uint8Array()), SnapshotOutOfDateError);
    assert.throws(() => s.applySnapshot(snap(5, 5)), SnapshotOutOfDateError);
    s.applySnapshot(snap(10, 7, [1, 2]));
    assert.equal(s.firstIndex(), 11);
    assert.equal(s.lastIndex(), 10);
    assert.equal(s.term(10), 7);
    assert.deepEqual(s.initialState().confState, { voters: [1, 2], learners: [] });
  });

  it('hard state and conf state round-trip through initialState() (copies)', function () {
    const s = new MemoryStorage();
    s.setHardState({ term: 2, vote: 1, commit: 0 });
    s.setConfState({ voters: [1, 2, 3], learners: [] });
    const st = s.initialState();
    assert.deepEqual(st, { hardState: { term: 2, vote: 1, commit: 0 }, confState: { voters: [1, 2, 3], learners: [] } });
    st.confState.voters.push(4);
    assert.deepEqual(s.initialState().confState.voters, [1, 2, 3]);
    assert.throws(() => s.setHardState({ term: -1, vote: 0, commit: 0 }), InvariantError);
    assert.throws(() => s.setHardState({ term: 2 ** 53, vote: 0, commit: 0 }), InvariantError);
  });
});

describe('Unstable', function () {
  it('maybeTerm / maybeFirstIndex / maybeLastIndex with and without a snapshot', function () {
    const u = new Unstable(5);
    assert.equal(u.maybeLastIndex(), -1);
    assert.equal(u.maybeFirstIndex(), -1);
    u.truncateAndAppend([ent(5, 1), ent(6, 1)]);
    assert.equal(u.maybeLastIndex(), 6);
    assert.equal(u.maybeTerm(5), 1);
    assert.equal(u.maybeTerm(7), -1);
    assert.equal(u.maybeTerm(4), -1);
    u.restore(snap(10, 3));
    assert.equal(u.maybeFirstIndex(), 11);
    assert.equal(u.maybeLastIndex(), 10);
    assert.equal(u.maybeTerm(10), 3);
    assert.equal(u.offset, 11);
    assert.equal(u.entries.length, 0);
  });

  it('truncateAndAppend: append, replace before offset, truncate in the middle (in-progress shrinks)', function () {
    const u = new Unstable(5);
    u.truncateAndAppend([ent(5, 1), ent(6, 1), ent(7, 1)]);
    u.acceptInProgress();
    assert.equal(u.offsetInProgress, 8);
    u.truncateAndAppend([ent(8, 1)]);
    assert.equal(u.offsetInProgress, 8);
    assert.deepEqual(ids(u.nextEntries()), ['8@1']);
    u.truncateAndAppend([ent(7, 2)]);
    assert.deepEqual(ids(u.entries), ['5@1', '6@1', '7@2']);
    assert.equal(u.offsetInProgress, 7, 'the replaced in-progress entry must be written again');
    assert.deepEqual(ids(u.nextEntries()), ['7@2']);
    u.truncateAndAppend([ent(4, 3)]);
    assert.equal(u.offset, 4);
    assert.equal(u.offsetInProgress, 4);
    assert.deepEqual(ids(u.entries), ['4@3']);
  });

  it('stableTo ignores replaced or unknown entries and never moves offsetInProgress back', function () {
    const u = new Unstable(1);
    u.truncateAndAppend([ent(1, 1), ent(2, 1), ent(3, 1)]);
    u.acceptInProgress();
    u.stableTo(2, 2); // wrong term: the write was for a replaced entry
    assert.equal(u.offset, 1);
    u.stableTo(9, 1); // unknown
    assert.equal(u.offset, 1);
    u.stableTo(2, 1);
    assert.equal(u.offset, 3);
    assert.deepEqual(ids(u.entries), ['3@1']);
    assert.equal(u.offsetInProgress, 4);
    assert.deepEqual(u.nextEntries(), []);
  });

  it('snapshot handed out once; stableSnapTo clears it', function () {
    const u = new Unstable(1);
    u.restore(snap(5, 2));
    assert.ok(u.nextSnapshot() !== null);
    u.acceptInProgress();
    assert.equal(u.nextSnapshot(), null);
    u.stableSnapTo(4);
    assert.ok(u.snapshot !== null);
    u.stableSnapTo(5);
    assert.equal(u.snapshot, null);
  });
});

describe('RaftLog', function () {
  function newLog(ents: Entry[] = [], s = new MemoryStorage()): RaftLog {
    s.append(ents);
    return new RaftLog(s, Number.MAX_SAFE_INTEGER, NOOP_LOGGER);
  }

  it('starts with committed = applied = snapshot index', function () {
    const log = newLog([], storage345());
    assert.equal(log.committed, 3);
    assert.equal(log.applied, 3);
    assert.equal(log.firstIndex(), 4);
    assert.equal(log.lastIndex(), 5);
    assert.equal(log.lastTerm(), 5);
  });

  it('findConflict: 0 when all present, else the first new or conflicting index', function () {
    const log = newLog([ent(1, 1), ent(2, 2), ent(3, 3)]);
    assert.equal(log.findConflict([]), 0);
    assert.equal(log.findConflict([ent(1, 1), ent(2, 2)]), 0);
    assert.equal(log.findConflict([ent(2, 2), ent(3, 3), ent(4, 4)]), 4);
    assert.equal(log.findConflict([ent(2, 1), ent(3, 4)]), 2);
    assert.equal(log.findConflict([ent(3, 1), ent(4, 4)]), 3);
  });

  it('findConflictByTerm: largest index with term ≤ the given term', function () {
    // Log: 1@1 2@1 3@2 4@2 5@4 6@4
    const log = newLog([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 4), ent(6, 4)]);
    assert.deepEqual(log.findConflictByTerm(6, 4), { index: 6, term: 4 });
    assert.deepEqual(log.findConflictByTerm(6, 3), { index: 4, term: 2 });
    assert.deepEqual(log.findConflictByTerm(6, 1), { index: 2, term: 1 });
    assert.deepEqual(log.findConflictByTerm(6, 0), { index: 0, term: 0 });
    const compacted = newLog([], storage345());
    assert.deepEqual(compacted.findConflictByTerm(5, 4), { index: 4, term: 4 });
    assert.deepEqual(compacted.findConflictByTerm(5, 2), { index: 2, term: 0 }, 'unknown (compacted) → term 0');
  });

  it('maybeAppend: rejects a mismatch, appends, truncates conflicts, and commits min(commit, lastNew)', function () {
    const log = newLog([ent(1, 1), ent(2, 2), ent(3, 3)]);
    assert.equal(log.maybeAppend(3, 2, 3, [ent(4, 4)]), -1, 'prev term mismatch');
    assert.equal(log.maybeAppend(4, 3, 3, [ent(5, 4)]), -1, 'prev beyond last');
    assert.equal(log.maybeAppend(3, 3, 10, [ent(4, 4)]), 4);
    assert.equal(log.committed, 4);
    assert.equal(log.maybeAppend(2, 2, 4, [ent(3, 3), ent(4, 4)]), 4, 'duplicate: nothing changes');
    assert.equal(log.maybeAppend(4, 4, 4, [ent(5, 5), ent(6, 5)]), 6);
    assert.equal(log.maybeAppend(4, 4, 4, [ent(5, 6)]), 5, 'conflict truncates the tail');
    assert.equal(log.lastIndex(), 5);
    assert.equal(log.zeroTermOnOutOfBounds(5), 6);
    assert.throws(() => log.maybeAppend(1, 1, 4, [ent(2, 9)]), InvariantError, 'a committed entry never changes');
  });

  it('commitTo never decreases and never passes the last index; appliedTo stays within [applied, committed]', function () {
    const log = newLog([ent(1, 1), ent(2, 1), ent(3, 1)]);
    log.commitTo(2);
    log.commitTo(1);
    assert.equal(log.committed, 2);
    assert.throws(() => log.commitTo(4), InvariantError);
    log.appliedTo(2);
    assert.throws(() => log.appliedTo(3), InvariantError, 'beyond commit');
    assert.throws(() => log.appliedTo(1), InvariantError, 'backwards');
  });

  it('isUpToDate compares last term first, then length (§5.4.1)', function () {
    const log = newLog([ent(1, 1), ent(2, 2), ent(3, 3)]);
    assert.equal(log.isUpToDate(2, 4), true);
    assert.equal(log.isUpToDate(3, 2), false);
    assert.equal(log.isUpToDate(3, 3), true);
    assert.equal(log.isUpToDate(2, 3), false);
    assert.equal(log.isUpToDate(4, 3), true);
  });

  it('maybeCommit only commits an entry of the given term', function () {
    const log = newLog([ent(1, 1), ent(2, 2)]);
    assert.equal(log.maybeCommit(1, 2), false);
    assert.equal(log.maybeCommit(2, 2), true);
    assert.equal(log.committed, 2);
    assert.equal(log.maybeCommit(2, 2), false);
  });

  it('slice spans storage and unstable and respects the byte limit', function () {
    const log = newLog([ent(1, 1, 'a'), ent(2, 1, 'b')]);
    log.append([ent(3, 1, 'c'), ent(4, 1, 'd')]);
    assert.deepEqual(ids(log.slice(1, 5, Infinity)), ['1@1', '2@1', '3@1', '4@1']);
    const one = ENTRY_OVERHEAD_BYTES + 1;
    assert.deepEqual(ids(log.slice(1, 5, 3 * one)), ['1@1', '2@1', '3@1']);
    assert.deepEqual(ids(log.slice(2, 4, one)), ['2@1']);
    assert.deepEqual(ids(log.slice(3, 5, 0)), ['3@1']);
    assert.throws(() => log.slice(0, 2, Infinity), CompactedError);
    assert.throws(() => log.slice(1, 6, Infinity), InvariantError);
  });

  it('nextCommittedEnts waits while a snapshot is pending and honours applying', function () {
    const log = newLog([ent(1, 1), ent(2, 1), ent(3, 1)]);
    log.commitTo(3);
    assert.deepEqual(ids(log.nextCommittedEnts()), ['1@1', '2@1', '3@1']);
    log.acceptApplying(2);
    assert.deepEqual(ids(log.nextCommittedEnts()), ['3@1']);
    log.restore(snap(10, 2));
    assert.deepEqual(log.nextCommittedEnts(), []);
    assert.equal(log.hasNextCommittedEnts(), false);
    assert.equal(log.committed, 10);
    assert.equal(log.lastIndex(), 10);
    assert.equal(log.firstIndex(), 11);
  });

  it('rejects unsafe numbers coming back from Storage', function () {
    const s = new MemoryStorage();
    s.append([ent(1, 1)]);
    const bad = Object.create(s) as MemoryStorage;
    bad.term = () => 2 ** 53;
    const log = new RaftLog(bad, Infinity, NOOP_LOGGER);
    assert.throws(() => log.tryTerm(1), InvariantError);
  });
});
