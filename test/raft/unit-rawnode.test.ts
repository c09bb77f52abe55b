/**
 * Unit tests of RawNode's own contract: Ready/advance bookkeeping, mustSync, the leader's
 * self-acknowledgement only after its entries are durable, boundary checks, bootstrap,
 * restart from storage, conf-change gating.
 */
import assert from 'node:assert/strict';
import {
  RawNode,
  MemoryStorage,
  SeededRandom,
  ProposalDroppedError,
  StepError,
  InvariantError,
  ConfigError,
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  decodeConfChange,
  type Message,
  type Ready,
  type RaftConfig,
} from '../../src/raft/index.js';

const SEED = Number(process.env['RAFT_TEST_SEED'] ?? 1);
const te = new TextEncoder();

function newNode(id: number, storage: MemoryStorage, extra: Partial<RaftConfig> = {}): RawNode {
  return new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, random: new SeededRandom(SEED * 31 + id), ...extra });
}

function voters(ids: number[]): MemoryStorage {
  const s = new MemoryStorage();
  s.setConfState({ voters: ids, learners: [] });
  return s;
}

/** Persist and apply one Ready the way the contract says; returns it. */
function handle(n: RawNode, s: MemoryStorage, applied: Uint8Array[] = []): Ready {
  const rd = n.ready();
  if (rd.snapshot) s.applySnapshot(rd.snapshot);
  s.append(rd.entries);
  if (rd.hardState) s.setHardState(rd.hardState);
  for (const e of rd.committedEntries) {
    if (e.type === EntryType.ConfChange) n.applyConfChange(decodeConfChange(e.data));
    else if (e.data.length > 0) applied.push(e.data);
  }
  n.advance(rd);
  return rd;
}

function msg(p: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return { term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, snapshot: null, context: new Uint8Array(), ...p };
}

describe('RawNode', function () {
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`    reproduce with RAFT_TEST_SEED=${SEED}`);
  });

  it('single voter: becomes leader at once, but commits its entries only after advance() (durable)', function () {
    const s = voters([1]);
    const n = newNode(1, s);
    n.campaign();
    assert.equal(n.status().role, Role.Leader);
    let rd = n.ready();
    assert.equal(rd.entries.length, 1, 'the empty entry of the new term');
    assert.deepEqual(rd.committedEntries, [], 'not durable yet: not committed');
    assert.equal(rd.mustSync, true);
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    n.advance(rd);
    assert.equal(n.status().commit, 1);
    rd = n.ready();
    assert.deepEqual(rd.committedEntries.map((e) => e.index), [1]);
    assert.equal(rd.mustSync, false, 'a commit-only change needs no sync');
    assert.deepEqual(rd.hardState, { term: 1, vote: 1, commit: 1 });
    n.advance(rd);
    assert.equal(n.hasReady(), false);
  });

  it('ready() twice without advance() throws; advance() with a foreign Ready throws; hasReady() is false meanwhile', function () {
    const s = voters([1]);
    const n = newNode(1, s);
    n.campaign();
    const rd = n.ready();
    assert.equal(n.hasReady(), false);
    assert.throws(() => n.ready(), InvariantError);
    assert.throws(() => n.advance({ ...rd }), InvariantError);
    n.advance(rd);
    assert.throws(() => n.advance(rd), InvariantError);
  });

  it('a leader whose term or vote changed in this Ready sends nothing in parallel', function () {
    const s = new MemoryStorage();
    s.setConfState({ voters: [1], learners: [2] });
    const n = newNode(1, s);
    n.campaign(); // single voter: leader immediately, App to learner 2 queued in the same Ready
    const rd = n.ready();
    assert.equal(rd.hardState?.term, 1);
    assert.deepEqual(rd.parallelMessages, []);
    assert.ok(rd.messages.some((m) => m.type === MessageType.App && m.to === 2));
    s.append(rd.entries);
    s.setHardState(rd.hardState!);
    n.advance(rd);
    n.propose(te.encode('x'));
    n.step(msg({ type: MessageType.AppResp, from: 2, to: 1, term: 1, index: 1 }));
    const rd2 = n.ready();
    assert.ok(rd2.parallelMessages.length > 0, 'same term and vote: appends may go in parallel');
    assert.ok(rd2.parallelMessages.every((m) => m.type === MessageType.App || m.type === MessageType.Heartbeat));
    n.advance(rd2);
  });

  it('step() refuses local message types and malformed numbers', function () {
    const n = newNode(1, voters([1, 2, 3]));
    for (const type of [MessageType.Hup, MessageType.Beat, MessageType.Unreachable, MessageType.SnapStatus, MessageType.CheckQuorum]) {
      assert.throws(() => n.step(msg({ type, from: 2, to: 1 })), StepError);
    }
    assert.throws(() => n.step(msg({ type: 77 as MessageType, from: 2, to: 1 })), StepError);
    // A malformed message is the sender's fault, not a broken invariant of this node: StepError.
    assert.throws(() => n.step(msg({ type: MessageType.App, from: 2, to: 1, term: 2 ** 53 })), StepError);
    assert.throws(() => n.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, index: -1 })), StepError);
    assert.throws(
      () => n.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, index: 0, entries: [{ term: 1, index: 3, type: EntryType.Normal, data: new Uint8Array() }] })),
      StepError,
      'entries must follow index',
    );
    assert.equal(n.status().term, 0, 'nothing was applied');
  });

  it('propose / readIndex without a leader throw ProposalDroppedError(no-leader)', function () {
    const n = newNode(1, voters([1, 2, 3]));
    assert.throws(() => n.propose(te.encode('x')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'no-leader');
    assert.throws(() => n.readIndex(te.encode('r')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'no-leader');
    n.campaign();
    assert.throws(() => n.propose(te.encode('x')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'no-leader', 'candidate');
  });

  it('a follower with forwarding disabled drops proposals', function () {
    const n = newNode(1, voters([1, 2, 3]), { disableProposalForwarding: true });
    n.step(msg({ type: MessageType.Heartbeat, from: 2, to: 1, term: 1 }));
    assert.throws(() => n.propose(te.encode('x')), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'forwarding-disabled');
  });

  it('a second conf change while one is unapplied is refused (conf-change-pending), then accepted once applied', function () {
    const s = voters([1]);
    const n = newNode(1, s);
    n.campaign();
    handle(n, s);
    handle(n, s);
    n.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 2, context: new Uint8Array() });
    assert.throws(
      () => n.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 3, context: new Uint8Array() }),
      (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'conf-change-pending',
    );
    while (n.hasReady()) handle(n, s);
    assert.deepEqual(n.status().config, { voters: [1], learners: [2] });
    n.proposeConfChange({ type: ConfChangeType.PromoteLearner, nodeId: 2, context: new Uint8Array() });
    assert.throws(() => n.proposeConfChange({ type: 9 as ConfChangeType, nodeId: 2, context: new Uint8Array() }), ConfigError);
  });

  it('the uncommitted-size limit drops proposals past it (but always admits one)', function () {
    const s = voters([1, 2, 3]);
    const n = newNode(1, s, { maxUncommittedEntriesSize: 100 });
    n.campaign();
    n.step(msg({ type: MessageType.VoteResp, from: 2, to: 1, term: 1 }));
    assert.equal(n.status().role, Role.Leader);
    n.propose(new Uint8Array(150));
    assert.throws(() => n.propose(new Uint8Array(1)), (e: unknown) => e instanceof ProposalDroppedError && e.reason === 'uncommitted-size-limit');
  });

  it('bootstrap: conf changes come out committed; campaign() right after it is deferred until they are applied', function () {
    const s = new MemoryStorage();
    const n = newNode(1, s);
    n.bootstrap([1]);
    assert.throws(() => n.bootstrap([1]), ConfigError);
    n.campaign();
    assert.equal(n.status().role, Role.Follower, 'no configuration yet');
    const rd = handle(n, s);
    assert.deepEqual(rd.committedEntries.map((e) => e.type), [EntryType.ConfChange]);
    assert.deepEqual(rd.hardState, { term: 1, vote: 0, commit: 1 });
    assert.equal(n.status().role, Role.Leader, 'the deferred campaign ran after the entries were applied');
    assert.throws(() => newNode(2, new MemoryStorage()).bootstrap([]), ConfigError);
  });

  it('restart restores term, vote, commit and membership from storage and does not re-apply ≤ applied', function () {
    const s = voters([1]);
    const n = newNode(1, s);
    n.campaign();
    const applied: Uint8Array[] = [];
    while (n.hasReady()) handle(n, s, applied);
    n.propose(te.encode('a'));
    n.propose(te.encode('b'));
    while (n.hasReady()) handle(n, s, applied);
    assert.equal(applied.length, 2);
    const st = n.status();
    const r = newNode(1, s, { applied: 2 });
    const rs = r.status();
    assert.deepEqual([rs.term, rs.vote, rs.commit, rs.applied, rs.role], [st.term, st.vote, st.commit, 2, Role.Follower]);
    const rd = r.ready();
    assert.deepEqual(rd.committedEntries.map((e) => e.index), [3], 'only entries after applied');
    assert.throws(() => newNode(1, s, { applied: 99 }), ConfigError);
  });

  it('a follower does not restore a snapshot while committed entries of an outstanding Ready are being applied', function () {
    const s = voters([1, 2]);
    const n = newNode(1, s);
    const ents = [1, 2, 3].map((i) => ({ term: 1, index: i, type: EntryType.Normal, data: te.encode(`e${i}`) }));
    n.step(msg({ type: MessageType.App, from: 2, to: 1, term: 1, entries: ents, commit: 3 }));
    const rd = n.ready();
    assert.equal(rd.committedEntries.length, 3);
    const snap = { metadata: { index: 10, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array() };
    n.step(msg({ type: MessageType.Snap, from: 2, to: 1, term: 1, snapshot: snap }));
    s.append(rd.entries);
    n.advance(rd);
    const rd2 = n.ready();
    assert.equal(rd2.snapshot, null, 'refused');
    assert.deepEqual(rd2.messages.map((m) => [m.type, m.index]), [[MessageType.AppResp, 3]]);
    n.advance(rd2);
    n.step(msg({ type: MessageType.Snap, from: 2, to: 1, term: 1, snapshot: snap }));
    const rd3 = n.ready();
    assert.equal(rd3.snapshot?.metadata.index, 10, 'accepted once nothing is being applied');
    assert.equal(rd3.mustSync, true);
    assert.deepEqual(rd3.messages.map((m) => [m.type, m.index]), [[MessageType.AppResp, 10]]);
  });

  it('status() reports progress only on the leader, as copies', function () {
    const s = voters([1]);
    const n = newNode(1, s);
    assert.equal(n.status().progress, null);
    n.campaign();
    const st = n.status();
    assert.ok(st.progress !== null);
    assert.equal(st.progress[1]!.state, 'replicate');
    st.config.voters.push(99);
    assert.deepEqual(n.status().config.voters, [1]);
  });
});
