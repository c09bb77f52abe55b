/**
 * Learners and single-server membership changes, through proposeConfChange / applyConfChange.
 */
import assert from 'node:assert/strict';
import { ProposalDroppedError } from '../../src/raft/index.js';
import { ConfChangeType, EntryType, MessageType, Role, type NodeId } from '../../src/raft/types.js';
import { Cluster, TestNode, bytes, confChange, msg, reportSeedOnFailure, TEST_SEED } from './harness.js';

const ELECTION = 10;
const sorted = (ids: NodeId[]): NodeId[] => [...ids].sort((a, b) => a - b);

function assertDropped(fn: () => void, reason: ProposalDroppedError['reason']): void {
  assert.throws(fn, (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason, `expected ProposalDroppedError(${reason})`);
}

describe('Learners', function () {
  afterEach(reportSeedOnFailure);

  it('receive and apply the log', function () {
    const c = new Cluster([1, 2, 3], { learners: [4], electionTick: ELECTION });
    c.elect(1);
    c.propose(1, 'a');
    c.propose(1, 'b');
    assert.deepEqual(c.get(4).appliedData(), ['a', 'b']);
    const pr = c.get(1).status.progress;
    assert.ok(pr !== null);
    assert.equal(pr[4]!.isLearner, true);
    assert.equal(pr[4]!.match, c.get(1).status.lastIndex);
    assert.deepEqual(c.get(4).status.config, { voters: [1, 2, 3], learners: [4] });
  });

  it('never campaign, even after many election timeouts or when asked to', function () {
    const c = new Cluster([1, 2, 3], { learners: [4], electionTick: ELECTION });
    c.tick(5 * ELECTION, [4]);
    c.get(4).node.campaign();
    c.stabilize();
    assert.equal(c.get(4).role, Role.Follower);
    assert.equal(c.get(4).term, 0);
    assert.equal(c.sent.filter((m) => m.from === 4).length, 0, 'a learner sends nothing on its own');
  });

  it("a candidate does not count a learner's vote", function () {
    const tn = new TestNode(1, { voters: [1, 2], learners: [3], electionTick: ELECTION });
    tn.node.campaign();
    const votes = tn.drain().filter((m) => m.type === MessageType.Vote);
    assert.deepEqual(votes.map((m) => m.to), [2], 'vote requests go to voters only');
    tn.step(msg({ type: MessageType.VoteResp, from: 3, to: 1, term: 1 }));
    tn.drain();
    assert.equal(tn.role, Role.Candidate, 'a learner grant is not a quorum');
    tn.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
    tn.drain();
    assert.equal(tn.role, Role.Leader);
  });

  it('are never counted in the commit quorum', function () {
    // Two learners: counted as voters they would make leader + 4 + 5 a majority of five.
    const c = new Cluster([1, 2, 3], { learners: [4, 5], electionTick: ELECTION });
    c.elect(1);
    const commit = c.get(1).status.commit;
    const heal2 = c.isolate(2);
    const heal3 = c.isolate(3);
    c.propose(1, 'x');
    const st = c.get(1).status;
    assert.equal(st.progress![4]!.match, st.lastIndex, 'learner 4 acknowledged');
    assert.equal(st.progress![5]!.match, st.lastIndex, 'learner 5 acknowledged');
    assert.equal(st.commit, commit, 'leader + learners is not a majority of 3 voters');
    assert.deepEqual(c.get(4).appliedData(), []);
    heal2();
    heal3();
    c.tick(3);
    assert.ok(c.get(1).status.commit > commit);
    assert.deepEqual(c.get(4).appliedData(), ['x']);
  });

  it('promoting a learner makes it a voter that counts in quorums and can lead', function () {
    const c = new Cluster([1, 2, 3], { learners: [4], electionTick: ELECTION });
    c.elect(1);
    c.proposeConfChange(1, confChange(ConfChangeType.PromoteLearner, 4));
    for (const id of [1, 2, 3, 4]) {
      assert.deepEqual(sorted(c.get(id).status.config.voters), [1, 2, 3, 4], `node ${id} voters`);
      assert.deepEqual(c.get(id).status.config.learners, [], `node ${id} learners`);
    }
    assert.equal(c.get(1).status.progress![4]!.isLearner, false);
    // Quorum is now 3 of 4: leader + 4 alone cannot commit.
    const commit = c.get(1).status.commit;
    const heal2 = c.isolate(2);
    const heal3 = c.isolate(3);
    c.propose(1, 'y');
    assert.equal(c.get(1).status.commit, commit, '2 of 4 is not a quorum');
    heal2();
    c.tick(2);
    assert.ok(c.get(1).status.commit > commit, '1, 2 and 4 are a quorum of 4');
    heal3();
    c.tick(2);
    c.elect(4);
    assert.equal(c.leaders().length, 1);
  });
});

describe('Membership changes', function () {
  afterEach(reportSeedOnFailure);

  const bootstrapped = (ids: NodeId[]): Cluster => new Cluster(ids, { bootstrap: true, electionTick: ELECTION });

  it('bootstrap commits the initial configuration and a leader can be elected', function () {
    const c = bootstrapped([1, 2, 3]);
    c.stabilize();
    for (const id of [1, 2, 3]) {
      const tn = c.get(id);
      assert.deepEqual(sorted(tn.status.config.voters), [1, 2, 3], `node ${id}`);
      assert.ok(tn.applied.every((e) => e.type === EntryType.ConfChange), 'bootstrap entries are conf changes');
    }
    c.elect(1);
    c.propose(1, 'a');
    for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).appliedData(), ['a']);
  });

  it('add a voter: the new node catches up from the log and counts in the quorum', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    c.propose(1, 'before');
    c.add(new TestNode(4, { voters: [], electionTick: ELECTION }));
    c.proposeConfChange(1, confChange(ConfChangeType.AddVoter, 4, bytes('peer-url-4')));
    c.tick(2);
    for (const id of [1, 2, 3, 4]) assert.deepEqual(sorted(c.get(id).status.config.voters), [1, 2, 3, 4], `node ${id} voters`);
    c.assertLogsEqual([1, 2, 3, 4]);
    assert.deepEqual(c.get(4).appliedData(), ['before']);
    // 3 of 4 needed now.
    const commit = c.get(1).status.commit;
    const heal3 = c.isolate(3);
    const heal4 = c.isolate(4);
    c.propose(1, 'after');
    assert.equal(c.get(1).status.commit, commit, '2 of 4 voters cannot commit');
    heal4();
    c.tick(2);
    assert.ok(c.get(1).status.commit > commit);
    heal3();
    c.tick(2);
    c.assertLogsEqual([1, 2, 3, 4]);
  });

  it('remove a voter: the remaining two commit on their own', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    c.proposeConfChange(1, confChange(ConfChangeType.RemoveNode, 3));
    for (const id of [1, 2]) assert.deepEqual(sorted(c.get(id).status.config.voters), [1, 2], `node ${id}`);
    assert.equal(c.get(1).status.progress![3], undefined, 'no progress for a removed node');
    c.stop(3);
    c.propose(1, 'two');
    assert.deepEqual(c.get(2).appliedData(), ['two']);
  });

  it('removing the leader: it steps down cleanly and the rest elect a new leader', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    c.propose(1, 'a');
    c.proposeConfChange(1, confChange(ConfChangeType.RemoveNode, 1));
    const old = c.get(1);
    assert.deepEqual(sorted(old.status.config.voters), [2, 3]);
    assert.notEqual(old.role, Role.Leader, 'a removed leader steps down');
    const termBefore = old.term;
    // The removed node keeps running but must not disrupt the others.
    const leader = c.tickUntilLeader([2, 3], 10 * ELECTION);
    c.propose(leader.id, 'b');
    for (const id of [2, 3]) {
      assert.deepEqual(sorted(c.get(id).status.config.voters), [2, 3], `node ${id} voters`);
      assert.deepEqual(c.get(id).appliedData(), ['a', 'b'], `node ${id} applied`);
    }
    c.tick(5 * ELECTION);
    assert.notEqual(c.get(1).role, Role.Leader);
    assert.notEqual(c.get(1).role, Role.Candidate, 'a removed node does not campaign');
    assert.equal(c.leaders().length, 1);
    assert.ok(old.term >= termBefore);
  });

  it('only one conf change may be pending at a time', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    const leader = c.get(1).node;
    leader.proposeConfChange(confChange(ConfChangeType.AddLearner, 4));
    assertDropped(() => leader.proposeConfChange(confChange(ConfChangeType.AddLearner, 5)), 'conf-change-pending');
    c.stabilize();
    assert.deepEqual(c.get(1).status.config.learners, [4]);
    leader.proposeConfChange(confChange(ConfChangeType.AddLearner, 5));
    c.stabilize();
    assert.deepEqual(sorted(c.get(1).status.config.learners), [4, 5]);
  });

  it('a conf change takes effect when applied, not when committed', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    const lead = c.get(1);
    lead.deferConfChanges = true;
    c.proposeConfChange(1, confChange(ConfChangeType.AddVoter, 4));
    const ccEntry = lead.applied[lead.applied.length - 1]!;
    assert.equal(ccEntry.type, EntryType.ConfChange);
    assert.ok(lead.status.commit >= ccEntry.index, 'the change is committed');
    assert.deepEqual(sorted(lead.status.config.voters), [1, 2, 3], 'but not in effect before applyConfChange');
    assert.equal(lead.status.progress![4], undefined);
    lead.applyPendingConfChanges();
    assert.deepEqual(sorted(lead.status.config.voters), [1, 2, 3, 4]);
    assert.notEqual(lead.status.progress![4], undefined, 'progress for the new voter');
    assert.deepEqual(sorted(c.get(2).status.config.voters), [1, 2, 3, 4], 'followers applied it too');
  });

  it('a conf change proposed on a follower is forwarded and applied everywhere', function () {
    const c = bootstrapped([1, 2, 3]);
    c.elect(1);
    c.proposeConfChange(2, confChange(ConfChangeType.AddLearner, 4));
    for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).status.config.learners, [4], `node ${id} (seed ${TEST_SEED})`);
  });
});
