/**
 * The Ready contract: which messages may leave before the Ready is persisted (parallelMessages,
 * leader only), which must wait for the entries / hard state they depend on (messages), and
 * when a write must be synced (mustSync). The harness (TestNode.handleReady) also asserts these
 * rules on every Ready of every other scenario; these tests pin them down explicitly.
 */
import assert from 'node:assert/strict';
import { MessageType, Role, type Message } from '../../src/raft/types.js';
import { Cluster, TestNode, acceptAll, bytes, ent, makeLeader, msg, reportSeedOnFailure, TEST_SEED } from './harness.js';

const ELECTION = 10;
const types = (ms: Message[]): string[] => ms.map((m) => MessageType[m.type]!);

function follower(): TestNode {
  const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
  tn.step(msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1 }));
  tn.drain();
  return tn;
}

describe('Ready ordering', function () {
  afterEach(reportSeedOnFailure);

  it('a granted vote leaves in the same Ready as the hard state recording it, never in parallel', function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    tn.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 1 }));
    const rd = tn.node.ready();
    assert.deepEqual(rd.hardState, { term: 1, vote: 2, commit: 0 });
    assert.equal(rd.mustSync, true);
    assert.deepEqual(types(rd.messages), ['VoteResp']);
    assert.equal(rd.messages[0]!.reject, false);
    assert.deepEqual(rd.parallelMessages, []);
  });

  it("a candidate's vote requests wait for its own term and vote to be persisted", function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    tn.node.campaign();
    const rd = tn.node.ready();
    assert.deepEqual(rd.hardState, { term: 1, vote: 1, commit: 0 });
    assert.equal(rd.mustSync, true);
    assert.deepEqual(types(rd.messages), ['Vote', 'Vote']);
    assert.deepEqual(rd.parallelMessages, []);
  });

  it('an append acknowledgement leaves with the entries it acknowledges', function () {
    const tn = follower();
    tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: [ent(1, 1, 'a'), ent(2, 1, 'b')] }));
    const rd = tn.node.ready();
    assert.deepEqual(rd.entries.map((e) => e.index), [1, 2]);
    assert.equal(rd.mustSync, true);
    const acks = rd.messages.filter((m) => m.type === MessageType.AppResp);
    assert.deepEqual(acks.map((m) => [m.to, m.index, m.reject]), [[2, 2, false]]);
    assert.deepEqual(rd.parallelMessages, [], 'a follower never sends in parallel');
  });

  it("a leader's appends and heartbeats may go out in parallel with its own write", function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    acceptAll(tn, makeLeader(tn, [2])); // followers in replicate state
    tn.drain();
    tn.node.propose(bytes('x'));
    const rd = tn.node.ready();
    assert.equal(rd.entries.length, 1);
    const apps = rd.parallelMessages.filter((m) => m.type === MessageType.App);
    assert.ok(apps.length >= 1, `App in parallelMessages (got parallel=${types(rd.parallelMessages)}, messages=${types(rd.messages)})`);
    assert.ok(!rd.messages.some((m) => m.type === MessageType.App && m.term === tn.term && m.from === 1 && apps.some((a) => a.to === m.to)),
      'the same App is not also in messages');
  });

  it('a leader that steps down before ready() emits no parallel messages', function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    acceptAll(tn, makeLeader(tn, [2]));
    tn.drain();
    tn.node.propose(bytes('x')); // queues Apps of term 1
    tn.tick(); // and heartbeats
    tn.step(msg({ type: MessageType.Heartbeat, from: 3, to: 1, term: 5 }));
    assert.equal(tn.role, Role.Follower);
    const rd = tn.node.ready();
    assert.deepEqual(rd.parallelMessages, [], 'not the leader any more: nothing may bypass persistence');
  });

  it('the contract holds on every Ready through elections, partitions, catch-up and snapshots (harness-checked)', function () {
    const c = new Cluster([1, 2, 3, 4, 5], { electionTick: ELECTION, preVote: true, checkQuorum: true });
    c.autoReportSnapshot = true;
    c.elect(1);
    let step = 0;
    const plan: Array<() => void> = [
      () => c.propose(c.leaders()[0]!.id, `p${step}`),
      () => { const undo = c.partition([1, 2], [3, 4, 5]); c.tick(3 * ELECTION); undo(); },
      () => c.tick(2 * ELECTION),
      () => { const l = c.leaders()[0]; if (l) c.compact(l.id); },
      () => { const undo = c.isolate(c.leaders()[0]?.id ?? 1); c.tick(3 * ELECTION); undo(); },
    ];
    for (step = 0; step < 25; step++) {
      if (c.leaders().length === 0) c.tickUntilLeader([1, 2, 3, 4, 5], 20 * ELECTION);
      plan[step % plan.length]!();
      // With preVote + checkQuorum, messages from the past never leave two leaders in one term.
      const terms = c.leaders().map((l) => l.term);
      assert.equal(new Set(terms).size, terms.length, `two leaders in one term (seed ${TEST_SEED})`);
    }
    c.tick(3 * ELECTION);
    c.propose(c.tickUntilLeader([1, 2, 3, 4, 5]).id, 'final');
    c.tick(5);
    // State machine safety: the same entry at every index two nodes both applied (a node
    // restored from a snapshot skips a prefix).
    const byIndex = new Map(c.get(1).applied.map((e) => [e.index, e.term]));
    for (const id of [2, 3, 4, 5]) {
      for (const e of c.get(id).applied) {
        const t = byIndex.get(e.index);
        if (t !== undefined) assert.equal(e.term, t, `node ${id} applied ${e.index}@${e.term}, node 1 applied term ${t}`);
      }
    }
    assert.ok(c.get(1).appliedData().includes('final'));
  });
});

describe('mustSync', function () {
  afterEach(reportSeedOnFailure);

  it('is false when only the commit index changes', function () {
    const tn = follower();
    tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: [ent(1, 1, 'a')] }));
    tn.drain();
    tn.step(msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1, commit: 1 }));
    const rd = tn.node.ready();
    assert.deepEqual(rd.hardState, { term: 1, vote: 0, commit: 1 });
    assert.equal(rd.entries.length, 0);
    assert.equal(rd.mustSync, false);
  });

  it('is true when entries are appended', function () {
    const tn = follower();
    tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: [ent(1, 1, 'a')] }));
    assert.equal(tn.node.ready().mustSync, true);
  });

  it('is true when the term changes', function () {
    const tn = follower();
    tn.step(msg({ type: MessageType.Heartbeat, from: 3, to: 1, term: 2 }));
    const rd = tn.node.ready();
    assert.equal(rd.hardState?.term, 2);
    assert.equal(rd.mustSync, true);
  });

  it('is true when the vote changes', function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    tn.step(msg({ type: MessageType.Vote, from: 3, to: 1, term: 1 }));
    assert.equal(tn.node.ready().mustSync, true);
  });

  it('nothing changed: no Ready at all', function () {
    const tn = follower();
    assert.equal(tn.node.hasReady(), false);
  });
});
