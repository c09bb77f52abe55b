/**
 * Linearizable reads (thesis §6.4): ReadIndex confirmed by a heartbeat quorum ('safe'), forwarded
 * from followers, held back until the leader has committed an entry of its term, and the
 * lease-based variant that needs CheckQuorum.
 */
import assert from 'node:assert/strict';
import { ConfigError, ProposalDroppedError } from '../../src/raft/index.js';
import { MessageType, Role, type Message, type NodeId } from '../../src/raft/types.js';
import { Cluster, TestNode, bytes, reportSeedOnFailure, text, TEST_SEED } from './harness.js';

const ELECTION = 10;
const reads = (tn: TestNode): Array<[number, string]> => tn.readStates.map((r) => [r.index, text(r.context)]);

/** Starts a read on the leader; returns the heartbeats of its round (the leader's Ready is taken). */
function startRead(lead: TestNode, ctx: string): Message[] {
  lead.node.readIndex(bytes(ctx));
  return lead.drain().filter((m) => m.type === MessageType.Heartbeat);
}

/** Delivers one heartbeat to its follower and the answers back, then takes the leader's Ready
 * (which records its read states). */
function deliverBeat(c: Cluster, lead: TestNode, beat: Message): void {
  const follower = c.get(beat.to);
  follower.step(beat);
  for (const m of follower.drain()) lead.step(m);
  lead.drain();
}

describe('ReadIndex', function () {
  afterEach(reportSeedOnFailure);

  it('safe: the leader reports a read state only after a heartbeat quorum confirms it still leads (fanout all, as etcd)', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, readIndexFanout: 'all' });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    const commit = lead.status.commit;
    lead.node.readIndex(bytes('ctx1'));
    const out = lead.drain();
    assert.deepEqual(reads(lead), [], 'no read state before confirmation');
    const beats = out.filter((m) => m.type === MessageType.Heartbeat);
    assert.deepEqual(beats.map((m) => [m.to, text(m.context)]), [[2, 'ctx1'], [3, 'ctx1']], 'heartbeats carry the read context');
    // Node 2 answers; with the leader that is a quorum of 3.
    const n2 = c.get(2);
    n2.step(beats[0]!);
    const resp = n2.drain().filter((m) => m.type === MessageType.HeartbeatResp);
    assert.deepEqual(resp.map((m) => text(m.context)), ['ctx1']);
    lead.step(resp[0]!);
    lead.drain();
    assert.deepEqual(reads(lead), [[commit, 'ctx1']]);
  });

  it('safe: heartbeat responses without the context (or from too few nodes) do not confirm it', function () {
    const c = new Cluster([1, 2, 3, 4, 5], { electionTick: ELECTION, readIndexFanout: 'all' });
    c.elect(1);
    const lead = c.get(1);
    lead.node.readIndex(bytes('ctx'));
    const beats = lead.drain().filter((m) => m.type === MessageType.Heartbeat);
    assert.equal(beats.length, 4);
    const n2 = c.get(2);
    n2.step(beats.find((m) => m.to === 2)!);
    for (const m of n2.drain()) lead.step(m);
    lead.drain();
    assert.deepEqual(reads(lead), [], 'leader + 1 of 5 is not a quorum');
    const n3 = c.get(3);
    n3.step(beats.find((m) => m.to === 3)!);
    for (const m of n3.drain()) lead.step(m);
    lead.drain();
    assert.equal(lead.readStates.length, 1, 'leader + 2 of 5 is a quorum');
  });

  it('safe, fanout quorum (default): the round asks one follower of three; its ack serves the read', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    const commit = lead.status.commit;
    const beats = startRead(lead, 'q1');
    assert.deepEqual(beats.map((m) => [m.to, text(m.context)]), [[2, 'q1']], 'ties go to the lower id');
    deliverBeat(c, lead, beats[0]!);
    assert.deepEqual(reads(lead), [[commit, 'q1']]);
  });

  it('safe, fanout quorum: five voters, two followers asked; both acks needed', function () {
    const c = new Cluster([1, 2, 3, 4, 5], { electionTick: ELECTION });
    c.elect(1);
    const lead = c.get(1);
    const beats = startRead(lead, 'q5');
    assert.deepEqual(beats.map((m) => m.to), [2, 3]);
    deliverBeat(c, lead, beats[0]!);
    assert.deepEqual(reads(lead), [], 'leader + 1 of 5 is not a quorum');
    deliverBeat(c, lead, beats[1]!);
    assert.equal(lead.readStates.length, 1, 'leader + 2 of 5 is a quorum');
  });

  it('safe, fanout quorum: an unanswered round is completed by the next heartbeat broadcast; two such rounds in a row move the preference', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, heartbeatTick: 1 });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    const commit = lead.status.commit;
    const heal = c.isolate(2); // node 2 is asked first (lower id) but never answers
    const roundTargets = (ctx: string): Array<[NodeId, string]> => {
      const mark = c.sent.length;
      lead.node.readIndex(bytes(ctx));
      c.stabilize();
      return c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat).map((m) => [m.to, text(m.context)]);
    };
    assert.deepEqual(roundTargets('r1'), [[2, 'r1']]);
    assert.deepEqual(reads(lead), [], 'node 2 is cut off: no quorum yet');
    c.tick(1, [1]); // heartbeat broadcast carrying the newest pending context
    c.stabilize();
    assert.deepEqual(reads(lead), [[commit, 'r1']], 'node 3 acked the broadcast');
    assert.deepEqual(roundTargets('r2'), [[2, 'r2']], 'one rescue does not move the preference');
    c.tick(1, [1]);
    c.stabilize();
    assert.deepEqual(reads(lead).map((r) => r[1]), ['r1', 'r2'], 'node 3 rescued r2 too');
    heal();
    assert.deepEqual(roundTargets('r3'), [[3, 'r3']], 'two rescues in a row: node 3 is asked first');
    assert.deepEqual(reads(lead).map((r) => r[1]), ['r1', 'r2', 'r3']);
  });

  it('safe, fanout quorum: one late answer from the asked follower does not move reads to the other', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, heartbeatTick: 1 });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    lead.drain();
    const deliver = (beat: Message): void => deliverBeat(c, lead, beat);
    const asked = (ctx: string): Message[] => startRead(lead, ctx);
    const t1 = asked('t1');
    assert.deepEqual(t1.map((m) => m.to), [2]);
    lead.tick(1); // the broadcast carries t1 to both followers
    const broadcast = lead.drain().filter((m) => m.type === MessageType.Heartbeat && text(m.context) === 't1');
    deliver(broadcast.find((m) => m.to === 3)!); // node 3 answers first: it completes t1
    assert.equal(lead.readStates.length, 1);
    deliver(t1[0]!); // node 2's answer comes late
    const t2 = asked('t2');
    assert.deepEqual(t2.map((m) => m.to), [2], 'still node 2');
    deliver(t2[0]!); // node 2 answers its round: the count of rescues starts over
    assert.equal(lead.readStates.length, 2);
    asked('t3'); // node 2 is asked and does not answer in time
    lead.tick(1);
    deliver(lead.drain().find((m) => m.type === MessageType.Heartbeat && m.to === 3 && text(m.context) === 't3')!);
    assert.equal(lead.readStates.length, 3, 'node 3 rescued t3');
    assert.deepEqual(asked('t4').map((m) => m.to), [2], 'rescues were not in a row: still node 2');
  });

  it('safe, fanout quorum: a late ack (its round already complete) does not move the preference', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, heartbeatTick: 1 });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    lead.drain();
    const first = startRead(lead, 's1');
    assert.deepEqual(first.map((m) => m.to), [2]);
    lead.tick(1); // the broadcast carries s1 to both followers
    const broadcast = lead.drain().filter((m) => m.type === MessageType.Heartbeat && text(m.context) === 's1');
    assert.deepEqual(broadcast.map((m) => m.to), [2, 3]);
    deliverBeat(c, lead, first[0]!);
    const asked = (ctx: string): NodeId[] => startRead(lead, ctx).map((m) => m.to);
    assert.deepEqual(asked('s2'), [2], 'node 2 completed s1');
    deliverBeat(c, lead, broadcast.find((m) => m.to === 3)!); // late for s1, while s2 is pending
    assert.equal(lead.readStates.length, 1);
    assert.deepEqual(asked('s3'), [2], 'the late ack earned node 3 nothing');
  });

  it('a follower forwards the request to the leader and gets the read state back', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    c.propose(1, 'a');
    const mark = c.sent.length;
    c.get(2).node.readIndex(bytes('from-2'));
    c.stabilize();
    const sent = c.sent.slice(mark);
    assert.ok(sent.some((m) => m.type === MessageType.ReadIndex && m.from === 2 && m.to === 1));
    assert.ok(sent.some((m) => m.type === MessageType.ReadIndexResp && m.from === 1 && m.to === 2));
    assert.deepEqual(reads(c.get(2)), [[c.get(1).status.commit, 'from-2']]);
    assert.deepEqual(reads(c.get(1)), [], 'the leader does not report a forwarded read as its own');
  });

  it('without a leader, readIndex is refused with no-leader', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    assert.throws(
      () => c.get(2).node.readIndex(bytes('x')),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'no-leader',
    );
  });

  it('a new leader does not serve reads before it has committed an entry of its own term', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    const blockAcks = c.addFilter((m) => m.type === MessageType.AppResp);
    c.campaign(1);
    const lead = c.get(1);
    assert.equal(lead.status.commit, 0, 'the no-op is not committed');
    lead.node.readIndex(bytes('early'));
    c.stabilize();
    c.tick(2, [1]);
    assert.deepEqual(reads(lead), [], 'no read state while no entry of the term is committed');
    blockAcks();
    for (let i = 0; i < 5 && lead.readStates.length === 0; i++) c.tick(1);
    assert.ok(lead.status.commit >= 1);
    assert.deepEqual(reads(lead), [[lead.status.commit, 'early']], 'the held read is served once the no-op commits');
  });

  it('lease-based: the leader answers at once, without a heartbeat round', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true, readOnlyOption: 'lease-based' });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    lead.node.readIndex(bytes('lease'));
    const out = lead.drain();
    assert.deepEqual(reads(lead), [[lead.status.commit, 'lease']]);
    assert.equal(out.filter((m) => m.type === MessageType.Heartbeat).length, 0, 'no quorum round needed');
    // A follower's forwarded read is answered from the lease as well.
    const mark = c.sent.length;
    c.get(3).node.readIndex(bytes('lease-3'));
    c.stabilize();
    assert.deepEqual(reads(c.get(3)), [[lead.status.commit, 'lease-3']]);
    assert.equal(c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat).length, 0);
  });

  it('safe: a deposed leader cut off in the minority never serves a read', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true });
    c.elect(1);
    c.propose(1, 'a');
    c.partition([1], [2, 3]);
    const nl = c.tickUntilLeader([2, 3], 5 * ELECTION);
    c.propose(nl.id, 'w');
    const old = c.get(1);
    if (old.role === Role.Leader) {
      old.node.readIndex(bytes('stale?'));
      c.tick(2 * ELECTION);
    }
    for (const rs of old.readStates) {
      assert.ok(rs.index >= nl.status.commit, `stale read at ${rs.index}; 'w' committed at ${nl.status.commit}`);
    }
  });

  it('lease-based: a leader cut off from the quorum never serves a read that misses a write committed by its successor', function () {
    // Linearizability of lease reads: once a new leader has committed a write, no read that is
    // requested afterwards may be served at an index before it. The old leader's lease must end
    // before the followers' lease (during which they refuse to vote) does, whatever the phase of
    // its CheckQuorum timer when the partition starts.
    for (let phase = 0; phase < ELECTION; phase++) {
      const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true, readOnlyOption: 'lease-based' });
      c.elect(1);
      c.propose(1, 'a');
      c.tick(phase);
      c.partition([1], [2, 3]);
      let ticks = 0;
      while (!c.leaders().some((l) => l.id !== 1)) {
        c.tick(1);
        assert.ok(++ticks <= 5 * ELECTION, `phase ${phase}: no new leader (seed ${TEST_SEED})`);
      }
      const nl = c.leaders().find((l) => l.id !== 1)!;
      c.propose(nl.id, 'w');
      const committedW = nl.status.commit;
      const old = c.get(1);
      if (old.role !== Role.Leader) continue;
      old.node.readIndex(bytes('lease-read'));
      old.drain();
      for (const rs of old.readStates) {
        assert.ok(rs.index >= committedW,
          `phase ${phase}: old leader (still leader ${ticks} ticks into the partition) served a lease read at index ` +
          `${rs.index}, but node ${nl.id} had already committed 'w' at ${committedW} (seed ${TEST_SEED})`);
      }
    }
  });

  it('lease-based: the lease lasts electionTimeout − 1 ticks from the newest send a quorum acknowledged; then a read takes a heartbeat round', function () {
    // A follower that got our message at send tick s may vote again at its electionTimeout-th
    // tick after receiving it, which (same tick rate, any phase) can come right after our tick
    // s + electionTimeout − 1. Lease reads end just before that; reads still work, safely.
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true, readOnlyOption: 'lease-based' });
    c.elect(1);
    c.propose(1, 'a');
    c.tick(1); // a heartbeat round everyone acknowledges: the newest acked send tick
    const lead = c.get(1);
    const commit = lead.status.commit;
    const heal = c.isolate(1);
    c.tick(ELECTION - 2, [1]);
    let mark = c.sent.length;
    lead.node.readIndex(bytes('in-lease'));
    c.stabilize();
    assert.deepEqual(reads(lead), [[commit, 'in-lease']], `served from the lease ${ELECTION - 2} ticks after the last ack`);
    assert.equal(c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat).length, 0);

    c.tick(1, [1]);
    assert.equal(lead.role, Role.Leader, 'still leader (CheckQuorum allows electionTimeout ticks)');
    heal();
    mark = c.sent.length;
    lead.node.readIndex(bytes('past-lease'));
    c.stabilize();
    const beats = c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat);
    assert.deepEqual(beats.map((m) => text(m.context)), ['past-lease'], 'lease over: a heartbeat round (one voter makes a quorum with the leader) confirms the read');
    assert.deepEqual(reads(lead), [[commit, 'in-lease'], [commit, 'past-lease']]);
    // The round renewed the lease: the next read is served at once again.
    mark = c.sent.length;
    lead.node.readIndex(bytes('renewed'));
    c.stabilize();
    assert.deepEqual(reads(lead).at(-1), [commit, 'renewed']);
    assert.equal(c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat).length, 0);
  });

  it('lease-based: once the leader sent TimeoutNow, reads take a heartbeat round (the transferee may win despite the lease)', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true, readOnlyOption: 'lease-based' });
    c.elect(1);
    c.propose(1, 'a');
    const lead = c.get(1);
    const commit = lead.status.commit;
    // TimeoutNow is lost, so the transfer stays pending and node 1 keeps leading.
    c.addFilter((m) => m.type === MessageType.TimeoutNow);
    lead.node.transferLeader(2);
    c.stabilize();
    assert.ok(c.sent.some((m) => m.type === MessageType.TimeoutNow && m.to === 2), 'TimeoutNow was sent');
    assert.equal(lead.role, Role.Leader);
    const mark = c.sent.length;
    lead.node.readIndex(bytes('during-transfer'));
    c.stabilize();
    assert.equal(c.sent.slice(mark).filter((m) => m.type === MessageType.Heartbeat && text(m.context) === 'during-transfer').length, 1);
    assert.deepEqual(reads(lead), [[commit, 'during-transfer']], 'served after the heartbeat quorum');
  });

  it('lease-based: a follower inside the leader\'s lease ignores an explicit campaign() (sim seed 36966)', function () {
    // The leader's lease counts on this follower not helping anyone win until an election
    // timeout has passed since it last heard from the leader; campaign() must not bypass that.
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, checkQuorum: true, readOnlyOption: 'lease-based' });
    c.elect(1);
    c.propose(1, 'a');
    const term = c.get(1).status.term;
    c.get(3).node.campaign();
    c.stabilize();
    assert.equal(c.get(3).role, Role.Follower);
    assert.equal(c.get(3).status.term, term, 'no election was started');
    assert.equal(c.get(1).role, Role.Leader);
    // Once the lease has run out (no word from the leader for an election timeout) it may.
    c.isolate(1);
    c.tick(ELECTION);
    c.get(3).node.campaign();
    c.stabilize();
    assert.ok(c.get(3).status.term > term, 'an election was started after the lease expired');
  });

  it('lease-based reads require CheckQuorum (config validation)', function () {
    assert.throws(() => new TestNode(1, { voters: [1, 2, 3], readOnlyOption: 'lease-based' }), ConfigError);
  });
});
