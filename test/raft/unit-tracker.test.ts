/**
 * Unit tests: inflight window (count and bytes), Progress state machine, quorum math.
 */
import assert from 'node:assert/strict';
import { Inflights } from '../../src/raft/tracker/inflights.js';
import { Progress } from '../../src/raft/tracker/progress.js';
import { ProgressTracker } from '../../src/raft/tracker/tracker.js';
import { majority, majorityCommitIndex, voteResult } from '../../src/raft/quorum.js';
import { InvariantError } from '../../src/raft/index.js';

describe('Inflights', function () {
  it('fills by count, frees up to an index, wraps around the ring', function () {
    const inf = new Inflights(4, 0);
    for (let i = 1; i <= 4; i++) inf.add(i, 10);
    assert.equal(inf.full(), true);
    assert.throws(() => inf.add(5, 10), InvariantError);
    inf.freeLE(2);
    assert.equal(inf.count(), 2);
    assert.equal(inf.bytes(), 20);
    inf.add(5, 10);
    inf.add(6, 10);
    assert.equal(inf.full(), true);
    inf.freeLE(4);
    assert.equal(inf.count(), 2);
    inf.freeLE(0); // stale ack frees nothing
    assert.equal(inf.count(), 2);
    inf.freeLE(100);
    assert.equal(inf.count(), 0);
    assert.equal(inf.bytes(), 0);
    assert.equal(inf.full(), false);
  });

  it('fills by bytes before count', function () {
    const inf = new Inflights(100, 25);
    inf.add(1, 10);
    inf.add(2, 10);
    assert.equal(inf.full(), false);
    inf.add(3, 10);
    assert.equal(inf.full(), true, '30 bytes ≥ 25');
    inf.freeLE(1);
    assert.equal(inf.full(), false);
  });

  it('grows lazily up to its size and keeps order across growth', function () {
    const inf = new Inflights(64, 0);
    for (let i = 1; i <= 10; i++) inf.add(i, 1);
    inf.freeLE(5);
    for (let i = 11; i <= 59; i++) inf.add(i, 1);
    assert.equal(inf.count(), 54);
    inf.freeLE(30);
    assert.equal(inf.count(), 29);
    assert.equal(inf.bytes(), 29);
    assert.throws(() => inf.add(59, 1), InvariantError, 'indexes must increase');
  });

  it('reset empties it', function () {
    const inf = new Inflights(2, 0);
    inf.add(1, 5);
    inf.add(2, 5);
    inf.reset();
    assert.equal(inf.count(), 0);
    assert.equal(inf.full(), false);
  });
});

describe('Progress', function () {
  const pr = (match: number, next: number, size = 4): Progress => {
    const p = new Progress(next, new Inflights(size, 0), false);
    p.match = match;
    return p;
  };

  it('probe pauses after sending entries; maybeUpdate unpauses and keeps match < next', function () {
    const p = pr(0, 5);
    p.updateOnEntriesSend(1, 10, 5);
    assert.equal(p.isPaused(), true);
    assert.equal(p.maybeUpdate(3), true);
    assert.equal(p.isPaused(), false);
    assert.equal(p.next, 5);
    assert.equal(p.maybeUpdate(7), true);
    assert.equal(p.next, 8);
    assert.equal(p.maybeUpdate(6), false, 'stale ack');
  });

  it('replicate advances next optimistically and pauses when the window is full', function () {
    const p = pr(4, 5, 2);
    p.becomeReplicate();
    p.updateOnEntriesSend(3, 30, 5);
    assert.equal(p.next, 8);
    assert.equal(p.isPaused(), false);
    p.updateOnEntriesSend(2, 20, 8);
    assert.equal(p.isPaused(), true);
    assert.equal(p.inflights.count(), 2);
  });

  it('maybeDecrTo: replicate falls back to match+1; probe uses the hint and ignores stale rejections', function () {
    const r = pr(5, 10);
    r.becomeReplicate();
    assert.equal(r.maybeDecrTo(4, 4), false, 'rejection ≤ match is stale');
    assert.equal(r.maybeDecrTo(8, 2), true);
    assert.equal(r.next, 6);
    const p = pr(0, 10);
    assert.equal(p.maybeDecrTo(5, 3), false, 'probe: only next-1 is current');
    assert.equal(p.maybeDecrTo(9, 3), true);
    assert.equal(p.next, 4);
    assert.equal(p.maybeDecrTo(3, 100), true);
    assert.equal(p.next, 3, 'never above the rejected index');
    const q = pr(2, 10);
    q.maybeDecrTo(9, 0);
    assert.equal(q.next, 3, 'never at or below match');
  });

  it('snapshot state pauses; becomeProbe resumes after the pending snapshot', function () {
    const p = pr(3, 4);
    p.becomeSnapshot(20);
    assert.equal(p.isPaused(), true);
    assert.equal(p.pendingSnapshot, 20);
    p.becomeProbe();
    assert.equal(p.state, 'probe');
    assert.equal(p.next, 21);
    assert.equal(p.pendingSnapshot, 0);
  });

  it('asserts its invariants after each transition (a corrupt view fails loudly)', function () {
    const behind = pr(10, 5); // next at or below match: the leader would resend from a hole
    assert.throws(() => behind.updateOnEntriesSend(1, 10, 5), InvariantError);
    const snap = pr(3, 4);
    // A snapshot state with no pending snapshot index (and next at or below match).
    assert.throws(() => snap.becomeSnapshot(0), InvariantError);
  });
});

describe('Quorum', function () {
  it('majority sizes', function () {
    assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
  });

  it('voteResult: won / lost / pending', function () {
    const v = (o: Record<number, boolean>): Map<number, boolean> => new Map(Object.entries(o).map(([k, b]) => [Number(k), b]));
    assert.equal(voteResult([1, 2, 3], v({ 1: true, 2: true })), 'won');
    assert.equal(voteResult([1, 2, 3], v({ 1: true, 2: false })), 'pending');
    assert.equal(voteResult([1, 2, 3], v({ 1: true, 2: false, 3: false })), 'lost');
    assert.equal(voteResult([1, 2, 3, 4], v({ 1: true, 2: true })), 'pending');
    assert.equal(voteResult([1], v({ 1: true })), 'won');
    assert.equal(voteResult([1, 2, 3], v({ 4: true, 5: true })), 'pending', 'non-voters do not count');
  });

  it('majorityCommitIndex is the largest index on a majority', function () {
    const scratch: number[] = [];
    const m = (matches: number[]): number => majorityCommitIndex(matches.map((_, i) => i + 1), (id) => matches[id - 1]!, scratch);
    assert.equal(m([5]), 5);
    assert.equal(m([5, 3]), 3);
    assert.equal(m([5, 3, 1]), 3);
    assert.equal(m([1, 5, 3, 2]), 2);
    assert.equal(m([9, 1, 9, 1, 2]), 2);
    assert.equal(m([]), 0);
  });

  it('tracker: learners are never counted; membership lists stay sorted', function () {
    const t = new ProgressTracker(4, 0);
    t.setMember(3, false, 1);
    t.setMember(1, false, 1);
    t.setMember(5, true, 1);
    t.setMember(2, false, 1);
    assert.deepEqual(t.voters, [1, 2, 3]);
    assert.deepEqual(t.learners, [5]);
    assert.deepEqual(t.ids, [1, 2, 3, 5]);
    t.progress.get(5)!.match = 100;
    t.progress.get(1)!.match = 10;
    assert.equal(t.committed(), 0, 'a learner with a high match does not make a quorum');
    t.progress.get(2)!.match = 7;
    assert.equal(t.committed(), 7);
    t.recordVote(5, true);
    t.recordVote(1, true);
    assert.equal(t.tallyVotes().result, 'pending');
    t.recordVote(1, false); // first vote wins
    assert.equal(t.tallyVotes().granted, 1);
    t.setMember(5, false, 1); // promote
    assert.deepEqual(t.voters, [1, 2, 3, 5]);
    t.removeMember(2);
    assert.deepEqual(t.voters, [1, 3, 5]);
    assert.deepEqual(t.confState(), { voters: [1, 3, 5], learners: [] });
  });
});
