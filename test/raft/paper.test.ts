/**
 * The Raft paper tests (after etcd-io/raft raft_paper_test.go), ported to our public RawNode API.
 *
 * Each test pins down a few sentences of the Raft paper (§ numbers refer to it). Structure:
 * build a node (storage pre-loaded where needed) → drive it with step/tick/propose/campaign →
 * check the messages of its Readies and status(). Where etcd pokes at internals (becomeLeader,
 * raftLog.unstable, …) we reach the same state through messages and assert the equivalent
 * observable behaviour (Ready.entries, Ready.committedEntries, status()).
 */
import assert from 'node:assert/strict';
import { MessageType, Role, NONE, type Entry, type Message, type NodeId } from '../../src/raft/types.js';
import {
  Cluster,
  TestNode,
  acceptAll,
  acceptAndReply,
  bytes,
  ent,
  makeLeader,
  msg,
  newStorage,
  reportSeedOnFailure,
  text,
  TEST_SEED,
} from './harness.js';

const ELECTION = 10;

function node(id: NodeId, voters: NodeId[], extra: Partial<ConstructorParameters<typeof TestNode>[1]> = {}): TestNode {
  return new TestNode(id, { voters, electionTick: ELECTION, heartbeatTick: 1, ...extra });
}

/** Make `tn` a follower of `lead` in `term` by stepping a heartbeat from it. */
function becomeFollower(tn: TestNode, term: number, lead: NodeId): void {
  tn.step(msg({ type: MessageType.Heartbeat, from: lead, to: tn.id, term }));
  tn.drain();
  assert.equal(tn.role, Role.Follower);
  assert.equal(tn.term, term);
}

const byTo = (a: Message, b: Message): number => a.to - b.to;
const ofType = (ms: Message[], t: MessageType): Message[] => ms.filter((m) => m.type === t).sort(byTo);
const entView = (es: Entry[]): string[] => es.map((e) => `${e.index}@${e.term}:${text(e.data)}`);

/** Ids 1..n. */
const idsBySize = (n: number): NodeId[] => Array.from({ length: n }, (_, i) => i + 1);

describe('Raft paper tests (§5)', function () {
  afterEach(reportSeedOnFailure);

  // 1. Reference: §5.1 — "If one server's current term is smaller than the other's, then it
  // updates its current term to the larger value. If a candidate or leader discovers that its
  // term is out of date, it immediately reverts to follower state."
  for (const [name, setup] of [
    ['Follower', (tn: TestNode) => becomeFollower(tn, 1, 2)],
    ['Candidate', (tn: TestNode) => { tn.node.campaign(); tn.drain(); }],
    ['Leader', (tn: TestNode) => { makeLeader(tn, [2]); }],
  ] as const) {
    it(`Test${name}UpdateTermFromMessage (§5.1)`, function () {
      // Reference: §5.1. A node in any role that sees a higher term adopts it and follows.
      const tn = node(1, [1, 2, 3]);
      setup(tn);
      assert.equal(tn.term, 1);
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2 }));
      tn.drain();
      const st = tn.status;
      assert.equal(st.term, 2);
      assert.equal(st.role, Role.Follower);
      assert.equal(st.leader, 2);
    });
  }

  it('TestRejectStaleTermMessage (§5.1)', function () {
    // Reference: §5.1 — "If a server receives a request with a stale term number, it rejects
    // the request." etcd ignores it entirely: no state change and no reply (without
    // checkQuorum/preVote, which is the default here).
    const storage = newStorage({ voters: [1, 2, 3], entries: [ent(1, 1)], hardState: { term: 2, vote: 0, commit: 0 } });
    const tn = node(1, [1, 2, 3], { storage });
    tn.drain();
    const stale: Message[] = [
      msg({ type: MessageType.App, from: 2, to: 1, term: 1, logTerm: 1, index: 1, entries: [ent(2, 1, 'x')], commit: 2 }),
      msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1, commit: 1 }),
      msg({ type: MessageType.Vote, from: 3, to: 1, term: 1, logTerm: 1, index: 5 }),
    ];
    for (const m of stale) {
      tn.step(m);
      const out = tn.drain();
      assert.deepEqual(out, [], `stale ${MessageType[m.type]} was answered`);
    }
    const st = tn.status;
    assert.equal(st.term, 2);
    assert.equal(st.leader, NONE);
    assert.equal(st.vote, NONE);
    assert.equal(st.commit, 0);
    assert.equal(tn.storage.lastIndex(), 1);
  });

  it('TestStartAsFollower (§5.2)', function () {
    // Reference: §5.2 — "When servers start up, they begin as followers."
    const tn = node(1, [1, 2, 3]);
    const st = tn.status;
    assert.equal(st.role, Role.Follower);
    assert.equal(st.term, 0);
    assert.equal(st.leader, NONE);
  });

  it('TestLeaderBcastBeat (§5.2)', function () {
    // Reference: §5.2 — "Leaders send periodic heartbeats (AppendEntries RPCs that carry no
    // log entries) to all followers in order to maintain their authority." The heartbeat's
    // commit is min(follower match, leader commit) so a follower never learns a commit index
    // past what it has.
    const heartbeatTick = 3;
    const tn = node(1, [1, 2, 3], { heartbeatTick });
    const first = makeLeader(tn, [2]);
    acceptAll(tn, first, [2]);
    for (let i = 0; i < 10; i++) tn.node.propose(bytes(`e${i}`));
    acceptAll(tn, tn.drain(), [2]);
    tn.drain();
    const commit = tn.status.commit;
    assert.equal(commit, 11, 'no-op + 10 entries committed by leader and node 2');

    for (let i = 1; i < heartbeatTick; i++) {
      tn.tick();
      assert.deepEqual(ofType(tn.drain(), MessageType.Heartbeat), [], `heartbeat sent after ${i} < heartbeatTick ticks`);
    }
    tn.tick();
    const out = tn.drain();
    const beats = ofType(out, MessageType.Heartbeat);
    assert.deepEqual(beats.map((m) => m.to), [2, 3]);
    for (const m of beats) {
      assert.equal(m.term, 1);
      assert.equal(m.entries.length, 0);
      assert.equal(m.index, 0);
      assert.equal(m.logTerm, 0);
    }
    assert.equal(beats[0]!.commit, 11, 'node 2 has everything: full commit');
    assert.equal(beats[1]!.commit, 0, 'node 3 acked nothing: commit 0');
    assert.deepEqual(out.filter((m) => m.type !== MessageType.Heartbeat), [], 'a heartbeat tick sends only heartbeats');
  });

  it('TestFollowerStartElection (§5.2)', function () {
    // Reference: §5.2 — "If a follower receives no communication over a period of time called
    // the election timeout, then it ... begins an election": increments its term, votes for
    // itself and sends RequestVote to every other member.
    const tn = node(1, [1, 2, 3]);
    becomeFollower(tn, 1, 2);
    let ticks = 0;
    while (tn.role === Role.Follower) {
      tn.tick();
      ticks++;
      assert.ok(ticks < 2 * ELECTION, 'follower never timed out');
    }
    const out = tn.drain();
    const st = tn.status;
    assert.equal(st.term, 2);
    assert.equal(st.role, Role.Candidate);
    assert.equal(st.vote, 1);
    const votes = ofType(out, MessageType.Vote);
    assert.deepEqual(votes.map((m) => [m.to, m.term, m.index, m.logTerm]), [[2, 2, 0, 0], [3, 2, 0, 0]]);
  });

  it('TestCandidateStartNewElection (§5.2)', function () {
    // Reference: §5.2 — "If ... the candidate neither wins nor loses the election ... each
    // candidate will time out and start a new election by incrementing its term."
    const tn = node(1, [1, 2, 3]);
    tn.node.campaign();
    tn.drain();
    assert.equal(tn.term, 1);
    let ticks = 0;
    while (tn.term === 1) {
      tn.tick();
      ticks++;
      assert.ok(ticks < 2 * ELECTION, 'candidate never timed out');
    }
    assert.ok(ticks >= ELECTION, `candidate re-campaigned after ${ticks} < electionTick ticks`);
    const out = tn.drain();
    const st = tn.status;
    assert.equal(st.term, 2);
    assert.equal(st.role, Role.Candidate);
    assert.equal(st.vote, 1);
    assert.deepEqual(ofType(out, MessageType.Vote).map((m) => [m.to, m.term]), [[2, 2], [3, 2]]);
  });

  it('TestLeaderElectionInOneRoundRPC (§5.2)', function () {
    // Reference: §5.2 — a candidate wins with votes from a majority; with a majority of
    // rejections it goes back to follower; otherwise it stays candidate. The term stays 1.
    const cases: Array<{ size: number; votes: Record<number, boolean>; want: Role }> = [
      { size: 1, votes: {}, want: Role.Leader },
      { size: 3, votes: { 2: true, 3: true }, want: Role.Leader },
      { size: 3, votes: { 2: true }, want: Role.Leader },
      { size: 5, votes: { 2: true, 3: true, 4: true, 5: true }, want: Role.Leader },
      { size: 5, votes: { 2: true, 3: true, 4: true }, want: Role.Leader },
      { size: 5, votes: { 2: true, 3: true }, want: Role.Leader },
      { size: 3, votes: { 2: false, 3: false }, want: Role.Follower },
      { size: 5, votes: { 2: false, 3: false, 4: false, 5: false }, want: Role.Follower },
      { size: 5, votes: { 2: true, 3: false, 4: false, 5: false }, want: Role.Follower },
      { size: 3, votes: {}, want: Role.Candidate },
      { size: 5, votes: { 2: true }, want: Role.Candidate },
      { size: 5, votes: { 2: false, 3: false }, want: Role.Candidate },
      { size: 5, votes: {}, want: Role.Candidate },
    ];
    for (const [i, c] of cases.entries()) {
      const tn = node(1, idsBySize(c.size));
      tn.node.campaign();
      tn.drain();
      for (const [id, granted] of Object.entries(c.votes)) {
        tn.step(msg({ type: MessageType.VoteResp, from: Number(id), to: 1, term: tn.term, reject: !granted }));
      }
      tn.drain();
      assert.equal(tn.role, c.want, `case ${i}: ${JSON.stringify(c)}`);
      assert.equal(tn.term, 1, `case ${i}: term`);
    }
  });

  it('TestFollowerVote (§5.2)', function () {
    // Reference: §5.2 — "Each server will vote for at most one candidate in a given term, on a
    // first-come-first-served basis." A repeated request from the same candidate is granted.
    const cases: Array<{ vote: NodeId; nvote: NodeId; reject: boolean }> = [
      { vote: NONE, nvote: 2, reject: false },
      { vote: NONE, nvote: 3, reject: false },
      { vote: 2, nvote: 2, reject: false },
      { vote: 3, nvote: 3, reject: false },
      { vote: 2, nvote: 3, reject: true },
      { vote: 3, nvote: 2, reject: true },
    ];
    for (const [i, c] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2, 3], hardState: { term: 1, vote: c.vote, commit: 0 } });
      const tn = node(1, [1, 2, 3], { storage });
      tn.step(msg({ type: MessageType.Vote, from: c.nvote, to: 1, term: 1 }));
      const resp = ofType(tn.drain(), MessageType.VoteResp);
      assert.deepEqual(resp.map((m) => [m.to, m.term, m.reject]), [[c.nvote, 1, c.reject]], `case ${i}`);
      assert.equal(tn.status.vote, c.vote === NONE ? c.nvote : c.vote, `case ${i}: vote recorded`);
    }
  });

  it('TestCandidateFallback (§5.2)', function () {
    // Reference: §5.2 — "If the leader's term is at least as large as the candidate's current
    // term, then the candidate recognizes the leader as legitimate and returns to follower."
    for (const term of [1, 2]) {
      const tn = node(1, [1, 2, 3]);
      tn.node.campaign();
      tn.drain();
      assert.equal(tn.role, Role.Candidate);
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term }));
      tn.drain();
      assert.equal(tn.role, Role.Follower, `App at term ${term}`);
      assert.equal(tn.term, term);
      assert.equal(tn.status.leader, 2);
    }
  });

  for (const role of [Role.Follower, Role.Candidate]) {
    const name = role === Role.Follower ? 'Follower' : 'Candidate';
    it(`Test${name}ElectionTimeoutRandomized (§5.2)`, function () {
      // Reference: §5.2 — "Raft uses randomized election timeouts ... chosen randomly from a
      // fixed interval." Every value in [electionTick, 2·electionTick) occurs, nothing else.
      const tn = node(1, [1, 2, 3]);
      const seen = new Set<number>();
      for (let round = 0; round < 50 * ELECTION; round++) {
        if (role === Role.Follower) becomeFollower(tn, tn.term + 1, 2);
        else { tn.node.campaign(); tn.drain(); }
        const term = tn.term;
        let ticks = 0;
        while (tn.term === term) {
          tn.tick();
          ticks++;
          assert.ok(ticks < 3 * ELECTION, `no timeout after ${ticks} ticks (seed ${TEST_SEED})`);
        }
        tn.drain();
        seen.add(ticks);
      }
      const want = Array.from({ length: ELECTION }, (_, i) => ELECTION + i);
      assert.deepEqual([...seen].sort((a, b) => a - b), want);
    });
  }

  for (const role of [Role.Follower, Role.Candidate]) {
    const name = role === Role.Follower ? 'Followers' : 'Candidates';
    it(`Test${name}ElectionTimeoutNonconflict (§5.2)`, function () {
      // Reference: §5.2 — randomized timeouts make split votes rare: in most rounds only one
      // server times out first. Over 1000 rounds of 5 nodes at most 30% have a tie.
      const size = 5;
      const nodes = idsBySize(size).map((id) => node(id, idsBySize(size)));
      let conflicts = 0;
      const rounds = 1000;
      for (let round = 0; round < rounds; round++) {
        const timeouts = nodes.map((tn) => {
          if (role === Role.Follower) becomeFollower(tn, tn.term + 1, tn.id === 1 ? 2 : 1);
          else { tn.node.campaign(); tn.drain(); }
          const term = tn.term;
          let ticks = 0;
          while (tn.term === term) { tn.tick(); ticks++; }
          tn.drain();
          return ticks;
        });
        const first = Math.min(...timeouts);
        if (timeouts.filter((t) => t === first).length > 1) conflicts++;
      }
      assert.ok(conflicts / rounds <= 0.3, `${conflicts}/${rounds} rounds had simultaneous timeouts (seed ${TEST_SEED})`);
    });
  }

  it('TestLeaderStartReplication (§5.3)', function () {
    // Reference: §5.3 — "The leader appends the command to its log as a new entry, then issues
    // AppendEntries RPCs in parallel to each of the other servers", carrying the preceding
    // entry's index/term and the leader's commit.
    const tn = node(1, [1, 2, 3]);
    acceptAll(tn, makeLeader(tn, [2]));
    tn.drain();
    const li = tn.status.lastIndex;
    assert.equal(tn.status.commit, li);
    tn.node.propose(bytes('some data'));
    const rd = tn.node.ready();
    assert.deepEqual(entView(rd.entries), [`${li + 1}@1:some data`], 'the entry is handed out to persist');
    const apps = ofType([...rd.parallelMessages, ...rd.messages], MessageType.App);
    // Hand the Ready back through the harness path: persist and advance.
    tn.storage.append(rd.entries);
    if (rd.hardState) tn.storage.setHardState(rd.hardState);
    tn.node.advance(rd);
    assert.equal(tn.status.lastIndex, li + 1);
    assert.equal(tn.status.commit, li, 'not committed before a majority acks');
    assert.deepEqual(apps.map((m) => [m.to, m.term, m.index, m.logTerm, m.commit, entView(m.entries)]), [
      [2, 1, li, 1, li, [`${li + 1}@1:some data`]],
      [3, 1, li, 1, li, [`${li + 1}@1:some data`]],
    ]);
  });

  it('TestLeaderCommitEntry (§5.3)', function () {
    // Reference: §5.3 — "When the entry has been safely replicated, the leader applies the
    // entry to its state machine ... The leader keeps track of the highest index it knows to be
    // committed, and it includes that index in future AppendEntries RPCs."
    const tn = node(1, [1, 2, 3]);
    acceptAll(tn, makeLeader(tn, [2]));
    tn.drain();
    const li = tn.status.lastIndex;
    tn.node.propose(bytes('some data'));
    const apps = ofType(tn.drain(), MessageType.App);
    for (const m of apps) tn.step(acceptAndReply(m));
    const after = tn.drain();
    assert.equal(tn.status.commit, li + 1);
    assert.deepEqual(entView(tn.applied.slice(-1)), [`${li + 1}@1:some data`]);
    const commitApps = ofType(after, MessageType.App);
    assert.deepEqual(commitApps.map((m) => [m.to, m.commit]), [[2, li + 1], [3, li + 1]],
      'followers learn the new commit index in the next App');
  });

  it('TestLeaderAcknowledgeCommit (§5.3)', function () {
    // Reference: §5.3 — "A log entry is committed once the leader that created the entry has
    // replicated it on a majority of the servers."
    const cases: Array<{ size: number; acceptors: NodeId[]; ack: boolean }> = [
      { size: 1, acceptors: [], ack: true },
      { size: 3, acceptors: [], ack: false },
      { size: 3, acceptors: [2], ack: true },
      { size: 3, acceptors: [2, 3], ack: true },
      { size: 5, acceptors: [], ack: false },
      { size: 5, acceptors: [2], ack: false },
      { size: 5, acceptors: [2, 3], ack: true },
      { size: 5, acceptors: [2, 3, 4], ack: true },
      { size: 5, acceptors: [2, 3, 4, 5], ack: true },
    ];
    for (const [i, c] of cases.entries()) {
      const ids = idsBySize(c.size);
      const tn = node(1, ids);
      const majority = ids.slice(1, Math.floor(c.size / 2) + 1);
      acceptAll(tn, makeLeader(tn, majority));
      tn.drain();
      const li = tn.status.lastIndex;
      assert.equal(tn.status.commit, li, `case ${i}: no-op committed`);
      tn.node.propose(bytes('some data'));
      for (const m of ofType(tn.drain(), MessageType.App)) {
        if (c.acceptors.includes(m.to)) tn.step(acceptAndReply(m));
      }
      tn.drain();
      assert.equal(tn.status.commit > li, c.ack, `case ${i}: ${JSON.stringify(c)}`);
    }
  });

  it('TestLeaderCommitPrecedingEntries (§5.3)', function () {
    // Reference: §5.3 — "This also commits all preceding entries in the leader's log,
    // including entries created by previous leaders", applied in log order.
    const cases: Entry[][] = [[], [ent(1, 2)], [ent(1, 1), ent(2, 2)], [ent(1, 1)]];
    for (const [i, prior] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2, 3], entries: prior, hardState: { term: 2, vote: 0, commit: 0 } });
      const tn = node(1, [1, 2, 3], { storage });
      const out = makeLeader(tn, [2]);
      assert.equal(tn.term, 3);
      tn.node.propose(bytes('some data'));
      acceptAll(tn, [...out, ...tn.drain()]);
      tn.drain();
      const li = prior.length;
      assert.deepEqual(entView(tn.applied), entView([...prior, ent(li + 1, 3), ent(li + 2, 3, 'some data')]), `case ${i}`);
    }
  });

  it('TestFollowerCommitEntry (§5.3)', function () {
    // Reference: §5.3 — "Once a follower learns that a log entry is committed, it applies the
    // entry to its local state machine (in log order)."
    const cases: Array<{ ents: Entry[]; commit: number }> = [
      { ents: [ent(1, 1, 'some data')], commit: 1 },
      { ents: [ent(1, 1, 'some data'), ent(2, 1, 'some data2')], commit: 2 },
      { ents: [ent(1, 1, 'some data2'), ent(2, 1, 'some data')], commit: 2 },
      { ents: [ent(1, 1, 'some data'), ent(2, 1, 'some data2')], commit: 1 },
    ];
    for (const [i, c] of cases.entries()) {
      const tn = node(1, [1, 2, 3]);
      becomeFollower(tn, 1, 2);
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: c.ents, commit: c.commit }));
      tn.drain();
      assert.equal(tn.status.commit, c.commit, `case ${i}`);
      assert.deepEqual(entView(tn.applied), entView(c.ents.slice(0, c.commit)), `case ${i}`);
    }
  });

  it('TestFollowerCheckMsgApp (§5.3)', function () {
    // Reference: §5.3 — "If the follower does not find an entry in its log with the same index
    // and term, then it refuses the new entries." The rejection carries a hint (an index and its
    // term) that lets the leader skip a whole term of conflicting entries.
    const ents = [ent(1, 1), ent(2, 2)];
    const cases = [
      // matches a committed entry: ack with the commit index
      { term: 0, index: 0, windex: 1, reject: false, hint: 0, logTerm: 0 },
      { term: 1, index: 1, windex: 1, reject: false, hint: 0, logTerm: 0 },
      // matches an uncommitted entry
      { term: 2, index: 2, windex: 2, reject: false, hint: 0, logTerm: 0 },
      // conflicts with an existing entry: hint = last index with term ≤ 1
      { term: 1, index: 2, windex: 2, reject: true, hint: 1, logTerm: 1 },
      // entry does not exist: hint = our last index (etcd's case uses logTerm 3, above the
      // message's term 2: no leader sends that, and messageProblem refuses it)
      { term: 2, index: 3, windex: 3, reject: true, hint: 2, logTerm: 2 },
    ];
    for (const [i, c] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2, 3], entries: ents, hardState: { term: 2, vote: 0, commit: 1 } });
      const tn = node(1, [1, 2, 3], { storage, applied: 1 });
      tn.drain();
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2, logTerm: c.term, index: c.index }));
      const resp = ofType(tn.drain(), MessageType.AppResp);
      assert.equal(resp.length, 1, `case ${i}`);
      const m = resp[0]!;
      assert.deepEqual(
        { to: m.to, term: m.term, index: m.index, reject: m.reject, hint: m.reject ? m.rejectHint : 0, logTerm: m.reject ? m.logTerm : 0 },
        { to: 2, term: 2, index: c.windex, reject: c.reject, hint: c.hint, logTerm: c.logTerm },
        `case ${i}: App(prev ${c.index}@${c.term})`,
      );
    }
  });

  it('TestFollowerAppendEntries (§5.3)', function () {
    // Reference: §5.3 — "If an existing entry conflicts with a new one (same index but
    // different terms), delete the existing entry and all that follow it; append any new
    // entries not already in the log." Entries already present are not handed out again.
    const cases: Array<{ index: number; term: number; ents: Entry[]; want: Entry[]; unstable: Entry[] }> = [
      { index: 2, term: 2, ents: [ent(3, 3)], want: [ent(1, 1), ent(2, 2), ent(3, 3)], unstable: [ent(3, 3)] },
      { index: 1, term: 1, ents: [ent(2, 3), ent(3, 4)], want: [ent(1, 1), ent(2, 3), ent(3, 4)], unstable: [ent(2, 3), ent(3, 4)] },
      { index: 0, term: 0, ents: [ent(1, 1)], want: [ent(1, 1), ent(2, 2)], unstable: [] },
      { index: 0, term: 0, ents: [ent(1, 3)], want: [ent(1, 3)], unstable: [ent(1, 3)] },
    ];
    for (const [i, c] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2, 3], entries: [ent(1, 1), ent(2, 2)], hardState: { term: 2, vote: 0, commit: 0 } });
      const tn = node(1, [1, 2, 3], { storage });
      tn.drain();
      // The leader's term (4) is at least the term of every entry it sends.
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: 4, logTerm: c.term, index: c.index, entries: c.ents }));
      const rd = tn.node.ready();
      assert.deepEqual(entView(rd.entries), entView(c.unstable), `case ${i}: entries to persist`);
      tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      tn.node.advance(rd);
      assert.deepEqual(entView(tn.logEntries()), entView(c.want), `case ${i}: log`);
    }
  });

  it('TestLeaderSyncFollowerLog (§5.3, Figure 7)', function () {
    // Reference: §5.3 — "the leader handles inconsistencies by forcing the followers' logs to
    // duplicate its own". Every Figure 7 follower (missing, extra uncommitted and conflicting
    // entries) ends up with exactly the leader's log.
    const lead = [ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 4), ent(5, 4), ent(6, 5), ent(7, 5), ent(8, 6), ent(9, 6), ent(10, 6)];
    const term = 8;
    const t = (pairs: Array<[number, number]>): Entry[] => pairs.map(([index, et]) => ent(index, et));
    const followers: Entry[][] = [
      t([[1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6]]),
      t([[1, 1], [2, 1], [3, 1], [4, 4]]),
      t([[1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6], [10, 6], [11, 6]]),
      t([[1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 5], [7, 5], [8, 6], [9, 6], [10, 6], [11, 7], [12, 7]]),
      t([[1, 1], [2, 1], [3, 1], [4, 4], [5, 4], [6, 4], [7, 4]]),
      t([[1, 1], [2, 1], [3, 1], [4, 2], [5, 2], [6, 2], [7, 3], [8, 3], [9, 3], [10, 3], [11, 3]]),
    ];
    for (const [i, flog] of followers.entries()) {
      const c = new Cluster([]);
      c.add(node(1, [1, 2, 3], { storage: newStorage({ voters: [1, 2, 3], entries: lead, hardState: { term, vote: 0, commit: 10 } }) }));
      c.add(node(2, [1, 2, 3], { storage: newStorage({ voters: [1, 2, 3], entries: flog, hardState: { term: term - 1, vote: 0, commit: 0 } }) }));
      // Node 3 exists only as a voter that grants node 1's vote: node 2 may have a more
      // up-to-date log, so node 1 needs 3's vote to win.
      c.get(1).node.campaign();
      c.processReadies();
      c.get(1).step(msg({ type: MessageType.VoteResp, from: 3, to: 1, term: term + 1 }));
      c.stabilize();
      assert.equal(c.get(1).role, Role.Leader, `case ${i}`);
      c.propose(1, '');
      c.assertLogsEqual([1, 2]);
      assert.equal(c.get(2).status.commit, c.get(1).status.commit, `case ${i}: follower learned the commit`);
    }
  });

  it('TestVoteRequest (§5.4.1)', function () {
    // Reference: §5.4.1 — "The RequestVote RPC ... includes information about the candidate's
    // log": its last index and last term; it is sent to every other member.
    const cases: Array<{ ents: Entry[]; wterm: number }> = [
      { ents: [ent(1, 1)], wterm: 2 },
      { ents: [ent(1, 1), ent(2, 2)], wterm: 3 },
    ];
    for (const [i, c] of cases.entries()) {
      const tn = node(1, [1, 2, 3]);
      tn.step(msg({ type: MessageType.App, from: 2, to: 1, term: c.wterm - 1, entries: c.ents }));
      tn.drain();
      let ticks = 0;
      while (tn.role !== Role.Candidate) {
        tn.tick();
        ticks++;
        assert.ok(ticks < 2 * ELECTION, `case ${i}: no election`);
      }
      const last = c.ents[c.ents.length - 1]!;
      const votes = ofType(tn.drain(), MessageType.Vote);
      assert.deepEqual(votes.map((m) => [m.to, m.term, m.index, m.logTerm]), [
        [2, c.wterm, last.index, last.term],
        [3, c.wterm, last.index, last.term],
      ], `case ${i}`);
    }
  });

  it('TestVoter (§5.4.1)', function () {
    // Reference: §5.4.1 — "the voter denies its vote if its own log is more up-to-date than
    // that of the candidate": higher last term wins; with equal last terms the longer log.
    const cases: Array<{ ents: Entry[]; logTerm: number; index: number; reject: boolean }> = [
      // same last term
      { ents: [ent(1, 1)], logTerm: 1, index: 1, reject: false },
      { ents: [ent(1, 1)], logTerm: 1, index: 2, reject: false },
      { ents: [ent(1, 1), ent(2, 1)], logTerm: 1, index: 1, reject: true },
      // candidate has the higher last term
      { ents: [ent(1, 1)], logTerm: 2, index: 1, reject: false },
      { ents: [ent(1, 1)], logTerm: 2, index: 2, reject: false },
      { ents: [ent(1, 1), ent(2, 1)], logTerm: 2, index: 1, reject: false },
      // voter has the higher last term
      { ents: [ent(1, 2)], logTerm: 1, index: 1, reject: true },
      { ents: [ent(1, 2)], logTerm: 1, index: 2, reject: true },
      { ents: [ent(1, 1), ent(2, 2)], logTerm: 1, index: 3, reject: true },
    ];
    for (const [i, c] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2], entries: c.ents });
      const tn = node(1, [1, 2], { storage });
      tn.step(msg({ type: MessageType.Vote, from: 2, to: 1, term: 3, logTerm: c.logTerm, index: c.index }));
      const out = tn.drain();
      assert.equal(out.length, 1, `case ${i}`);
      assert.equal(out[0]!.type, MessageType.VoteResp, `case ${i}`);
      assert.equal(out[0]!.reject, c.reject, `case ${i}: ${JSON.stringify({ logTerm: c.logTerm, index: c.index })}`);
    }
  });

  it('TestLeaderOnlyCommitsLogFromCurrentTerm (§5.4.2)', function () {
    // Reference: §5.4.2 — "Raft never commits log entries from previous terms by counting
    // replicas. Only log entries from the leader's current term are committed by counting
    // replicas; once an entry from the current term has been committed ... all prior entries
    // are committed indirectly."
    const cases = [
      { index: 1, wcommit: 0 },
      { index: 2, wcommit: 0 },
      { index: 3, wcommit: 3 },
    ];
    for (const [i, c] of cases.entries()) {
      const storage = newStorage({ voters: [1, 2], entries: [ent(1, 1), ent(2, 2)], hardState: { term: 2, vote: 0, commit: 0 } });
      const tn = node(1, [1, 2], { storage });
      makeLeader(tn, [2]);
      assert.equal(tn.term, 3);
      tn.node.propose(bytes('current term'));
      tn.drain();
      tn.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: c.index }));
      tn.drain();
      assert.equal(tn.status.commit, c.wcommit, `case ${i}: ack of index ${c.index}`);
    }
  });
});
