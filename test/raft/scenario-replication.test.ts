/**
 * Replication scenarios: snapshot catch-up, proposal forwarding, flow control (inflight count
 * and bytes per message), fast backtracking with the reject hint, and the paper's Figure 8
 * (never commit an earlier term's entry by counting replicas).
 */
import assert from 'node:assert/strict';
import { ProposalDroppedError } from '../../src/raft/index.js';
import { ConfChangeType, MessageType, Role, type Entry, type Message, type NodeId } from '../../src/raft/types.js';
import { Cluster, TestNode, bytes, confChange, ent, newStorage, reportSeedOnFailure, text, TEST_SEED } from './harness.js';

const ELECTION = 10;

function assertDropped(fn: () => void, reason: ProposalDroppedError['reason']): void {
  assert.throws(fn, (e: unknown) => e instanceof ProposalDroppedError && e.reason === reason, `expected ProposalDroppedError(${reason})`);
}

/** Entries index..index+n-1 all in `term`. */
const run = (from: number, n: number, term: number): Entry[] => Array.from({ length: n }, (_, i) => ent(from + i, term));

describe('Snapshot catch-up', function () {
  afterEach(reportSeedOnFailure);

  it('a lagging follower gets MsgSnap, the leader tracks it until reportSnapshot, then replication resumes', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    const rejoin = c.isolate(3);
    for (let i = 0; i < 5; i++) c.propose(1, `e${i}`);
    const snap = c.compact(1);
    assert.ok(c.get(1).storage.firstIndex() > c.get(3).storage.lastIndex() + 1, 'node 3 needs compacted entries');
    rejoin();
    // Hold node 3's acks (not its rejections) so the leader's snapshot tracking is observable.
    const holdAcks = c.addFilter((m) => m.from === 3 && m.to === 1 && m.type === MessageType.AppResp && !m.reject);
    const mark = c.sent.length;
    c.tick(2);
    const snaps = c.sent.slice(mark).filter((m) => m.type === MessageType.Snap);
    assert.ok(snaps.length >= 1, 'MsgSnap sent');
    assert.equal(snaps[0]!.to, 3);
    assert.equal(snaps[0]!.snapshot!.metadata.index, snap.metadata.index);
    assert.equal(text(snaps[0]!.snapshot!.data), text(snap.data));
    const pr = c.get(1).status.progress![3]!;
    assert.equal(pr.state, 'snapshot');
    assert.equal(pr.pendingSnapshot, snap.metadata.index);
    // Node 3 installed it.
    const n3 = c.get(3);
    assert.equal(n3.snapshotsApplied.length, 1);
    assert.equal(n3.lastApplied, snap.metadata.index);
    assert.equal(n3.storage.firstIndex(), snap.metadata.index + 1);
    c.get(1).node.reportSnapshot(3, true);
    assert.equal(c.get(1).status.progress![3]!.state, 'probe');
    holdAcks();
    c.tick(2);
    c.propose(1, 'after');
    assert.equal(c.get(1).status.progress![3]!.state, 'replicate');
    assert.deepEqual(n3.appliedData(), ['after'], 'entries after the snapshot are applied normally');
    c.assertLogsEqual([1, 2, 3], snap.metadata.index + 1);
  });

  it('a failed snapshot (reportSnapshot false) goes back to probe and the snapshot is sent again', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    const rejoin = c.isolate(3);
    for (let i = 0; i < 3; i++) c.propose(1, `e${i}`);
    c.compact(1);
    rejoin();
    const dropSnap = c.addFilter((m) => m.type === MessageType.Snap);
    c.tick(2);
    assert.equal(c.get(1).status.progress![3]!.state, 'snapshot');
    c.get(1).node.reportSnapshot(3, false);
    const pr = c.get(1).status.progress![3]!;
    assert.equal(pr.state, 'probe');
    assert.equal(pr.pendingSnapshot, 0);
    dropSnap();
    const mark = c.sent.length;
    c.tick(3);
    assert.ok(c.sent.slice(mark).some((m) => m.type === MessageType.Snap && m.to === 3), 'snapshot re-sent');
    c.get(1).node.reportSnapshot(3, true);
    c.tick(3);
    c.propose(1, 'x');
    assert.deepEqual(c.get(3).appliedData(), ['x']);
  });

  it('a new member added after compaction is initialised by snapshot', function () {
    const c = new Cluster([1, 2, 3], { bootstrap: true, electionTick: ELECTION });
    c.elect(1);
    for (let i = 0; i < 3; i++) c.propose(1, `e${i}`);
    const snap = c.compact(1);
    c.add(new TestNode(4, { voters: [], electionTick: ELECTION }));
    c.proposeConfChange(1, confChange(ConfChangeType.AddVoter, 4));
    c.tick(3);
    c.get(1).node.reportSnapshot(4, true);
    c.tick(3);
    const n4 = c.get(4);
    assert.equal(n4.snapshotsApplied.length, 1);
    assert.equal(n4.snapshotsApplied[0]!.metadata.index, snap.metadata.index);
    assert.deepEqual([...n4.status.config.voters].sort(), [1, 2, 3, 4]);
    c.propose(1, 'joined');
    assert.deepEqual(n4.appliedData(), ['joined']);
  });
});

describe('Proposal forwarding', function () {
  afterEach(reportSeedOnFailure);

  it('a follower forwards a proposal to the leader and it commits everywhere', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION });
    c.elect(1);
    const mark = c.sent.length;
    c.propose(2, 'forwarded');
    const prop = c.sent.slice(mark).filter((m) => m.type === MessageType.Prop);
    assert.equal(prop.length, 1);
    assert.deepEqual([prop[0]!.from, prop[0]!.to, prop[0]!.entries.map((e) => text(e.data))], [2, 1, ['forwarded']]);
    for (const id of [1, 2, 3]) assert.deepEqual(c.get(id).appliedData(), ['forwarded']);
  });

  it('with no leader a proposal is refused with no-leader (follower and candidate)', function () {
    const tn = new TestNode(1, { voters: [1, 2, 3], electionTick: ELECTION });
    assertDropped(() => tn.node.propose(bytes('x')), 'no-leader');
    tn.node.campaign();
    tn.drain();
    assert.equal(tn.role, Role.Candidate);
    assertDropped(() => tn.node.propose(bytes('x')), 'no-leader');
    assertDropped(() => tn.node.proposeConfChange(confChange(ConfChangeType.AddLearner, 4)), 'no-leader');
  });

  it('with disableProposalForwarding a follower refuses instead of forwarding', function () {
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, disableProposalForwarding: true });
    c.elect(1);
    assertDropped(() => c.get(2).node.propose(bytes('x')), 'forwarding-disabled');
    c.propose(1, 'ok');
    assert.deepEqual(c.get(2).appliedData(), ['ok']);
  });
});

describe('Flow control', function () {
  afterEach(reportSeedOnFailure);

  it('maxInflightMsgs caps un-acknowledged Apps to a follower in replicate state', function () {
    const maxInflightMsgs = 3;
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, maxInflightMsgs });
    c.elect(1);
    c.propose(1, 'warm-up');
    assert.equal(c.get(1).status.progress![2]!.state, 'replicate');
    const held: Message[] = [];
    const hold = c.addFilter((m) => {
      if (m.from === 1 && m.to === 2 && m.type === MessageType.App) {
        held.push(m);
        return true;
      }
      return false;
    });
    for (let i = 0; i < 10; i++) c.propose(1, `p${i}`);
    assert.equal(held.length, maxInflightMsgs, 'exactly maxInflightMsgs Apps before any ack');
    const pr = c.get(1).status.progress![2]!;
    assert.equal(pr.inflight, maxInflightMsgs);
    // Node 2 receives the first App after all and acknowledges it: that frees one slot, and
    // exactly one more App goes out.
    c.get(2).step(held[0]!);
    c.stabilize();
    assert.equal(held.length, maxInflightMsgs + 1);
    // Liveness: once the network delivers again, node 2 catches up (the held Apps were lost).
    hold();
    c.tick(5);
    c.assertLogsEqual([1, 2, 3]);
    assert.equal(c.get(2).appliedData().length, 11);
  });

  it('maxSizePerMsg limits the bytes of entries per App (but always sends at least one)', function () {
    const maxSizePerMsg = 100;
    const c = new Cluster([1, 2, 3], { electionTick: ELECTION, maxSizePerMsg });
    c.elect(1);
    const rejoin = c.isolate(3);
    for (let i = 0; i < 20; i++) c.propose(1, `entry-${String(i).padStart(2, '0')}-${'x'.repeat(30)}`);
    c.propose(1, 'y'.repeat(250)); // bigger than maxSizePerMsg on its own
    rejoin();
    const mark = c.sent.length;
    c.tick(5);
    const apps = c.sent.slice(mark).filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
    assert.ok(apps.length >= 8, `catch-up took ${apps.length} Apps; 21 entries of ~40 B at 100 B per message need several`);
    for (const m of apps) {
      const size = m.entries.reduce((n, e) => n + e.data.length, 0);
      assert.ok(m.entries.length === 1 || size <= maxSizePerMsg, `App of ${m.entries.length} entries carries ${size} B > ${maxSizePerMsg}`);
    }
    c.assertLogsEqual([1, 2, 3]);
  });
});

describe('Fast backtracking', function () {
  afterEach(reportSeedOnFailure);

  /** Node 1 (leader-to-be) and node 3 share `leaderLog`; node 2 holds `followerLog`. Returns the
   * number of rejected Apps node 2 sent before its log matched. */
  function rejections(leaderLog: Entry[], followerLog: Entry[], term: number): number {
    const c = new Cluster([]);
    const st = (entries: Entry[]) => newStorage({ voters: [1, 2, 3], entries, hardState: { term, vote: 0, commit: 10 } });
    for (const [id, log] of [[1, leaderLog], [2, followerLog], [3, leaderLog]] as Array<[NodeId, Entry[]]>) {
      c.add(new TestNode(id, { voters: [1, 2, 3], electionTick: ELECTION, storage: st(log), applied: 10 }));
    }
    c.elect(1);
    c.propose(1, 'done');
    c.assertLogsEqual([1, 2, 3]);
    return c.sent.filter((m) => m.type === MessageType.AppResp && m.from === 2 && m.reject).length;
  }

  it('a follower with 100 divergent entries of an older term is fixed in one rejection round trip', function () {
    const n = rejections([...run(1, 10, 1), ...run(11, 100, 3)], [...run(1, 10, 1), ...run(11, 100, 2)], 3);
    assert.ok(n <= 2, `${n} rejections (one per entry would be 100)`);
  });

  it('a follower with a much longer divergent log is fixed in one rejection round trip', function () {
    const n = rejections([...run(1, 10, 1), ...run(11, 5, 3)], [...run(1, 10, 1), ...run(11, 1000, 2)], 3);
    assert.ok(n <= 2, `${n} rejections`);
  });

  it("a follower holding higher-term entries than the leader's at the same indexes is fixed in few round trips", function () {
    // The follower led term 5 and appended 90 entries nobody else has; the new leader's entries
    // there are from term 2. Only the follower's hint (last index with term ≤ the probe's term)
    // lets the leader skip them all.
    const n = rejections([...run(1, 10, 1), ...run(11, 90, 2)], [...run(1, 10, 1), ...run(11, 90, 5)], 5);
    assert.ok(n <= 3, `${n} rejections (one per entry would be 90)`);
  });

  it('a follower whose divergent suffix spans many terms is fixed in few round trips', function () {
    const follower = [...run(1, 10, 1)];
    for (let t = 2; t <= 11; t++) follower.push(...run(follower.length + 1, 10, t));
    const n = rejections([...run(1, 10, 1), ...run(11, 50, 12)], follower, 12);
    assert.ok(n <= 3, `${n} rejections`);
  });
});

describe('Commit only current-term entries (Figure 8)', function () {
  afterEach(reportSeedOnFailure);

  it('an old-term entry on a majority is not committed by counting; a later leader may overwrite it', function () {
    // One entry per App so the leader can get an old entry onto a majority without its no-op.
    const c = new Cluster([1, 2, 3, 4, 5], { electionTick: ELECTION, maxSizePerMsg: 1 });
    c.elect(1);
    const campaignUntilLeader = (id: NodeId): void => {
      for (let i = 0; i < 5 && c.get(id).role !== Role.Leader; i++) c.campaign(id);
      assert.equal(c.get(id).role, Role.Leader, `node ${id} could not win (seed ${TEST_SEED})`);
    };

    // (a) S1 (term 1) replicates A at index 2 to S2 only.
    const undoA = c.partition([1, 2], [3, 4, 5]);
    c.propose(1, 'A');
    assert.equal(c.get(1).status.commit, 1);
    undoA();

    // (b) S1 crashes; S5 wins with votes from S3, S4 and appends its no-op (index 2) locally only.
    c.stop(1);
    const isolate2 = c.isolate(2);
    const dropS5Apps = c.addFilter((m) => m.from === 5 && m.type === MessageType.App);
    campaignUntilLeader(5);
    const t5 = c.get(5).term;
    assert.equal(c.get(5).logEntries()[1]!.term, t5, 'S5 has its own entry at index 2');
    dropS5Apps();
    isolate2();

    // (c) S5 crashes; S1 restarts and wins (S2, S3). It gets A onto S3, but its own no-op does not reach S3.
    c.stop(5);
    c.restart(1);
    const no4 = c.partition([1], [4]);
    // S3 first rejects the probe for index 3 (it lacks index 2), then accepts A alone; the App
    // that would give it the new term's no-op is lost.
    const holdNoopTo3 = c.addFilter((m) => m.from === 1 && m.to === 3 && m.type === MessageType.App &&
      m.entries.some((e) => e.index >= 3) && c.get(3).storage.lastIndex() >= 2);
    campaignUntilLeader(1);
    const s1 = c.get(1);
    assert.ok(s1.term > t5);
    assert.equal(c.get(3).logEntries().length, 2, 'S3 holds A');
    assert.equal(text(c.get(3).logEntries()[1]!.data), 'A');
    assert.equal(s1.status.progress![3]!.match, 2);
    assert.equal(s1.status.progress![2]!.match, 3);
    assert.equal(s1.status.commit, 1, 'A is on S1, S2, S3 (a majority) but is from an old term: not committed');
    for (const id of [1, 2, 3, 4]) assert.ok(!c.get(id).appliedData().includes('A'), `node ${id} applied A`);
    no4();
    holdNoopTo3();

    // (d) S1 crashes; S5 restarts and wins (S3, S4), overwriting index 2 everywhere.
    c.stop(1);
    c.restart(5);
    campaignUntilLeader(5);
    c.propose(5, 'B');
    c.restart(1);
    c.tick(5);
    c.assertLogsEqual([1, 2, 3, 4, 5]);
    // State machine safety: nobody applied A, and all applied the same sequence.
    const reference = c.get(5).applied.map((e) => `${e.index}@${e.term}`);
    for (const id of [1, 2, 3, 4, 5]) {
      assert.ok(!c.get(id).appliedData().includes('A'), `node ${id} applied the overwritten A`);
      const mine = c.get(id).applied.map((e) => `${e.index}@${e.term}`);
      assert.deepEqual(mine, reference.slice(0, mine.length), `node ${id} applied a different sequence`);
    }
    assert.deepEqual(c.get(1).appliedData(), ['B']);
  });
});
