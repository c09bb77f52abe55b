/**
 * membership.ts as pure functions: the leader's safety check for membership changes, the
 * transport's member list derived from the applied configuration, and when a node decides it
 * was removed. Plus the envelope fields that carry them (ConfChange context, snapshot).
 */

import assert from 'node:assert/strict';

import {
  decodeConfChangeContext,
  decodeSnapshotData,
  encodeConfChangeContext,
  encodeSnapshotData,
} from '../../src/node/envelope.js';
import {
  RemovalWatch,
  checkConfChangeSafety,
  removedIdsAfter,
  transportMembership,
  usablePeerUrl,
  type LeaderView,
} from '../../src/node/membership.js';
import { ConfChangeType, type ConfState } from '../../src/raft/types.js';

/** Leader 1; `active` lists the followers it heard from recently; matches default to 100. */
function view(voters: number[], learners: number[], active: number[], match: Record<number, number> = {}): LeaderView {
  const progress = new Map<number, { match: number; active: boolean }>();
  for (const id of [...voters, ...learners]) {
    progress.set(id, { match: match[id] ?? 100, active: id === 1 || active.includes(id) });
  }
  return { leader: 1, voters, learners, progress };
}

const cs = (voters: number[], learners: number[] = []): ConfState => ({ voters, learners });

describe('membership: safety check (etcd strict reconfiguration)', () => {
  it('adding a voter: the new node counts as down, the active voters must make the new quorum', () => {
    // One voter: a second voter makes the quorum 2, which the new (down) node would block.
    assert.equal(checkConfChangeSafety(ConfChangeType.AddVoter, 2, view([1], [], []))?.reason, 'not-enough-active-voters');
    // Three active voters: quorum of four is three.
    assert.equal(checkConfChangeSafety(ConfChangeType.AddVoter, 4, view([1, 2, 3], [], [2, 3])), null);
    // One of three down: two active < three.
    const refused = checkConfChangeSafety(ConfChangeType.AddVoter, 4, view([1, 2, 3], [], [2]));
    assert.equal(refused?.reason, 'not-enough-active-voters');
    assert.match(refused!.message, /add it as a learner/);
    // Four voters, one down: quorum of five is three, three active.
    assert.equal(checkConfChangeSafety(ConfChangeType.AddVoter, 5, view([1, 2, 3, 4], [], [2, 3])), null);
  });

  it('promoting a learner: only once active and within 90% of the leader\'s match', () => {
    const matches = { 1: 1000, 2: 1000, 3: 1000 };
    assert.equal(checkConfChangeSafety(ConfChangeType.PromoteLearner, 2, view([1], [2], [], matches))?.reason, 'learner-not-ready');
    assert.equal(checkConfChangeSafety(ConfChangeType.PromoteLearner, 2, view([1], [2], [2], { ...matches, 2: 899 }))?.reason, 'learner-not-ready');
    assert.equal(checkConfChangeSafety(ConfChangeType.PromoteLearner, 2, view([1], [2], [2], { ...matches, 2: 900 })), null);
    // AddVoter of a learner is a promotion, checked the same way.
    assert.equal(checkConfChangeSafety(ConfChangeType.AddVoter, 2, view([1], [2], [], matches))?.reason, 'learner-not-ready');
    // A caught-up learner, but the voters are mostly down: 1 active + learner < quorum(4) = 3.
    assert.equal(checkConfChangeSafety(ConfChangeType.PromoteLearner, 4, view([1, 2, 3], [4], [4], { ...matches, 4: 1000 }))?.reason, 'not-enough-active-voters');
  });

  it('removing a voter: the rest must keep a quorum of active voters; learners are free', () => {
    // 3 voters, 3 down: removing an active one leaves {1,3} with only 1 active.
    assert.equal(checkConfChangeSafety(ConfChangeType.RemoveNode, 2, view([1, 2, 3], [], [2]))?.reason, 'not-enough-active-voters');
    // Removing the down one is fine: {1,2} both active.
    assert.equal(checkConfChangeSafety(ConfChangeType.RemoveNode, 3, view([1, 2, 3], [], [2])), null);
    // Removing the leader itself: the others must be active.
    assert.equal(checkConfChangeSafety(ConfChangeType.RemoveNode, 1, view([1, 2, 3], [], [2, 3])), null);
    assert.equal(checkConfChangeSafety(ConfChangeType.RemoveNode, 1, view([1, 2, 3], [], [2]))?.reason, 'not-enough-active-voters');
    assert.equal(checkConfChangeSafety(ConfChangeType.RemoveNode, 4, view([1, 2, 3], [4], [])), null);
    assert.equal(checkConfChangeSafety(ConfChangeType.AddLearner, 5, view([1, 2, 3], [], [])), null);
  });
});

describe('membership: transport member list from the applied configuration', () => {
  it('removed ids: those that leave are added, those (re-)added are dropped', () => {
    const afterRemove = removedIdsAfter(cs([1, 2, 3, 4]), cs([1, 2, 3]), new Set());
    assert.deepEqual([...afterRemove], [4]);
    const afterReAdd = removedIdsAfter(cs([1, 2, 3]), cs([1, 2, 3], [4]), afterRemove);
    assert.deepEqual([...afterReAdd], []);
    // A removal the core ignored (the last voter) changes nothing.
    assert.deepEqual([...removedIdsAfter(cs([1]), cs([1]), new Set([7]))], [7]);
  });

  it('members are the configuration\'s (with URLs) and every other known peer not removed', () => {
    const urls = new Map([[1, 'http://a:1'], [2, 'http://a:2'], [3, 'http://a:3'], [4, 'http://a:4'], [5, 'http://a:5']]);
    const m = transportMembership(1, cs([1, 2], [3]), urls, new Set([4]));
    // 5 is not in our applied configuration but may be in the cluster's (added since): a leader
    // we must accept (refused, it could never send us the entry that adds it; test/simnode).
    assert.deepEqual([...m.members].sort(), [[2, 'http://a:2'], [3, 'http://a:3'], [5, 'http://a:5']]);
    assert.deepEqual([...m.removed], [4]);
    assert.deepEqual(m.missingUrls, []);
    // A member without a URL is reported, not invented.
    assert.deepEqual(transportMembership(1, cs([1, 9]), urls, new Set()).missingUrls, [9]);
    // Before any configuration (joining, or not yet replayed): every known peer, minus removed.
    const early = transportMembership(1, cs([]), urls, new Set([3]));
    assert.deepEqual([...early.members].sort(), [[2, 'http://a:2'], [4, 'http://a:4'], [5, 'http://a:5']]);
    // URLs from committed entries or snapshots written by others are checked before use.
    assert.equal(usablePeerUrl('http://10.0.0.1:2380'), 'http://10.0.0.1:2380');
    assert.equal(usablePeerUrl('https://10.0.0.1:2380'), null);
    assert.equal(usablePeerUrl('not a url'), null);
    // A removed id that is a member again is a member, not removed.
    assert.deepEqual([...transportMembership(1, cs([1, 4]), urls, new Set([4])).removed], []);
  });
});

describe('membership: when a node stops as removed (RemovalWatch)', () => {
  const grace = 20;

  it('a replayed RemoveNode(self) followed by the re-add does not stop the node', () => {
    const w = new RemovalWatch(3, grace, 0);
    w.onConfig(cs([1, 2]), 5); // old RemoveNode(3) replayed
    assert.equal(w.removedByConfig, true);
    w.onConfig(cs([1, 2, 3]), 6); // AddVoter(3) applied
    for (let t = 6; t < 100; t++) assert.equal(w.decide(cs([1, 2, 3]), t).stop, false);
  });

  it('removed by the applied configuration: stops only after a grace period without leader contact', () => {
    const w = new RemovalWatch(3, grace, 0);
    w.onConfig(cs([1, 2]), 10);
    assert.equal(w.decide(cs([1, 2]), 29).stop, false);
    w.onLeaderContact(25); // a leader still counts us as a member (catching up)
    assert.equal(w.decide(cs([1, 2]), 44).stop, false);
    const d = w.decide(cs([1, 2]), 45);
    assert.equal(d.stop, true);
  });

  it('a joining node (no configuration yet) is not removed', () => {
    const w = new RemovalWatch(4, grace, 0);
    w.onConfig(cs([]), 0);
    assert.equal(w.decide(cs([]), 1000).stop, false);
  });

  it('410 answers: a stale peer alone cannot stop a member; a majority of the other voters can', () => {
    const w = new RemovalWatch(4, grace, 0);
    w.onConfig(cs([1, 2, 3, 4]), 0);
    w.onGoneAnswer(2, 1); // node 2 lags behind our re-addition
    assert.equal(w.decide(cs([1, 2, 3, 4]), 100).stop, false, 'one of three other voters');
    w.onGoneAnswer(3, 2);
    w.onConfig(cs([1, 2, 3, 4]), 50); // the applied configuration, fed every tick, keeps the evidence
    assert.equal(w.decide(cs([1, 2, 3, 4]), 100).stop, true, 'two of three other voters, no leader contact');
    // Leader contact wipes the evidence: the leader replicates only to its members.
    const v = new RemovalWatch(4, grace, 0);
    v.onConfig(cs([1, 2, 3, 4]), 0);
    v.onGoneAnswer(2, 1);
    v.onGoneAnswer(3, 1);
    v.onLeaderContact(90);
    assert.equal(v.decide(cs([1, 2, 3, 4]), 100).stop, false);
  });
});

describe('membership: envelope fields', () => {
  it('ConfChange contexts carry force and the leader\'s refusal', () => {
    const ctx = {
      url: null,
      tag: { origin: 2, incarnation: 5, seq: 9 },
      force: true,
      refused: { reason: 'learner-not-ready' as const, message: 'not caught up' },
    };
    assert.deepEqual(decodeConfChangeContext(encodeConfChangeContext(ctx)), ctx);
    const plain = decodeConfChangeContext(encodeConfChangeContext({ url: 'http://x:1', tag: null }));
    assert.equal(plain.force, undefined);
    assert.equal(plain.refused, undefined);
  });

  it('snapshots carry the removed ids; older snapshots without them decode to null', () => {
    const sm = new Uint8Array([1, 2]);
    const back = decodeSnapshotData(encodeSnapshotData({ peerUrls: new Map(), stateMachine: sm, removedIds: new Set([7, 4]) }));
    assert.deepEqual([...back.removedIds!].sort(), [4, 7]);
    assert.equal(decodeSnapshotData(encodeSnapshotData({ peerUrls: new Map(), stateMachine: sm })).removedIds, null);
    // A hand-made envelope with a malformed list is refused, never half-trusted.
    const meta = new TextEncoder().encode(JSON.stringify({ peers: {}, removed: ['x'] }));
    const bad = new Uint8Array(8 + meta.length);
    bad.set([0x52, 0x4b, 0x4e, 0x31]);
    new DataView(bad.buffer).setUint32(4, meta.length, true);
    bad.set(meta, 8);
    assert.throws(() => decodeSnapshotData(bad), /malformed removed-members/);
  });
});
