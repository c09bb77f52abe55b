/**
 * One simulated server: a RawNode, its durable storage and its state machine, driven through
 * the Ready protocol in two separately scheduled phases so the simulator can crash a node
 * between them:
 *
 *   persist (phase A): take ready(); send parallelMessages (before or after the write, at
 *     random); make snapshot, entries and hard state durable.
 *   publish (phase B): send messages; restore/apply to the state machine; serve reads;
 *     advance(); maybe snapshot + compact.
 *
 * Durability model: `storage` (a MemoryStorage) IS the durable state, written only in phase A.
 * A hard-state write with mustSync=false (only the commit moved) is not synced: a crash loses
 * it with probability 1/2 unless a later synced write (entries, vote/term, snapshot) flushed it,
 * as with a sequential WAL. A crash also loses everything volatile: the RawNode, an unfinished
 * Ready (its messages are never sent), the state machine, pending reads.
 *
 * Restart builds a new RawNode over the same storage with applied = the snapshot index; the
 * state machine is the snapshot's state, and committed entries after it are applied again.
 *
 * The state machine is a chain hash over the applied entries (see hash.ts): two replicas have
 * the same state iff they have the same (applied index, chain).
 */
import {
  MemoryStorage,
  ProposalDroppedError,
  RawNode,
  decodeConfChange,
  type RaftConfig,
} from '../../src/raft/index.js';
import {
  EntryType,
  MessageType,
  Role,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
} from '../../src/raft/types.js';
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
  /** Per-seed knobs. */
  readonly snapshotEvery: number;
  readonly compactKeep: number;
  /** A deliberate durability bug in this harness, to prove the checker catches such bugs. */
  readonly mutation: Mutation;
  raftConfig(id: NodeId, storage: MemoryStorage, applied: number): RaftConfig;
  send(sender: NodeId, message: Message): void;
  /** This host just sent a granted vote (the simulator may reboot it soon: BUGGIFY). */
  voteGranted(host: NodeHost): void;
  /** A ConfChange was applied by this host; `cs` is the resulting membership. */
  confApplied(host: NodeHost, index: number, cs: ConfState): void;
}

const PARALLEL_TYPES = new Set<MessageType>([
  MessageType.App,
  MessageType.Heartbeat,
  MessageType.Snap,
  MessageType.TimeoutNow,
]);

interface TakenReady {
  rd: Ready;
  becameLeader: boolean;
  newTerm: number;
  parallelSent: boolean;
}

const FORWARDED_TYPES = new Set<MessageType>([
  MessageType.Prop,
  MessageType.ReadIndex,
  MessageType.TransferLeader,
]);

const EMPTY_CONF: ConfState = { voters: [], learners: [] };

export class NodeHost implements LogMirror {
  state: HostState = 'down';
  raw: RawNode | null = null;
  storage = new MemoryStorage();
  /** First index of the entries written by the last persist phase (lose-acked-entries). */
  private lastAppendFrom = 0;
  /** The hard state known to be on disk after a crash (the last synced one). */
  private syncedHardState: HardState = { term: 0, vote: 0, commit: 0 };
  private hardStateUnsynced = false;
  /** Hard state as of the last persisted Ready of this incarnation. */
  private lastHardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** A Ready whose persist phase is done and whose publish phase is pending. */
  inProgress: Ready | null = null;
  /** A Ready taken whose parallel messages went out but whose write is not durable yet. */
  private taken: TakenReady | null = null;
  /** Set on any input; cleared once hasReady() says there is nothing. */
  maybeReady = false;
  incarnation = 0;
  /** Step at which this host last sent a granted VoteResp (crash targeting). */
  lastVoteGrantStep = -1;

  // Volatile state machine.
  smApplied = 0;
  smChain = 0;
  smConf: ConfState = EMPTY_CONF;
  private lastSnapshotIndex = 0;

  // What the host last learned from Ready.softState / hardState.
  role: Role = Role.Follower;
  leader: NodeId = 0;
  term = 0;

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

  /** Between taking a Ready and finishing it (write pending, or messages not yet sent). */
  get midReady(): string {
    if (this.taken !== null) return 'parallel messages sent, write pending';
    if (this.inProgress !== null) return 'between persist and send';
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

  /** (Re)starts from durable storage only. */
  start(): void {
    if (this.state === 'retired') throw new Error(`n${this.id} is retired`);
    const snap = this.storage.snapshot();
    if (snap.metadata.index > 0) {
      const { index, chain } = decodeState(snap.data);
      if (index !== snap.metadata.index) {
        violation(`n${this.id} snapshot data is for index ${index} but metadata says ${snap.metadata.index}`);
      }
      this.env.checker.onRestore(this.id, index, chain);
      this.smApplied = index;
      this.smChain = chain;
      this.smConf = snap.metadata.confState;
    } else {
      this.smApplied = 0;
      this.smChain = 0;
      this.smConf = EMPTY_CONF;
    }
    this.lastSnapshotIndex = snap.metadata.index;
    const hs = this.storage.initialState().hardState;
    this.lastHardState = hs;
    this.term = hs.term;
    this.role = Role.Follower;
    this.leader = 0;
    this.incarnation++;
    this.raw = new RawNode(this.env.raftConfig(this.id, this.storage, this.smApplied));
    // The core must come back with exactly the durable term and vote (a forgotten vote allows
    // two leaders in one term, which needs a rare schedule to show up otherwise).
    const st = this.raw.status();
    if (st.term !== hs.term || st.vote !== hs.vote || st.commit < hs.commit) {
      violation(`n${this.id} restarted with term/vote/commit ${st.term}/${st.vote}/${st.commit} but ` +
        `storage holds ${hs.term}/${hs.vote}/${hs.commit}`);
    }
    this.state = 'running';
    this.inProgress = null;
    this.taken = null;
    const empty = hs.term === 0 && this.storage.lastIndex() === 0 && snap.metadata.index === 0;
    if (empty && this.bootstrapPeers !== null) {
      this.raw.bootstrap(this.bootstrapPeers);
      if (this.incarnation > 1) this.env.trace.add('bootstrap', this.id, null, 'no durable state: bootstrapping again');
    }
    this.maybeReady = true;
  }

  crash(): void {
    this.state = 'down';
    this.raw = null;
    this.inProgress = null;
    if (this.taken !== null) this.env.trace.add('lost-write', this.id, null, 'crashed before the pending write was durable');
    this.taken = null;
    this.maybeReady = false;
    this.reads.length = 0;
    this.readIndexes.length = 0;
    this.role = Role.Follower;
    this.leader = 0;
    if (this.hardStateUnsynced && this.env.random.chance(0.5)) {
      this.storage.setHardState(this.syncedHardState);
      this.env.trace.add('lost-write', this.id, null, `unsynced commit lost; commit back to ${this.syncedHardState.commit}`);
    }
    this.hardStateUnsynced = false;
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

  /** True if a persist or publish phase can run now. */
  hasWork(): boolean {
    if (this.state !== 'running') return false;
    if (this.inProgress !== null || this.taken !== null) return true;
    if (!this.maybeReady) return false;
    if ((this.raw as RawNode).hasReady()) return true;
    this.maybeReady = false;
    return false;
  }

  /** Runs the next phase; returns false if there was nothing to do. */
  processNext(): boolean {
    if (this.inProgress !== null) {
      this.publish();
      return true;
    }
    if (this.taken !== null) {
      this.write(this.taken);
      return true;
    }
    if (this.hasWork()) {
      this.persist();
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- phase A: persist

  private persist(): void {
    const raw = this.raw as RawNode;
    const rd = raw.ready();
    const { trace, checker, random } = this.env;
    trace.add('persist', this.id, null, describeReady(rd));
    let becameLeader = false;
    if (rd.softState !== null) {
      this.role = rd.softState.role;
      this.leader = rd.softState.leader;
      becameLeader = rd.softState.role === Role.Leader;
    }
    const newTerm = rd.hardState !== null ? rd.hardState.term : this.term;
    if (becameLeader) checker.onLeader(newTerm, this.id, 'Ready.softState');

    for (const m of rd.parallelMessages) {
      if (!PARALLEL_TYPES.has(m.type)) {
        violation(`n${this.id} put ${MessageType[m.type]} in parallelMessages (may be sent before persisting)`);
      }
      if (m.from !== this.id) violation(`n${this.id} emitted a message from n${m.from}`);
    }
    const taken: TakenReady = { rd, becameLeader, newTerm, parallelSent: false };
    if (rd.parallelMessages.length > 0 && random.chance(0.5)) {
      for (const m of rd.parallelMessages) this.env.send(this.id, m);
      taken.parallelSent = true;
      if (random.chance(0.5)) {
        // The disk write completes in a later step: a crash in between loses it although the
        // leader's appends are already on the wire.
        this.taken = taken;
        trace.add('write-pending', this.id, null, 'parallel messages sent, write not yet durable');
        return;
      }
    }
    this.write(taken);
  }

  /** The durable write of a taken Ready (snapshot, entries, hard state), then phase B is due. */
  private write(taken: TakenReady): void {
    const { rd, becameLeader, newTerm } = taken;
    const { checker } = this.env;
    this.taken = null;
    // Everything below is one durable write, synced if mustSync or a snapshot is involved.
    const prev = this.lastHardState;
    if (rd.hardState !== null) {
      const hs = rd.hardState;
      const termOrVoteChanged = hs.term !== prev.term || hs.vote !== prev.vote;
      if (termOrVoteChanged && !rd.mustSync) {
        violation(`n${this.id} Ready changed term/vote (${prev.term}/${prev.vote} -> ${hs.term}/${hs.vote}) with mustSync=false`);
      }
      if (hs.term < prev.term) violation(`n${this.id} term went backwards ${prev.term} -> ${hs.term}`);
      if (hs.commit < prev.commit) violation(`n${this.id} commit went backwards ${prev.commit} -> ${hs.commit}`);
      if (hs.term === prev.term && prev.vote !== 0 && hs.vote !== prev.vote) {
        violation(`n${this.id} changed its vote in term ${hs.term} from n${prev.vote} to n${hs.vote}`);
      }
    }
    if (rd.entries.length > 0 && !rd.mustSync) violation(`n${this.id} Ready has entries with mustSync=false`);

    if (rd.snapshot !== null) {
      this.storage.applySnapshot(rd.snapshot);
      checker.onPersistSnapshot(this.mirror(), rd.snapshot);
    }
    if (rd.entries.length > 0) {
      this.lastAppendFrom = (rd.entries[0] as Entry).index;
      this.storage.append(rd.entries);
      checker.onPersistEntries(this.mirror(), rd.entries);
    }
    if (rd.hardState !== null) {
      this.storage.setHardState(rd.hardState);
      this.lastHardState = rd.hardState;
      this.term = rd.hardState.term;
    }
    const synced = rd.mustSync || rd.snapshot !== null;
    if (synced) {
      this.syncedHardState = this.storage.initialState().hardState;
      this.hardStateUnsynced = false;
    } else if (rd.hardState !== null) {
      this.hardStateUnsynced = true;
    }
    if (rd.hardState !== null && rd.hardState.commit > prev.commit) {
      checker.onCommitAdvance(this.mirror(), prev.commit, rd.hardState.commit, rd.hardState.term);
    }
    if (becameLeader) checker.checkLeaderCompleteness(this.mirror(), newTerm);

    if (!taken.parallelSent) for (const m of rd.parallelMessages) this.env.send(this.id, m);
    this.inProgress = rd;
  }

  // ---------------------------------------------------------------- phase B: publish

  private publish(): void {
    const rd = this.inProgress as Ready;
    this.inProgress = null;
    const raw = this.raw as RawNode;
    const { trace, checker } = this.env;
    trace.add('publish', this.id, null,
      `msgs=${rd.messages.length} apply=${rd.committedEntries.length}${rd.readStates.length > 0 ? ` reads=${rd.readStates.length}` : ''}`);

    for (const m of rd.messages) {
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

    if (rd.snapshot !== null) {
      const { index, chain } = decodeState(rd.snapshot.data);
      if (index !== rd.snapshot.metadata.index) violation(`snapshot data/metadata index mismatch at n${this.id}`);
      if (index <= this.smApplied) {
        violation(`n${this.id} applied went backwards: snapshot at ${index} while applied = ${this.smApplied}`);
      }
      checker.onRestore(this.id, index, chain);
      this.smApplied = index;
      this.smChain = chain;
      this.smConf = rd.snapshot.metadata.confState;
      this.lastSnapshotIndex = index;
      trace.add('restore', this.id, null, `state machine <- snapshot ${index}`);
    }

    for (const e of rd.committedEntries) {
      if (e.index !== this.smApplied + 1) {
        violation(`n${this.id} asked to apply entry ${e.index} with applied = ${this.smApplied}` +
          (e.index <= this.smApplied ? ' (applied would go backwards)' : ' (gap)'));
      }
      const chain = chainHash(this.smChain, e);
      checker.onApply(this.id, e, chain);
      this.smApplied = e.index;
      this.smChain = chain;
      if (e.type === EntryType.ConfChange && e.data.length > 0) {
        const cc = decodeConfChange(e.data);
        const cs = raw.applyConfChange(cc);
        this.smConf = cs;
        checker.onConfApplied(this.id, e.index, cs);
        this.env.confApplied(this, e.index, cs);
      }
    }

    for (const rs of rd.readStates) {
      const readId = decodeReadId(rs.context);
      const read = checker.onReadState(this.id, readId, rs.index);
      if (read !== null) {
        trace.add('read-state', this.id, null, `read ${readId} at index ${rs.index} (needs >= ${read.minIndex})`);
        this.reads.push(read);
        this.readIndexes.push(rs.index);
      }
    }

    raw.advance(rd);
    this.maybeReady = true;
    this.serveReads();
    this.maybeSnapshot();
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

  private maybeSnapshot(): void {
    const every = this.env.snapshotEvery;
    if (this.smApplied - this.lastSnapshotIndex < every) return;
    const index = this.smApplied;
    this.storage.createSnapshot(index, this.smConf, encodeState(index, this.smChain));
    this.lastSnapshotIndex = index;
    // A snapshot save is synced and flushes earlier unsynced hard-state writes.
    this.syncedHardState = this.storage.initialState().hardState;
    this.hardStateUnsynced = false;
    const compactTo = index - this.env.compactKeep;
    if (compactTo > this.storage.firstIndex() - 1) {
      this.storage.compact(compactTo);
      this.env.checker.onCompact(this.mirror(), compactTo);
    }
    this.env.trace.add('snapshot', this.id, null, `snapshot at ${index}, compacted to ${compactTo}`);
  }

  /** Calls `fn` on the RawNode, turning a ProposalDroppedError into a trace line. */
  tryInput(what: string, fn: (raw: RawNode) => void): boolean {
    const raw = this.raw as RawNode;
    this.maybeReady = true;
    try {
      fn(raw);
      return true;
    } catch (err) {
      if (err instanceof ProposalDroppedError) {
        this.env.trace.add('dropped', this.id, null, `${what}: ${err.reason}`);
        return false;
      }
      throw err;
    }
  }

  private mirror(): LogMirror {
    return this;
  }
}

function describeReady(rd: Ready): string {
  const parts: string[] = [];
  if (rd.softState !== null) parts.push(`soft=${rd.softState.role}/lead${rd.softState.leader}`);
  if (rd.hardState !== null) parts.push(`hs=${rd.hardState.term}/${rd.hardState.vote}/${rd.hardState.commit}`);
  if (rd.snapshot !== null) parts.push(`snap=${rd.snapshot.metadata.index}/${rd.snapshot.metadata.term}`);
  if (rd.entries.length > 0) {
    parts.push(`ents=[${rd.entries[0]!.index}..${rd.entries[rd.entries.length - 1]!.index}]`);
  }
  if (rd.committedEntries.length > 0) {
    parts.push(`commit=[${rd.committedEntries[0]!.index}..${rd.committedEntries[rd.committedEntries.length - 1]!.index}]`);
  }
  if (rd.parallelMessages.length > 0) parts.push(`par=${rd.parallelMessages.length}`);
  if (rd.messages.length > 0) parts.push(`msgs=${rd.messages.length}`);
  if (rd.mustSync) parts.push('sync');
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
