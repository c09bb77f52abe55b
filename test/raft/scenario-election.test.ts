/**
 * Election scenarios beyond the paper: PreVote (thesis §9.6) and CheckQuorum (thesis §6.2),
 * driven through the public RawNode API on the in-memory cluster harness.
 */
import assert from 'node:assert/strict';
import { MessageType, Role, NONE, type Message, type NodeId } from '../../src/raft/types.js';
import { Cluster, TestNode, ent, msg, newStorage, reportSeedOnFailure, TEST_SEED } from './harness.js';

const ELECTION = 10;
const from = (c: Cluster, mark: number, pred: (m: Message) => boolean): Message[] => c.sent.slice(mark).filter(pred);

describe('PreVote', function () {
  afterEach(reportSeedOnFailure);

  it('a partitioned node rejoining with a stale log does not disrupt the leader', function () {
    const c = new Cluster([1, 2, 3], { preVote: true, electionTick: ELECTION });
    c.elect(1);
    assert.equal(c.get(1).term, 1);
    const rejoin = c.isolate(3);
    c.propose(1, 'a');
    c.propose(1, 'b');
    c.tick(5 * ELECTION);
    assert.equal(c.get(3).term, 1, 'pre-candidate must not bump its term while partitioned');
    rejoin();
    c.tick(5 * ELECTION);
    for (const id of [1, 2, 3]) assert.equal(c.get(id).term, 1, `node ${id} term (seed ${TEST_SEED})`);
    assert.equal(c.get(1).role, Role.Leader);
    assert.equal(c.get(3).status.leader, 1);
    c.assertLogsEqual([1, 2, 3]);
  });

  it('with PreVote and CheckQuorum, a rejoining node with an up-to-date log does not disrupt either', function () {
    const c = new Cluster([1, 2, 3], { preVote: true, checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    const rejoin = c.isolate(3);
    c.tick(5 * ELECTION);
    assert.equal(c.get(3).term, 1);
    rejoin();
    c.tick(5 * ELECTION);
    for (const id of [1, 2, 3]) assert.equal(c.get(id).term, 1, `node ${id} term`);
    assert.equal(c.get(1).role, Role.Leader);
  });

  it('pre-vote does not bump terms: PreVote carries term+1, neither sender nor receivers adopt it', function () {
    const c = new Cluster([1, 2, 3], { preVote: true, electionTick: ELECTION });
    c.elect(1);
    c.isolate(3);
    const mark = c.sent.length;
    c.tick(4 * ELECTION, [3]);
    const preVotes = from(c, mark, (m) => m.from === 3 && m.type === MessageType.PreVote);
    assert.ok(preVotes.length >= 2, 'the isolated node pre-campaigned');
    for (const m of preVotes) assert.equal(m.term, 2, 'PreVote carries the term it would campaign in');
    assert.equal(from(c, mark, (m) => m.from === 3 && m.type === MessageType.Vote).length, 0, 'no real election without a pre-vote quorum');
    const st = c.get(3).status;
    assert.equal(st.term, 1);
    assert.equal(st.role, Role.PreCandidate);
    assert.equal(c.get(3).storage.initialState().hardState.term, 1, 'durable term unchanged');

    // A receiver that rejects a higher-term PreVote keeps its term (and its leader).
    const n2 = c.get(2);
    n2.step(msg({ type: MessageType.PreVote, from: 3, to: 2, term: 5, logTerm: 0, index: 0 }));
    const out = n2.drain();
    const resp = out.filter((m) => m.type === MessageType.PreVoteResp);
    assert.equal(resp.length, 1);
    assert.equal(resp[0]!.reject, true, 'stale log: rejected');
    assert.equal(n2.term, 1);
    assert.equal(n2.status.leader, 1);
  });

  describe('grant and reject rules', function () {
    const log = [ent(1, 1), ent(2, 1)];
    const fresh = (hs = { term: 1, vote: NONE, commit: 0 }): TestNode =>
      new TestNode(1, { voters: [1, 2, 3], preVote: true, electionTick: ELECTION, storage: newStorage({ voters: [1, 2, 3], entries: log, hardState: hs }) });
    const preVote = (tn: TestNode, m: Partial<Message>): Message => {
      tn.step(msg({ type: MessageType.PreVote, from: 2, to: 1, ...m }));
      const out = tn.drain().filter((x) => x.type === MessageType.PreVoteResp);
      assert.equal(out.length, 1, 'exactly one PreVoteResp');
      return out[0]!;
    };

    it('grants an up-to-date candidate for a higher term without changing term or vote', function () {
      const tn = fresh();
      const resp = preVote(tn, { term: 2, logTerm: 1, index: 2 });
      assert.equal(resp.reject, false);
      assert.equal(resp.term, 2, 'a grant carries the pre-vote term');
      assert.equal(tn.term, 1);
      assert.equal(tn.status.vote, NONE);
      assert.deepEqual(tn.storage.initialState().hardState, { term: 1, vote: NONE, commit: 0 });
    });

    it('rejects a candidate whose log is behind', function () {
      const tn = fresh();
      assert.equal(preVote(tn, { term: 2, logTerm: 1, index: 1 }).reject, true);
      assert.equal(preVote(tn, { term: 2, logTerm: 0, index: 5 }).reject, true);
      assert.equal(tn.term, 1);
    });

    it('grants a higher-term pre-vote even after voting for someone else in the current term', function () {
      const tn = fresh({ term: 2, vote: 3, commit: 0 });
      assert.equal(preVote(tn, { term: 3, logTerm: 1, index: 2 }).reject, false);
      assert.equal(tn.status.vote, 3, 'the real vote of term 2 stands');
      assert.equal(tn.term, 2);
    });

    it('rejects a pre-vote for a term not above its own', function () {
      const tn = fresh({ term: 3, vote: NONE, commit: 0 });
      assert.equal(preVote(tn, { term: 2, logTerm: 1, index: 2 }).reject, true);
      assert.equal(tn.term, 3);
    });

    it('a pre-candidate becomes candidate (term+1) on a pre-vote quorum and falls back on a rejection quorum', function () {
      const won = fresh();
      won.node.campaign();
      const pv = won.drain().filter((m) => m.type === MessageType.PreVote);
      assert.deepEqual(pv.map((m) => [m.to, m.term, m.index, m.logTerm]), [[2, 2, 2, 1], [3, 2, 2, 1]]);
      assert.equal(won.role, Role.PreCandidate);
      assert.equal(won.term, 1, 'pre-campaign does not increment the term');
      won.step(msg({ type: MessageType.PreVoteResp, from: 2, to: 1, term: 2 }));
      const votes = won.drain().filter((m) => m.type === MessageType.Vote);
      assert.equal(won.role, Role.Candidate);
      assert.equal(won.term, 2);
      assert.deepEqual(votes.map((m) => [m.to, m.term]), [[2, 2], [3, 2]]);

      const lost = fresh();
      lost.node.campaign();
      lost.drain();
      lost.step(msg({ type: MessageType.PreVoteResp, from: 2, to: 1, term: 1, reject: true }));
      lost.step(msg({ type: MessageType.PreVoteResp, from: 3, to: 1, term: 1, reject: true }));
      lost.drain();
      assert.equal(lost.role, Role.Follower);
      assert.equal(lost.term, 1);
    });
  });
});

describe('CheckQuorum', function () {
  afterEach(reportSeedOnFailure);

  it('an isolated leader steps down after an election timeout; the rest elect a new leader', function () {
    const c = new Cluster([1, 2, 3], { checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    c.tick(1);
    const rejoin = c.isolate(1);
    let ticks = 0;
    while (c.get(1).role === Role.Leader) {
      c.tick(1, [1]);
      ticks++;
      assert.ok(ticks <= 2 * ELECTION + 1, `isolated leader still leads after ${ticks} ticks (seed ${TEST_SEED})`);
    }
    assert.equal(c.get(1).role, Role.Follower);
    assert.equal(c.get(1).status.leader, NONE);
    assert.equal(c.get(1).term, 1, 'stepping down does not change the term');
    const leader = c.tickUntilLeader([2, 3], 10 * ELECTION);
    assert.ok(leader.term > 1);
    rejoin();
    c.tick(3);
    assert.equal(c.get(1).status.leader, leader.id, 'old leader follows the new one after healing');
    assert.equal(c.leaders().length, 1);
  });

  it('an isolated leader steps down electionTimeout ticks after the newest send a quorum acknowledged, even while transfers reset its timers', function () {
    // Followers vote again electionTimeout ticks after they last heard from the leader; a
    // leader that stayed longer could serve lease reads beside a new leader. Restarting
    // transfers (each resets electionElapsed) must not postpone the check either.
    const c = new Cluster([1, 2, 3], { checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    c.tick(1); // heartbeat round acknowledged by both followers
    c.isolate(1);
    const lead = c.get(1);
    for (let t = 1; t < ELECTION; t++) {
      lead.node.transferLeader(t % 2 === 0 ? 2 : 3);
      c.tick(1, [1]);
      assert.equal(lead.role, Role.Leader, `still leader ${t} ticks after the last acknowledged send`);
    }
    lead.node.transferLeader(2);
    c.tick(1, [1]);
    assert.equal(lead.role, Role.Follower, `stepped down ${ELECTION} ticks after the last acknowledged send`);
    assert.equal(lead.term, 1);
  });

  it('a leader hearing from a quorum stays leader across many election timeouts', function () {
    const c = new Cluster([1, 2, 3], { checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    c.isolate(3);
    c.tick(10 * ELECTION);
    assert.equal(c.get(1).role, Role.Leader);
    assert.equal(c.get(1).term, 1);
  });

  it('followers with a live leader ignore votes from a disruptive node', function () {
    const c = new Cluster([1, 2, 3], { checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    c.tick(1);
    const mark = c.sent.length;
    c.get(3).node.campaign();
    c.processReadies();
    const votes = from(c, mark, (m) => m.type === MessageType.Vote);
    assert.deepEqual(votes.map((m) => [m.to, m.term]), [[1, 2], [2, 2]]);
    c.deliverQueued();
    c.processReadies();
    assert.deepEqual(from(c, mark, (m) => m.type === MessageType.VoteResp), [], 'in-lease nodes do not answer');
    assert.equal(c.get(1).role, Role.Leader);
    assert.equal(c.get(1).term, 1);
    assert.equal(c.get(2).term, 1);
    assert.equal(c.get(2).status.vote, 1);
    assert.equal(c.get(2).status.leader, 1);
    // Liveness: the cluster converges on one leader in one term afterwards.
    c.tick(6 * ELECTION);
    const leaders = c.leaders();
    assert.equal(leaders.length, 1, `one leader (seed ${TEST_SEED})`);
    for (const id of [1, 2, 3] as NodeId[]) assert.equal(c.get(id).term, leaders[0]!.term);
  });

  it('without a live leader, followers grant votes again (after an election timeout)', function () {
    const c = new Cluster([1, 2, 3], { checkQuorum: true, electionTick: ELECTION });
    c.elect(1);
    c.stop(1);
    // Both followers are in the lease at first; once it expires they vote again and one wins.
    const leader = c.tickUntilLeader([2, 3], 4 * ELECTION);
    assert.ok(leader.term >= 2);
  });
});
