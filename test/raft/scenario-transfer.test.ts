/**
 * Leadership transfer (thesis §3.10): the transferee is caught up first, then told to campaign
 * at once with MsgTimeoutNow; invalid targets are ignored; proposals are refused while a
 * transfer is in flight; a transfer that does not finish within an election timeout aborts.
 */
import assert from 'node:assert/strict';
import { ProposalDroppedError } from '../../src/raft/index.js';
import { MessageType, Role, NONE } from '../../src/raft/types.js';
import { Cluster, bytes, reportSeedOnFailure } from './harness.js';

const ELECTION = 10;

describe('Leadership transfer', function () {
  afterEach(reportSeedOnFailure);

  it('to an up-to-date follower: TimeoutNow at once, the follower wins the next term', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    c.propose(1, 'a');
    const mark = c.sent.length;
    c.get(1).node.transferLeader(2);
    c.stabilize();
    const timeoutNow = c.sent.slice(mark).filter((m) => m.type === MessageType.TimeoutNow);
    assert.deepEqual(timeoutNow.map((m) => [m.from, m.to, m.term]), [[1, 2, 1]]);
    assert.equal(c.get(2).role, Role.Leader);
    assert.equal(c.get(2).term, 2);
    assert.equal(c.get(1).role, Role.Follower);
    assert.equal(c.get(1).status.leader, 2);
    assert.equal(c.get(1).status.leadTransferee, NONE);
    c.propose(2, 'b');
    for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).appliedData(), ['a', 'b']);
  });

  it('to a lagging follower: it is caught up first, then receives TimeoutNow', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    const rejoin = c.isolate(3);
    for (let i = 0; i < 5; i++) c.propose(1, `e${i}`);
    rejoin();
    const lastIndex = c.get(1).status.lastIndex;
    const mark = c.sent.length;
    c.get(1).node.transferLeader(3);
    assert.equal(c.get(1).status.leadTransferee, 3);
    c.stabilize();
    const after = c.sent.slice(mark);
    const tn = after.findIndex((m) => m.type === MessageType.TimeoutNow);
    assert.ok(tn >= 0, 'TimeoutNow was sent');
    assert.equal(after[tn]!.to, 3);
    const caughtUp = after.findIndex((m) => m.type === MessageType.AppResp && m.from === 3 && !m.reject && m.index >= lastIndex);
    assert.ok(caughtUp >= 0 && caughtUp < tn, 'TimeoutNow only after node 3 acknowledged the whole log');
    assert.ok(after.slice(0, tn).some((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0), 'the leader sent the missing entries');
    assert.equal(c.get(3).role, Role.Leader);
    assert.deepEqual(c.get(3).appliedData(), ['e0', 'e1', 'e2', 'e3', 'e4']);
  });

  for (const [what, target] of [['itself', 1], ['a learner', 4], ['an unknown node', 9]] as const) {
    it(`a transfer to ${what} is ignored`, function () {
      const c = new Cluster([1, 2, 3], { learners: [4], electionTick: ELECTION });
      c.elect(1);
      const mark = c.sent.length;
      c.get(1).node.transferLeader(target);
      c.stabilize();
      assert.equal(c.get(1).status.leadTransferee, NONE);
      assert.equal(c.sent.slice(mark).filter((m) => m.type === MessageType.TimeoutNow).length, 0);
      assert.equal(c.get(1).role, Role.Leader);
      assert.equal(c.get(1).term, 1);
      c.propose(1, 'still accepting');
      assert.deepEqual(c.get(2).appliedData(), ['still accepting']);
    });
  }

  it('proposals are dropped while a transfer is in progress, and accepted after it aborts on election timeout', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    c.isolate(3);
    c.propose(1, 'a');
    c.get(1).node.transferLeader(3);
    c.stabilize();
    assert.equal(c.get(1).status.leadTransferee, 3);
    assert.throws(
      () => c.get(1).node.propose(bytes('during transfer')),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'transferring-leader',
    );
    let ticks = 0;
    while (c.get(1).status.leadTransferee !== NONE) {
      c.tick(1, [1, 2]);
      ticks++;
      assert.ok(ticks <= ELECTION, `transfer not aborted after ${ticks} ticks`);
    }
    assert.equal(c.get(1).role, Role.Leader);
    assert.equal(c.get(1).term, 1);
    c.propose(1, 'after abort');
    assert.deepEqual(c.get(2).appliedData(), ['a', 'after abort']);
  });

  it('transferLeader on a follower is forwarded to the leader', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    const mark = c.sent.length;
    c.get(2).node.transferLeader(2);
    c.stabilize();
    assert.ok(c.sent.slice(mark).some((m) => m.type === MessageType.TransferLeader && m.from === 2 && m.to === 1));
    assert.equal(c.get(2).role, Role.Leader);
  });

  it('a transfer to a new target replaces one in progress', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    c.isolate(3);
    c.propose(1, 'a');
    c.get(1).node.transferLeader(3);
    c.stabilize();
    assert.equal(c.get(1).status.leadTransferee, 3);
    c.get(1).node.transferLeader(2);
    c.stabilize();
    assert.equal(c.get(2).role, Role.Leader, 'the later target wins');
    assert.equal(c.get(1).status.leadTransferee, NONE);
  });
});
