/**
 * One simulated server: the production Ready pass (src/node/runtime.ts, NodeRuntime) over a
 * simulated disk, the simulated network and a virtual clock, with a chain-hash state machine.
 *
 * The runtime is asynchronous; here every promise it waits on is settled by a simulator step:
 *
 *   pass:     run the Ready pass the runtime scheduled (clock.schedulePass);
 *   durable:  the oldest queued disk write becomes durable (FIFO, as a sequential WAL);
 *   complete: the oldest durable write reports completion (its promise resolves), and the
 *             runtime goes on (publishes: sends messages, applies, advances, snapshots);
 *   timer:    a virtual-clock timer (one step = one millisecond) is due.
 *
 * After each step the simulator drains the microtask queue, so the runtime runs until it waits
 * on the disk again. A crash between `durable` and `complete` is a crash between persisting and
 * publishing; a crash before `durable` loses the write (the leader's parallel appends may
 * already be on the wire).
 *
 * Durability model: `storage` (a MemoryStorage) IS the disk, changed only by `durable` steps.
 * A hard-state write with mustSync=false (only the commit moved) is not synced: a crash loses
 * it with probability 1/2 unless a later synced write (entries, vote/term, snapshot) flushed it,
 * as with a sequential WAL. A crash also loses everything volatile: the runtime (its RawNode,
 * its in-memory log, an unfinished Ready, pending timers), the state machine, pending reads.
 *
 * Restart replays the disk into a new runtime (as NodeStorage.open does): the snapshot, the
 * hard state and the entries after the snapshot; the state machine is the snapshot's state,
 * and committed entries after it are applied again.
 *
 * The state machine is a chain hash over the applied entries (see hash.ts): two replicas have
 * the same state iff they have the same (applied index, chain).
 */
import {
  MemoryStorage,
  ProposalDroppedError,
  type RawNode,
} from '../../src/raft/index.js';
import {
  MessageType,
  Role,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
} from '../../src/raft/types.js';
import { decodeSnapshotData } from '../../src/node/envelope.js';
import { SILENT_LOGGER, type AppliedEntry, type StateMachine } from '../../src/node/options.js';
import { NodeRuntime, type AppliedOutcome, type RuntimeHooks, type RuntimeRaftConfig } from '../../src/node/runtime.js';
import type {
  RuntimeClock,
  RuntimeStorage,
  RuntimeTimer,
  RuntimeTransport,
} from '../../src/node/runtime-io.js';
import type { Replay } from '../../src/node/storage.js';
import { violation, type Checker, type LogMirror, type PendingRead } from './checker.js';
import { chainHash } from './hash.js';
import type { SimRandom } from './prng.js';
import type { Trace } from './trace.js';

export type HostState = 'running' | 'down' | 'retired';

/**
 * Deliberate harness bugs (never used by CI seeds except to show they are caught):
 * - forget-vote: a crash loses the persisted vote (vote amnesia → two leaders in a term);
 * - lose-acked-entries: a crash loses the entries of the last append above the durable
 *   commit index, although they may have been acknowledged (an fsync that lied).
 */
export type Mutation = 'none' | 'forget-vote' | 'lose-acked-entries';

export interface HostEnvironment {
  readonly trace: Trace;
  readonly checker: Checker;
  readonly random: SimRandom;
  /** The current step: the virtual clock, in milliseconds. */
  readonly now: number;
  /** Per-seed knobs. */
  readonly snapshotEvery: number;
  readonly compactKeep: number;
  /** A deliberate durability bug in this harness, to prove the checker catches such bugs. */
  readonly mutation: Mutation;
  raftSettings(): RuntimeRaftConfig;
  send(sender: NodeId, message: Message): void;
  /** This host just sent a granted vote (the simulator may reboot it soon: BUGGIFY). */
  voteGranted(host: NodeHost): void;
  /** A ConfChange was applied by this host; `cs` is the resulting membership. */
  confApplied(host: NodeHost, index: number, cs: ConfState): void;
}

const FORWARDED_TYPES = new Set<MessageType>([
  MessageType.Prop,
  MessageType.ReadIndex,
  MessageType.TransferLeader,
]);

/** One queued disk write: `apply` makes it durable, then `resolve` reports completion. */
interface DiskWrite {
  what: string;
  apply: () => void;
  resolve: () => void;
}

interface VirtualTimer {
  at: number;
  fire: () => void;
  cancelled: boolean;
}

type StepKind = 'pass' | 'durable' | 'complete' | 'timer';

export class NodeHost implements LogMirror {
  state: HostState = 'down';
  runtime: NodeRuntime<void> | null = null;
  /** The disk: durable state only. */
  storage = new MemoryStorage();
  /** First index of the entries written by the last durable append (lose-acked-entries). */
  private lastAppendFrom = 0;
  /** The hard state known to be on disk after a crash (the last synced one). */
  private syncedHardState: HardState = { term: 0, vote: 0, commit: 0 };
  private hardStateUnsynced = false;
  /** The last hard state handed to the disk by this incarnation. */
  private lastHardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** Leader completeness is checked once the Ready that made this host leader is durable. */
  private leaderCheckTerm = 0;
  /** Disk writes in call order; the first `durableWrites` of them are durable. */
  private readonly writes: DiskWrite[] = [];
  private durableWrites = 0;
  /** The Ready pass the runtime scheduled, not yet run. */
  private scheduledPass: (() => void) | null = null;
  private timers: VirtualTimer[] = [];
  /** The runtime reported a fatal error (a violation thrown inside the pass, or a core error). */
  private failure: Error | null = null;
  incarnation = 0;
  /** Step at which this host last sent a granted VoteResp (crash targeting). */
  lastVoteGrantStep = -1;

  // Volatile state machine.
  smApplied = 0;
  smChain = 0;

  // What the host last learned from Ready.softState.
  role: Role = Role.Follower;
  leader: NodeId = 0;

  // LogMirror: the checker's view of the durable log.
  chain: number[] = [0];
  terms: number[] = [0];
  writeId: number[] = [0];
  logFirst = 0;
  logLast = 0;

  private readonly reads: PendingRead[] = [];
  private readonly readIndexes: number[] = [];

  constructor(
    readonly id: NodeId,
    private readonly env: HostEnvironment,
  ) {}

  get raw(): RawNode | null {
    return this.runtime?.rawNode ?? null;
  }

  get term(): number {
    return this.runtime?.term ?? this.lastHardState.term;
  }

  /** Between taking a Ready and finishing it (a write pending, or durable but not published). */
  get midReady(): string {
    if (this.writes.length > this.durableWrites) return 'write pending, not yet durable';
    if (this.durableWrites > 0) return 'write durable, not yet published';
    return '';
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Starts a brand-new member: bootstrap with `peers`, or empty (to be added by a leader). */
  startFresh(peers: NodeId[] | null): void {
    this.bootstrapPeers = peers;
    this.start();
  }

  /** Original members keep their peer list: like raftexample, a node that finds no durable
   * state at startup (it crashed before its bootstrap Ready was written) bootstraps again. */
  private bootstrapPeers: NodeId[] | null = null;

  /** (Re)starts from durable storage only, as RaftNode.start does from NodeStorage's replay. */
  start(): void {
    if (this.state === 'retired') throw new Error(`n${this.id} is retired`);
    const snap = this.storage.snapshot();
    const snapIndex = snap.metadata.index;
    if (snapIndex > 0) {
      const { index, chain } = decodeState(decodeSnapshotData(snap.data).stateMachine);
      if (index !== snapIndex) {
        violation(`n${this.id} snapshot data is for index ${index} but metadata says ${snapIndex}`);
      }
      this.env.checker.onRestore(this.id, index, chain);
      this.smApplied = index;
      this.smChain = chain;
    } else {
      this.smApplied = 0;
      this.smChain = 0;
    }
    const hs = this.storage.initialState().hardState;
    this.lastHardState = hs;
    this.role = Role.Follower;
    this.leader = 0;
    this.incarnation++;
    this.failure = null;
    const from = Math.max(this.storage.firstIndex(), snapIndex + 1);
    const last = this.storage.lastIndex();
    const replay: Replay = {
      snapshot: snapIndex > 0 ? snap : null,
      hardState: hs,
      entries: last >= from ? this.storage.entries(from, last + 1, Number.MAX_SAFE_INTEGER) : [],
    };
    const runtime = new NodeRuntime<void>({
      id: this.id,
      replay,
      peerUrls: new Map(),
      removedIds: new Set(),
      raft: this.env.raftSettings(),
      random: this.env.random,
      incarnation: this.incarnation,
      storage: this.diskFor(),
      transport: this.transportFor(),
      clock: this.clockFor(),
      stateMachine: this.stateMachineFor(),
      hooks: this.hooksFor(),
      logger: SILENT_LOGGER,
      snapshotCount: this.env.snapshotEvery,
      snapshotCatchUpEntries: this.env.compactKeep,
      commitNotifyDelayMs: 0,
      onPassStart: null,
      tracer: null,
    });
    this.runtime = runtime;
    // The core must come back with exactly the durable term and vote (a forgotten vote allows
    // two leaders in one term, which needs a rare schedule to show up otherwise).
    const st = runtime.rawNode.status();
    if (st.term !== hs.term || st.vote !== hs.vote || st.commit < hs.commit) {
      violation(`n${this.id} restarted with term/vote/commit ${st.term}/${st.vote}/${st.commit} but ` +
        `storage holds ${hs.term}/${hs.vote}/${hs.commit}`);
    }
    this.state = 'running';
    const empty = hs.term === 0 && this.storage.lastIndex() === 0 && snapIndex === 0;
    if (empty && this.bootstrapPeers !== null) {
      runtime.rawNode.bootstrap(this.bootstrapPeers);
      if (this.incarnation > 1) this.env.trace.add('bootstrap', this.id, null, 'no durable state: bootstrapping again');
    }
    runtime.schedule();
  }

  crash(): void {
    this.state = 'down';
    // The process is gone: its runtime, pending writes, scheduled pass and timers with it. The
    // promises it waits on are never settled, so none of its code runs again.
    this.runtime?.halt();
    this.runtime = null;
    if (this.writes.length > this.durableWrites) {
      this.env.trace.add('lost-write', this.id, null, 'crashed before the pending write was durable');
    }
    this.writes.length = 0;
    this.durableWrites = 0;
    this.scheduledPass = null;
    this.timers = [];
    this.leaderCheckTerm = 0;
    this.reads.length = 0;
    this.readIndexes.length = 0;
    this.role = Role.Follower;
    this.leader = 0;
    if (this.hardStateUnsynced && this.env.random.chance(0.5)) {
      this.storage.setHardState(this.syncedHardState);
      this.env.trace.add('lost-write', this.id, null, `unsynced commit lost; commit back to ${this.syncedHardState.commit}`);
    }
    this.hardStateUnsynced = false;
    this.lastHardState = this.storage.initialState().hardState;
    if (this.env.mutation === 'forget-vote') {
      const hs = this.storage.initialState().hardState;
      if (hs.vote !== 0) this.storage.setHardState({ ...hs, vote: 0 });
    } else if (this.env.mutation === 'lose-acked-entries' && this.lastAppendFrom > 0) {
      this.loseTail(this.lastAppendFrom - 1);
    }
    this.lastAppendFrom = 0;
  }

  /** Mutation helper: rebuilds the durable log without the entries after `keep`. */
  private loseTail(keep: number): void {
    const hs = this.storage.initialState().hardState;
    const cut = Math.max(keep, hs.commit, this.storage.firstIndex() - 1);
    if (cut >= this.storage.lastIndex()) return;
    const rebuilt = new MemoryStorage();
    const snap = this.storage.snapshot();
    if (snap.metadata.index > 0) rebuilt.applySnapshot(snap);
    else rebuilt.setConfState(snap.metadata.confState);
    if (cut >= this.storage.firstIndex()) {
      rebuilt.append(this.storage.entries(this.storage.firstIndex(), cut + 1, Number.MAX_SAFE_INTEGER));
    }
    rebuilt.setHardState(hs);
    this.storage = rebuilt;
    this.logLast = cut;
    this.env.trace.add('lost-write', this.id, null, `MUTATION: log cut back to ${cut}`);
  }

  retire(): void {
    this.crash();
    this.state = 'retired';
  }

  private steps(): StepKind[] {
    const kinds: StepKind[] = [];
    if (this.state !== 'running') return kinds;
    if (this.scheduledPass !== null) kinds.push('pass');
    if (this.writes.length > this.durableWrites) kinds.push('durable');
    if (this.durableWrites > 0) kinds.push('complete');
    if (this.timers.some((t) => t.at <= this.env.now)) kinds.push('timer');
    return kinds;
  }

  /** True if a step can run now. */
  hasWork(): boolean {
    return this.steps().length > 0;
  }

  /**
   * Runs one step (chosen at random among those possible); returns false if there was nothing
   * to do. The caller must then drain the microtask queue and call checkFailure().
   */
  processNext(): boolean {
    const kinds = this.steps();
    if (kinds.length === 0) return false;
    const kind = kinds.length === 1 ? kinds[0] as StepKind : this.env.random.pick(kinds);
    switch (kind) {
      case 'pass': {
        const pass = this.scheduledPass as () => void;
        this.scheduledPass = null;
        pass();
        break;
      }
      case 'durable': {
        const w = this.writes[this.durableWrites] as DiskWrite;
        this.durableWrites++;
        this.env.trace.add('durable', this.id, null, w.what);
        w.apply();
        break;
      }
      case 'complete': {
        const w = this.writes.shift() as DiskWrite;
        this.durableWrites--;
        this.env.trace.add('publish', this.id, null, `${w.what} completed`);
        w.resolve();
        break;
      }
      case 'timer': {
        const i = this.timers.findIndex((t) => t.at <= this.env.now);
        const [t] = this.timers.splice(i, 1);
        if (!t!.cancelled) t!.fire();
        break;
      }
    }
    return true;
  }

  /** Rethrows what the runtime reported as fatal (a violation found inside its pass). */
  checkFailure(): void {
    if (this.failure !== null) throw this.failure;
  }

  // ---------------------------------------------------------------- the runtime's seams

  private queueWrite(what: string, apply: () => void): Promise<void> {
    return new Promise<void>((resolve) => this.writes.push({ what, apply, resolve }));
  }

  private diskFor(): RuntimeStorage {
    return {
      save: (hs, entries, mustSync) => this.save(hs, entries, mustSync),
      saveSnapshot: (snap) => this.queueWrite(`snapshot ${snap.metadata.index}@${snap.metadata.term}`,
        () => this.persistSnapshot(snap)),
      releaseTo: (index) => this.queueWrite(`release to ${index}`, () => this.release(index)),
    };
  }

  private transportFor(): RuntimeTransport {
    return {
      send: (messages) => {
        for (const m of messages) this.sendOne(m);
      },
      flushNow: () => {},
      setMembers: () => {},
    };
  }

  private clockFor(): RuntimeClock {
    return {
      schedulePass: (pass) => {
        if (this.scheduledPass !== null) violation(`n${this.id} runtime scheduled a second pass before the first ran`);
        this.scheduledPass = pass;
      },
      setTimer: (fire, ms): RuntimeTimer => {
        const timer: VirtualTimer = { at: this.env.now + ms, fire, cancelled: false };
        this.timers.push(timer);
        return { cancel: () => void (timer.cancelled = true) };
      },
    };
  }

  private stateMachineFor(): StateMachine<void> {
    // The chain is folded in entryApplied (every entry, ConfChange and empty ones too); the
    // runtime hands only normal entries with data to apply().
    return {
      apply: (_entry: AppliedEntry) => undefined,
      snapshot: () => {
        if (this.runtime !== null && this.smApplied !== this.runtime.appliedIndex) {
          violation(`n${this.id} snapshot at applied ${this.runtime.appliedIndex} but the state machine is at ${this.smApplied}`);
        }
        return encodeState(this.smApplied, this.smChain);
      },
      restore: (data) => this.restore(data),
    };
  }

  private hooksFor(): RuntimeHooks<void> {
    return {
      feedCore: () => {},
      hasQueuedInput: () => false,
      softStateChanged: (ss) => this.onSoftState(ss),
      entriesAppended: () => {},
      readStateReady: (rs) => this.onReadState(rs),
      entryApplied: (entry, _ownSeq, outcome) => this.onApplied(entry, outcome),
      snapshotInstalled: () => {},
      appliedAdvanced: () => this.serveReads(),
      fatal: (error) => {
        this.failure ??= error;
        this.runtime?.halt();
      },
    };
  }

  // ---------------------------------------------------------------- disk

  private save(hs: HardState | null, entries: Entry[], mustSync: boolean): Promise<void> {
    // The Ready's own invariants, checked when the runtime hands it to the disk.
    const prev = this.lastHardState;
    if (hs !== null) {
      const termOrVoteChanged = hs.term !== prev.term || hs.vote !== prev.vote;
      if (termOrVoteChanged && !mustSync) {
        violation(`n${this.id} Ready changed term/vote (${prev.term}/${prev.vote} -> ${hs.term}/${hs.vote}) with mustSync=false`);
      }
      if (hs.term < prev.term) violation(`n${this.id} term went backwards ${prev.term} -> ${hs.term}`);
      if (hs.commit < prev.commit) violation(`n${this.id} commit went backwards ${prev.commit} -> ${hs.commit}`);
      if (hs.term === prev.term && prev.vote !== 0 && hs.vote !== prev.vote) {
        violation(`n${this.id} changed its vote in term ${hs.term} from n${prev.vote} to n${hs.vote}`);
      }
      this.lastHardState = hs;
    }
    if (entries.length > 0 && !mustSync) violation(`n${this.id} Ready has entries with mustSync=false`);
    const leaderCheckTerm = this.leaderCheckTerm;
    this.leaderCheckTerm = 0;
    return this.queueWrite(describeWrite(hs, entries, mustSync), () => {
      const { checker } = this.env;
      const prevCommit = this.storage.initialState().hardState.commit;
      if (entries.length > 0) {
        this.lastAppendFrom = (entries[0] as Entry).index;
        this.storage.append(entries);
        checker.onPersistEntries(this.mirror(), entries);
      }
      if (hs !== null) this.storage.setHardState(hs);
      if (mustSync) {
        this.syncedHardState = this.storage.initialState().hardState;
        this.hardStateUnsynced = false;
      } else if (hs !== null) {
        this.hardStateUnsynced = true;
      }
      if (hs !== null && hs.commit > prevCommit) checker.onCommitAdvance(this.mirror(), prevCommit, hs.commit, hs.term);
      if (leaderCheckTerm !== 0) checker.checkLeaderCompleteness(this.mirror(), leaderCheckTerm);
    });
  }

  /** A leader's snapshot replaces the log; our own (the log holds its index) keeps the tail. */
  private persistSnapshot(snap: Snapshot): void {
    const { index, term } = snap.metadata;
    if (index <= this.storage.snapshot().metadata.index) return; // older than the durable one
    const ours = index <= this.storage.lastIndex() && index >= this.storage.firstIndex() &&
      this.storage.term(index) === term;
    if (ours) {
      this.storage.createSnapshot(index, snap.metadata.confState, snap.data);
    } else {
      this.storage.applySnapshot(snap);
      this.env.checker.onPersistSnapshot(this.mirror(), snap);
    }
    // A snapshot save is synced and flushes earlier unsynced hard-state writes.
    this.syncedHardState = this.storage.initialState().hardState;
    this.hardStateUnsynced = false;
  }

  /** Log compaction behind a durable snapshot, keeping compactKeep entries. */
  private release(index: number): void {
    const compactTo = Math.min(index, this.storage.snapshot().metadata.index) - this.env.compactKeep;
    if (compactTo > this.storage.firstIndex() - 1 && compactTo <= this.storage.lastIndex()) {
      this.storage.compact(compactTo);
      this.env.checker.onCompact(this.mirror(), compactTo);
      this.env.trace.add('snapshot', this.id, null, `released up to ${index}, compacted to ${compactTo}`);
    }
  }

  // ---------------------------------------------------------------- network

  private sendOne(m: Message): void {
    // Forwarded proposals / read requests / transfer requests keep their origin as `from`.
    if (m.from !== this.id && !FORWARDED_TYPES.has(m.type)) {
      violation(`n${this.id} emitted ${MessageType[m.type]} with from=n${m.from}`);
    }
    this.checkDurableBeforeSend(m);
    if (m.type === MessageType.VoteResp && !m.reject) {
      this.lastVoteGrantStep = this.env.trace.step;
      this.env.voteGranted(this);
    }
    this.env.send(this.id, m);
  }

  private checkDurableBeforeSend(m: Message): void {
    const synced = this.syncedHardState;
    if (m.type === MessageType.VoteResp && !m.reject) {
      // Either that vote is durable, or a later term is (then no other vote in m.term can follow).
      if (synced.term < m.term || (synced.term === m.term && synced.vote !== m.to)) {
        violation(`n${this.id} granted its vote to n${m.to} in term ${m.term} before that vote ` +
          `was durable (durable term/vote ${synced.term}/${synced.vote})`);
      }
    }
    if (m.type === MessageType.AppResp && !m.reject && m.term === this.term && m.index > this.logLast) {
      violation(`n${this.id} acknowledged index ${m.index} but its durable log ends at ${this.logLast}`);
    }
  }

  // ---------------------------------------------------------------- state machine and reads

  private onSoftState(ss: SoftState): void {
    this.role = ss.role;
    this.leader = ss.leader;
    if (ss.role === Role.Leader) {
      const term = (this.runtime as NodeRuntime<void>).term;
      this.env.checker.onLeader(term, this.id, 'Ready.softState');
      this.leaderCheckTerm = term;
    }
  }

  private onApplied(e: Entry, outcome: AppliedOutcome<void>): void {
    if (e.index !== this.smApplied + 1) {
      violation(`n${this.id} asked to apply entry ${e.index} with applied = ${this.smApplied}` +
        (e.index <= this.smApplied ? ' (applied would go backwards)' : ' (gap)'));
    }
    const chain = chainHash(this.smChain, e);
    this.env.checker.onApply(this.id, e, chain);
    this.smApplied = e.index;
    this.smChain = chain;
    if (outcome.kind === 'conf-change') {
      this.env.checker.onConfApplied(this.id, e.index, outcome.confState);
      this.env.confApplied(this, e.index, outcome.confState);
    } else if (outcome.kind === 'conf-change-refused') {
      this.env.trace.add('conf-refused', this.id, null, `index ${e.index}: ${outcome.reason}`);
    }
  }

  private restore(data: Uint8Array): void {
    const { index, chain } = decodeState(data);
    if (index <= this.smApplied) {
      violation(`n${this.id} applied went backwards: snapshot at ${index} while applied = ${this.smApplied}`);
    }
    this.env.checker.onRestore(this.id, index, chain);
    this.smApplied = index;
    this.smChain = chain;
    this.env.trace.add('restore', this.id, null, `state machine <- snapshot ${index}`);
  }

  private onReadState(rs: ReadState): void {
    const readId = decodeReadId(rs.context);
    const read = this.env.checker.onReadState(this.id, readId, rs.index);
    if (read !== null) {
      this.env.trace.add('read-state', this.id, null, `read ${readId} at index ${rs.index} (needs >= ${read.minIndex})`);
      this.reads.push(read);
      this.readIndexes.push(rs.index);
      this.serveReads();
    }
  }

  private serveReads(): void {
    if (this.reads.length === 0) return;
    for (let i = 0; i < this.reads.length; ) {
      if ((this.readIndexes[i] as number) <= this.smApplied) {
        const read = this.reads[i] as PendingRead;
        this.env.checker.onReadServed(read, this.smApplied);
        this.env.trace.add('read-served', this.id, null, `read ${read.readId} at applied ${this.smApplied}`);
        this.reads.splice(i, 1);
        this.readIndexes.splice(i, 1);
      } else {
        i++;
      }
    }
  }

  /** Calls `fn` on the RawNode, turning a ProposalDroppedError into a trace line, and
   * schedules a pass (as every RaftNode input does). */
  tryInput(what: string, fn: (raw: RawNode) => void): boolean {
    const runtime = this.runtime as NodeRuntime<void>;
    try {
      fn(runtime.rawNode);
      return true;
    } catch (err) {
      if (err instanceof ProposalDroppedError) {
        this.env.trace.add('dropped', this.id, null, `${what}: ${err.reason}`);
        return false;
      }
      throw err;
    } finally {
      runtime.schedule();
    }
  }

  private mirror(): LogMirror {
    return this;
  }
}

function describeWrite(hs: HardState | null, entries: Entry[], mustSync: boolean): string {
  const parts: string[] = [];
  if (hs !== null) parts.push(`hs=${hs.term}/${hs.vote}/${hs.commit}`);
  if (entries.length > 0) parts.push(`ents=[${entries[0]!.index}..${entries[entries.length - 1]!.index}]`);
  if (mustSync) parts.push('sync');
  return parts.join(' ');
}

/** State-machine snapshot bytes: applied index and chain hash, two float64s. */
export function encodeState(index: number, chain: number): Uint8Array {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  view.setFloat64(0, index, true);
  view.setFloat64(8, chain, true);
  return out;
}

export function decodeState(data: Uint8Array): { index: number; chain: number } {
  if (data.length !== 16) violation(`state-machine snapshot has ${data.length} bytes, expected 16`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { index: view.getFloat64(0, true), chain: view.getFloat64(8, true) };
}

export function encodeReadId(readId: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, readId, true);
  return out;
}

export function decodeReadId(ctx: Uint8Array): number {
  if (ctx.length !== 8) violation(`read state context has ${ctx.length} bytes, expected 8`);
  return new DataView(ctx.buffer, ctx.byteOffset, 8).getFloat64(0, true);
}
