/**
 * In-memory test harness for the Raft core, driven only through the public RawNode API.
 *
 * - `TestNode` wraps one RawNode with its MemoryStorage and processes each Ready in the order the
 *   core documents (send parallelMessages, persist snapshot → entries → hardState, send messages,
 *   apply committed entries calling applyConfChange, advance). While doing so it asserts the Ready
 *   contract: messages that depend on durable state only go out after that state is persisted,
 *   parallelMessages come only from the current leader, mustSync matches what changed, committed
 *   entries are durable and applied in order.
 * - `Cluster` connects TestNodes through a FIFO network with drop filters (isolate, partition,
 *   cut, arbitrary predicates) and offers tick helpers and `stabilize()`.
 *
 * Everything is deterministic: node randomness is a SeededRandom derived from the test seed
 * (`RAFT_TEST_SEED`, default 1), which tests print on failure.
 */
import assert from 'node:assert/strict';
import {
  RawNode,
  MemoryStorage,
  SeededRandom,
  decodeConfChange,
  encodeConfChange,
  type RaftConfig,
} from '../../src/raft/index.js';
import {
  EntryType,
  MessageType,
  Role,
  NONE,
  type ConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type ReadState,
  type Snapshot,
} from '../../src/raft/types.js';

export const TEST_SEED: number = (() => {
  const raw = process.env['RAFT_TEST_SEED'];
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  assert.ok(Number.isSafeInteger(n), `RAFT_TEST_SEED must be an integer, got ${raw}`);
  return n;
})();

/** Mocha hook body: print the seed of a failed test so it can be reproduced. */
export function reportSeedOnFailure(this: Mocha.Context): void {
  if (this.currentTest?.state === 'failed') {
    console.log(`    reproduce with RAFT_TEST_SEED=${TEST_SEED}`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array): string => decoder.decode(b);
export const EMPTY = new Uint8Array(0);

/** A complete Message with every field not given set to its zero value. */
export function msg(m: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: EMPTY,
    ...m,
  };
}

export function ent(index: number, term: number, data: string | Uint8Array = EMPTY, type = EntryType.Normal): Entry {
  return { index, term, type, data: typeof data === 'string' ? bytes(data) : data };
}

/** Entries with consecutive indexes starting at `from`, one per term in `terms`. */
export function entsWithTerms(from: number, terms: number[]): Entry[] {
  return terms.map((term, i) => ent(from + i, term));
}

export function confChange(type: ConfChangeType, nodeId: NodeId, context: Uint8Array = EMPTY): ConfChange {
  return { type, nodeId, context };
}

export const allMessages = (rd: Ready): Message[] => [...rd.parallelMessages, ...rd.messages];

/** The AppResp an honest follower sends after accepting `m` (an App). */
export function acceptAndReply(m: Message): Message {
  assert.equal(m.type, MessageType.App, `acceptAndReply wants an App, got ${MessageType[m.type]}`);
  return msg({ type: MessageType.AppResp, from: m.to, to: m.from, term: m.term, index: m.index + m.entries.length });
}

export function typeName(t: MessageType): string {
  return MessageType[t] ?? String(t);
}

export function describe_(m: Message): string {
  const ents = m.entries.length > 0 ? ` ents=[${m.entries.map((e) => `${e.index}@${e.term}`).join(',')}]` : '';
  return `${typeName(m.type)} ${m.from}->${m.to} t${m.term} lt${m.logTerm} i${m.index} c${m.commit}` +
    `${m.reject ? ` reject(hint ${m.rejectHint})` : ''}${ents}${m.snapshot ? ` snap@${m.snapshot.metadata.index}` : ''}`;
}

export interface NodeOptions extends Partial<Omit<RaftConfig, 'id' | 'storage' | 'random'>> {
  /** Voters of the initial configuration (ignored when `bootstrap` or `storage` is given). */
  voters?: NodeId[];
  learners?: NodeId[];
  /** Use RawNode.bootstrap(voters) instead of seeding the storage's ConfState. */
  bootstrap?: boolean;
  /** Pre-built storage (e.g. with a log and hard state loaded); used as is. */
  storage?: MemoryStorage;
  seed?: number;
}

const DEFAULT_ELECTION_TICK = 10;
const DEFAULT_HEARTBEAT_TICK = 1;

export function newStorage(opts: { voters?: NodeId[]; learners?: NodeId[]; entries?: Entry[]; hardState?: HardState } = {}): MemoryStorage {
  const s = new MemoryStorage();
  s.setConfState({ voters: opts.voters ?? [], learners: opts.learners ?? [] });
  if (opts.entries !== undefined && opts.entries.length > 0) s.append(opts.entries);
  if (opts.hardState !== undefined) s.setHardState(opts.hardState);
  return s;
}

export class TestNode {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  readonly node: RawNode;
  readonly electionTick: number;
  readonly heartbeatTick: number;
  /** Every committed entry applied so far, in order (normal and conf change). */
  readonly applied: Entry[] = [];
  readonly readStates: ReadState[] = [];
  lastApplied = 0;
  confState: ConfState;
  /** When true, committed ConfChange entries are recorded in `pendingConfChanges` instead of
   * being applied, so a test can observe the time between commit and apply. */
  deferConfChanges = false;
  readonly pendingConfChanges: ConfChange[] = [];
  /** Snapshots this node persisted from Readies. */
  readonly snapshotsApplied: Snapshot[] = [];
  /** Every Ready processed, most recent last (kept for assertions on ordering). */
  readonly readies: Ready[] = [];
  /** Options this node was created with (reused by Cluster.restart). */
  readonly options: NodeOptions;

  constructor(id: NodeId, opts: NodeOptions = {}) {
    this.id = id;
    this.options = opts;
    const { voters, learners, bootstrap, storage, seed, ...cfg } = opts;
    this.storage = storage ?? newStorage(bootstrap === true ? {} : { voters: voters ?? [id], learners: learners ?? [] });
    this.electionTick = cfg.electionTick ?? DEFAULT_ELECTION_TICK;
    this.heartbeatTick = cfg.heartbeatTick ?? DEFAULT_HEARTBEAT_TICK;
    const config: RaftConfig = {
      ...cfg,
      id,
      electionTick: this.electionTick,
      heartbeatTick: this.heartbeatTick,
      storage: this.storage,
      random: new SeededRandom((seed ?? TEST_SEED) * 7919 + id),
    };
    this.node = new RawNode(config);
    if (bootstrap === true) this.node.bootstrap(voters ?? [id]);
    this.confState = this.storage.initialState().confState;
    const snapIndex = this.storage.firstIndex() - 1;
    this.lastApplied = Math.max(cfg.applied ?? 0, snapIndex);
  }

  get status(): ReturnType<RawNode['status']> {
    return this.node.status();
  }
  get role(): Role {
    return this.node.status().role;
  }
  get term(): number {
    return this.node.status().term;
  }

  step(m: Message): void {
    this.node.step(m);
  }
  tick(n = 1): void {
    for (let i = 0; i < n; i++) this.node.tick();
  }

  /** Entries in stable storage, [firstIndex, lastIndex]. */
  logEntries(): Entry[] {
    const lo = this.storage.firstIndex();
    const hi = this.storage.lastIndex() + 1;
    if (hi <= lo) return [];
    return this.storage.entries(lo, hi, Number.MAX_SAFE_INTEGER);
  }

  /** Process one Ready in the documented order and return the messages to send (parallel
   * messages first). Asserts the Ready contract along the way. */
  handleReady(): Message[] {
    const rd = this.node.ready();
    this.readies.push(rd);
    if (this.readies.length > 200) this.readies.shift();
    const before = this.storage.initialState().hardState;
    const where = `node ${this.id}`;

    // Rule 1: parallel messages are only a current leader's App/Heartbeat/Snap/TimeoutNow, and
    // they depend on nothing not yet durable: the leader's term was persisted before it won.
    if (rd.parallelMessages.length > 0) {
      const st = this.node.status();
      assert.equal(st.role, Role.Leader, `${where}: parallelMessages from a ${st.role}: ${rd.parallelMessages.map(describe_).join('; ')}`);
      for (const m of rd.parallelMessages) {
        assert.ok(
          [MessageType.App, MessageType.Heartbeat, MessageType.Snap, MessageType.TimeoutNow].includes(m.type),
          `${where}: ${describe_(m)} is not allowed in parallelMessages`,
        );
        assert.equal(m.from, this.id, `${where}: parallel message not from this node: ${describe_(m)}`);
        assert.equal(m.term, st.term, `${where}: parallel message of another term: ${describe_(m)}`);
        assert.ok(m.term <= before.term, `${where}: parallel ${describe_(m)} sent before term ${m.term} was durable (persisted term ${before.term})`);
      }
    }

    // mustSync: required exactly when entries, term or vote change (a snapshot may also sync).
    const hs = rd.hardState;
    const termOrVoteChanged = hs !== null && (hs.term !== before.term || hs.vote !== before.vote);
    if (rd.entries.length > 0 || termOrVoteChanged) {
      assert.equal(rd.mustSync, true, `${where}: mustSync false although entries/term/vote changed`);
    } else if (rd.snapshot === null) {
      assert.equal(rd.mustSync, false, `${where}: mustSync true although only commit (or nothing) changed`);
    }

    // Rule 2: persist snapshot, then entries, then hard state.
    if (rd.snapshot !== null) {
      this.storage.applySnapshot(rd.snapshot);
      this.snapshotsApplied.push(rd.snapshot);
    }
    if (rd.entries.length > 0) {
      for (let i = 1; i < rd.entries.length; i++) {
        assert.equal(rd.entries[i]!.index, rd.entries[i - 1]!.index + 1, `${where}: Ready entries not contiguous`);
      }
      this.storage.append(rd.entries);
    }
    if (hs !== null) this.storage.setHardState(hs);
    const durable = this.storage.initialState().hardState;

    // Rule 3: rd.messages depend on what was just persisted.
    for (const m of rd.messages) {
      // A follower forwards a proposal, read or transfer request (also one it was forwarded: its
      // leader changed meanwhile) with the original requester as `from`, as etcd does; all else
      // is from this node.
      const forwardable = m.type === MessageType.Prop || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader;
      if (!forwardable) assert.equal(m.from, this.id, `${where}: message not from this node: ${describe_(m)}`);
      if (m.type !== MessageType.PreVote && m.type !== MessageType.PreVoteResp) {
        assert.ok(m.term <= durable.term, `${where}: ${describe_(m)} carries term ${m.term} but durable term is ${durable.term}`);
      }
      // A grant is safe once the vote is durable, or once a later term is (the node will never
      // take part in m.term again; both can happen within one Ready).
      if (m.type === MessageType.VoteResp && !m.reject) {
        assert.ok(durable.term > m.term || (durable.term === m.term && durable.vote === m.to),
          `${where}: vote granted to ${m.to} in term ${m.term} but durable hard state is ${JSON.stringify(durable)}`);
      }
      if (m.type === MessageType.Vote) {
        assert.ok(durable.term > m.term || (durable.term === m.term && durable.vote === this.id),
          `${where}: Vote request in term ${m.term} before its self-vote was durable (${JSON.stringify(durable)})`);
      }
      if (m.type === MessageType.AppResp && !m.reject) {
        assert.ok(this.storage.lastIndex() >= m.index, `${where}: ${describe_(m)} acknowledges index ${m.index} but only ${this.storage.lastIndex()} is durable`);
      }
    }

    // Rule 4: apply committed entries in order; they must already be durable.
    if (rd.snapshot !== null) {
      this.lastApplied = rd.snapshot.metadata.index;
      this.confState = rd.snapshot.metadata.confState;
    }
    for (const e of rd.committedEntries) {
      assert.equal(e.index, this.lastApplied + 1, `${where}: applied index ${e.index} after ${this.lastApplied}`);
      assert.ok(e.index <= this.storage.lastIndex() && this.storage.term(e.index) === e.term,
        `${where}: committed entry ${e.index}@${e.term} is not in stable storage`);
      this.lastApplied = e.index;
      this.applied.push(e);
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        if (this.deferConfChanges) this.pendingConfChanges.push(cc);
        else this.confState = this.node.applyConfChange(cc);
      }
    }
    this.readStates.push(...rd.readStates);
    this.node.advance(rd);
    return allMessages(rd);
  }

  /** Apply conf changes held back by `deferConfChanges`. */
  applyPendingConfChanges(): void {
    for (const cc of this.pendingConfChanges.splice(0)) this.confState = this.node.applyConfChange(cc);
  }

  /** Handle Readies until none is left; returns all messages produced. */
  drain(): Message[] {
    const out: Message[] = [];
    for (let i = 0; this.node.hasReady(); i++) {
      assert.ok(i < 1000, `node ${this.id}: hasReady() never settles`);
      out.push(...this.handleReady());
    }
    return out;
  }

  /** Applied normal entries with data, decoded as text (the "state machine"). */
  appliedData(): string[] {
    return this.applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0).map((e) => text(e.data));
  }
}

/**
 * Solo helper for white-box paper tests: make `tn` leader of its configuration by campaigning
 * and stepping granted VoteResps from the given voters.
 */
export function makeLeader(tn: TestNode, grantFrom: NodeId[]): Message[] {
  tn.node.campaign();
  const out = tn.drain();
  const term = tn.term;
  for (const id of grantFrom) tn.step(msg({ type: MessageType.VoteResp, from: id, to: tn.id, term }));
  out.push(...tn.drain());
  assert.equal(tn.role, Role.Leader, `node ${tn.id} did not become leader`);
  return out;
}

/** Accept every App in `msgs` on behalf of its recipient, repeatedly, until the leader sends no
 * more Apps (commits the no-op / catches followers up). Returns the final batch of messages. */
export function acceptAll(tn: TestNode, msgs: Message[], from?: NodeId[]): Message[] {
  let pending = msgs;
  for (let round = 0; round < 100; round++) {
    const apps = pending.filter((m) => m.type === MessageType.App && (from === undefined || from.includes(m.to)));
    if (apps.length === 0) return pending;
    for (const m of apps) tn.step(acceptAndReply(m));
    pending = tn.drain();
  }
  assert.fail('acceptAll did not settle');
}

export type Filter = (m: Message) => boolean;

export interface ClusterOptions extends Omit<NodeOptions, 'voters' | 'storage'> {
  learners?: NodeId[];
}

/** A set of TestNodes joined by a deterministic FIFO network. */
export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent but not yet delivered. */
  queue: Message[] = [];
  /** Drop filters: a message is dropped when any returns true. */
  private filters = new Map<number, Filter>();
  private nextFilterId = 1;
  /** Every message handed to the network (delivered or dropped), in order. */
  readonly sent: Message[] = [];
  readonly dropped: Message[] = [];
  /** Ids whose messages are neither delivered nor produced (crashed / stopped). */
  readonly stopped = new Set<NodeId>();
  onDeliver: ((m: Message) => void) | null = null;
  /** Report MsgSnap delivery to the sender like a transport would (reportSnapshot(to, ok)). */
  autoReportSnapshot = false;

  constructor(voters: NodeId[], opts: ClusterOptions = {}) {
    const learners = opts.learners ?? [];
    for (const id of [...voters, ...learners]) {
      this.nodes.set(id, new TestNode(id, { ...opts, voters, learners }));
    }
  }

  add(tn: TestNode): TestNode {
    assert.ok(!this.nodes.has(tn.id), `node ${tn.id} already in the cluster`);
    this.nodes.set(tn.id, tn);
    return tn;
  }

  get(id: NodeId): TestNode {
    const tn = this.nodes.get(id);
    assert.ok(tn !== undefined, `no node ${id}`);
    return tn;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort((a, b) => a - b);
  }

  addFilter(f: Filter): () => void {
    const id = this.nextFilterId++;
    this.filters.set(id, f);
    return () => this.filters.delete(id);
  }
  /** Drop everything to and from `id`. */
  isolate(id: NodeId): () => void {
    return this.addFilter((m) => m.from === id || m.to === id);
  }
  /** Drop messages between the two groups (both directions). */
  partition(a: NodeId[], b: NodeId[]): () => void {
    return this.addFilter((m) => (a.includes(m.from) && b.includes(m.to)) || (b.includes(m.from) && a.includes(m.to)));
  }
  /** Drop messages from `from` to `to` (one direction). */
  cut(from: NodeId, to: NodeId): () => void {
    return this.addFilter((m) => m.from === from && m.to === to);
  }
  heal(): void {
    this.filters.clear();
  }
  /** Crash `id`: it stops ticking, producing and receiving messages. */
  stop(id: NodeId): void {
    this.stopped.add(id);
  }

  /** Restart `id` from what it persisted (its MemoryStorage); unpersisted state is lost. The
   * state machine (applied entries) survives, as if it were persisted with the applied index. */
  restart(id: NodeId): TestNode {
    const old = this.get(id);
    const opts: NodeOptions = { ...old.options };
    delete opts.bootstrap;
    // The runtime persists the ConfState it applied along with the applied index.
    old.storage.setConfState(old.confState);
    const tn = new TestNode(id, { ...opts, storage: old.storage, applied: old.lastApplied });
    tn.applied.push(...old.applied);
    tn.lastApplied = old.lastApplied;
    tn.confState = old.confState;
    this.nodes.set(id, tn);
    this.stopped.delete(id);
    return tn;
  }

  private isDropped(m: Message): boolean {
    if (this.stopped.has(m.to) || this.stopped.has(m.from) || !this.nodes.has(m.to)) return true;
    for (const f of this.filters.values()) if (f(m)) return true;
    return false;
  }

  send(ms: Message[]): void {
    for (const m of ms) {
      this.sent.push(m);
      this.queue.push(m);
    }
  }

  /** Process the Readies of all running nodes (in id order); queue their messages. */
  processReadies(): boolean {
    let any = false;
    for (const id of this.ids()) {
      if (this.stopped.has(id)) continue;
      const tn = this.get(id);
      while (tn.node.hasReady()) {
        any = true;
        this.send(tn.handleReady());
      }
    }
    return any;
  }

  /** Deliver (or drop) the messages queued now; returns how many were delivered. */
  deliverQueued(): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const m of batch) {
      if (this.isDropped(m)) {
        this.dropped.push(m);
        if (this.autoReportSnapshot && m.type === MessageType.Snap) this.reportSnapshot(m, false);
        continue;
      }
      this.onDeliver?.(m);
      this.get(m.to).step(m);
      delivered++;
      if (this.autoReportSnapshot && m.type === MessageType.Snap) this.reportSnapshot(m, true);
    }
    return delivered;
  }

  private reportSnapshot(m: Message, ok: boolean): void {
    const sender = this.nodes.get(m.from);
    if (sender !== undefined && !this.stopped.has(m.from)) sender.node.reportSnapshot(m.to, ok);
  }

  /** Alternate Ready processing and delivery until no Ready and no message remain. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      const readies = this.processReadies();
      if (this.queue.length === 0 && !readies) return;
      this.deliverQueued();
    }
    assert.fail(`cluster did not stabilize in ${maxRounds} rounds (seed ${TEST_SEED})`);
  }

  /** Tick every running node once (or `only` those), stabilizing after each tick, n times. */
  tick(n = 1, only?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of only ?? this.ids()) if (!this.stopped.has(id)) this.get(id).tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  /** Campaign on `id` and assert it won. */
  elect(id: NodeId): void {
    this.campaign(id);
    assert.equal(this.get(id).role, Role.Leader, `node ${id} failed to become leader (seed ${TEST_SEED})`);
  }

  /** The leaders among running nodes. */
  leaders(): TestNode[] {
    return this.ids().filter((id) => !this.stopped.has(id)).map((id) => this.get(id)).filter((tn) => tn.role === Role.Leader);
  }

  /** The leader whose term is the highest term of any running node, if there is one (a stale
   * leader of an older term does not count). */
  currentLeader(): TestNode | undefined {
    const running = this.ids().filter((id) => !this.stopped.has(id)).map((id) => this.get(id));
    const maxTerm = Math.max(...running.map((tn) => tn.term));
    return running.find((tn) => tn.role === Role.Leader && tn.term === maxTerm);
  }

  /** Tick all running nodes until one of `among` leads in the highest term of any running node. */
  tickUntilLeader(among: NodeId[], maxTicks = 200): TestNode {
    for (let i = 0; i < maxTicks; i++) {
      const l = this.currentLeader();
      if (l !== undefined && among.includes(l.id)) return l;
      this.tick(1);
    }
    assert.fail(`no leader among ${among.join(',')} after ${maxTicks} ticks (seed ${TEST_SEED})`);
  }

  propose(id: NodeId, data: string): void {
    this.get(id).node.propose(bytes(data));
    this.stabilize();
  }

  proposeConfChange(id: NodeId, cc: ConfChange): void {
    this.get(id).node.proposeConfChange(cc);
    this.stabilize();
  }

  /** Snapshot `id`'s applied state at its applied index and compact its log up to there. */
  compact(id: NodeId, index?: number): Snapshot {
    const tn = this.get(id);
    const at = index ?? tn.lastApplied;
    const snap = tn.storage.createSnapshot(at, tn.confState, bytes(`snapshot of ${id} at ${at}`));
    tn.storage.compact(at);
    return snap;
  }

  /** Assert all given nodes hold identical stable logs from `from` on. */
  assertLogsEqual(ids: NodeId[], from = 1): void {
    const first = this.get(ids[0]!);
    const view = (tn: TestNode): string[] =>
      tn.logEntries().filter((e) => e.index >= from).map((e) => `${e.index}@${e.term}:${text(e.data)}`);
    for (const id of ids.slice(1)) {
      assert.deepEqual(view(this.get(id)), view(first), `logs of ${first.id} and ${id} differ (seed ${TEST_SEED})`);
    }
  }
}

export { encodeConfChange, NONE };
