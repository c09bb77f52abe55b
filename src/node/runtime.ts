/**
 * NodeRuntime: the Ready pass of a Raft member — the loop that drives the RawNode, its durable
 * storage, its transport and its state machine. It takes storage, transport, clock and
 * randomness as parameters (runtime-io.ts), so the same code runs in production (RaftNode
 * composes it with NodeStorage, Transport and real timers) and in the deterministic simulator
 * (test/sim, with a simulated disk, network and virtual clock).
 *
 * The loop
 * --------
 * Inputs (ticks, peer messages, proposals, read requests) go straight into the RawNode and then
 * `schedule()` a Ready pass (clock.schedulePass; setImmediate in production), so everything
 * that arrives in one turn of the event loop is handled by one pass. At most ONE Ready is in
 * flight (RawNode forbids calling ready() again before advance(); asserted here too); a pass
 * does, in order:
 *
 *   1. send rd.parallelMessages (the leader's appends go out while it syncs its own copy);
 *   2. persist rd.snapshot (snap file first, then the WAL marker) and rd.entries + rd.hardState
 *      (fsync only when rd.mustSync) — one WAL append;
 *   3. install the snapshot into MemoryStorage and the state machine, append the entries;
 *   4. send rd.messages (votes and acknowledgements: only now that they are durable);
 *   5. apply rd.committedEntries in order (ConfChange → RawNode.applyConfChange; the
 *      transport's members follow the applied configuration, see membership.ts);
 *   6. advance(rd); resolve reads; maybe snapshot + compact.
 *
 * Group commit falls out of this: while one WAL sync is in flight, new proposals and messages
 * accumulate in the core, and the next Ready carries all of them into one write + one sync.
 *
 * What the API layer (request tracking, reads, events) needs to know, it learns through
 * RuntimeHooks, called at fixed points of the pass. Fail-stop: any storage error, a throwing
 * state machine or a broken core invariant is reported once through hooks.fatal; the owner
 * then halts the runtime.
 */

import {
  InvariantError,
  MemoryStorage,
  RawNode,
  decodeConfChange,
  type RaftConfig,
} from '../raft/index.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type RandomSource,
  type ReadState,
  type Ready,
  type Snapshot,
  type SoftState,
} from '../raft/types.js';
import {
  decodeConfChangeContext,
  decodeProposal,
  decodeSnapshotData,
  encodeSnapshotData,
  requestTagOf,
  type ConfChangeRefusal,
  type RequestTag,
} from './envelope.js';
import { ProposalDedup } from './proposal-dedup.js';
import { mutations } from '../testing/mutations.js';
import { removedIdsAfter, snapshotRemovedIds, transportMembership, usablePeerUrl } from './membership.js';
import { captureStateMachine, decodeSnapshotRef, encodeSnapshotRef, restoreStateMachine } from './snapshot-ref.js';
import type { NodeLogger, StateMachine } from './options.js';
import type { Replay } from './storage.js';
import type { RuntimeClock, RuntimeStorage, RuntimeTimer, RuntimeTracer, RuntimeTransport } from './runtime-io.js';

/** What applying one committed entry did. */
export type AppliedOutcome<R> =
  /** A normal entry with data: the state machine's result. */
  | { kind: 'entry'; result: R }
  /** A ConfChange that took effect: the new membership. */
  | { kind: 'conf-change'; confState: ConfState }
  /** A ConfChange refused alike on every node, by the core (`refusal` null) or by the leader's
   * safety check when it accepted the entry (`refusal` says why): why. */
  | { kind: 'conf-change-refused'; reason: string; refusal: ConfChangeRefusal | null }
  /** An empty entry (a new leader's first entry). */
  | { kind: 'empty' };

/**
 * Where the runtime tells its owner what happened. Called synchronously from inside the pass,
 * at the same points as before the split; a hook must not throw.
 */
export interface RuntimeHooks<R> {
  /** Start of every pass, before ready(): hand queued proposals and reads to the core. */
  feedCore(): void;
  /** After a pass: is input queued that the next pass must hand to the core? */
  hasQueuedInput(): boolean;
  /** rd.softState (leader or role changed); runtime.term is already this Ready's term. */
  softStateChanged(ss: SoftState): void;
  /** rd.entries are now in the log (durable and in MemoryStorage). */
  entriesAppended(entries: Entry[]): void;
  readStateReady(rs: ReadState): void;
  /** A committed entry was applied (runtime.appliedIndex is already its index). `ownSeq` is
   * the sequence number of this incarnation's request it carries, 0 if none. */
  entryApplied(entry: Entry, ownSeq: number, outcome: AppliedOutcome<R>): void;
  /** A leader's snapshot was installed into the state machine: applied is now `index`. */
  snapshotInstalled(index: number): void;
  /** Applied advanced: during the WAL sync (`endOfPass` false) or at the end of a pass, after
   * advance() (the core then accepts the next membership change). */
  appliedAdvanced(index: number, endOfPass: boolean): void;
  /** Fail-stop: the runtime cannot go on. The owner must halt() it. */
  fatal(error: Error, detail: string): void;
}

/** The core's settings the runtime does not decide itself. */
export type RuntimeRaftConfig = Omit<RaftConfig, 'id' | 'storage' | 'applied' | 'random'>;

export interface NodeRuntimeOptions<R> {
  id: NodeId;
  /** What storage found at start: the newest usable snapshot, hard state and entries after it.
   * The state machine must already hold the snapshot's state. */
  replay: Replay;
  /** Peer URLs known at start (the operator's, then the snapshot's). Owned by the runtime from
   * now on. */
  peerUrls: Map<NodeId, string>;
  /** Ids removed from the cluster as of the snapshot (its envelope); the ConfChange entries
   * replayed after it re-derive the rest. Owned by the runtime from now on. */
  removedIds: Set<NodeId>;
  raft: RuntimeRaftConfig;
  /** The core's only randomness (election timeouts). */
  random: RandomSource;
  /** Tags this start's requests (see envelope.ts); never 0. */
  incarnation: number;
  storage: RuntimeStorage;
  transport: RuntimeTransport;
  clock: RuntimeClock;
  stateMachine: StateMachine<R>;
  hooks: RuntimeHooks<R>;
  logger: NodeLogger;
  /** Take a snapshot after this many applied entries since the last one. */
  snapshotCount: number;
  /** Entries kept in MemoryStorage behind a snapshot. */
  snapshotCatchUpEntries: number;
  /** How long an empty App (a commit notice) may be held back; 0 sends it at once. */
  commitNotifyDelayMs: number;
  /** Called at the start of every pass (production: pokes the idle spinner). */
  onPassStart: (() => void) | null;
  tracer: RuntimeTracer | null;
}

function isPromiseLike<T>(v: unknown): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export class NodeRuntime<R = unknown> {
  readonly id: NodeId;
  readonly incarnation: number;
  readonly rawNode: RawNode;
  readonly memStorage: MemoryStorage;

  private readonly storage: RuntimeStorage;
  private readonly transport: RuntimeTransport;
  private readonly clock: RuntimeClock;
  private readonly stateMachine: StateMachine<R>;
  private readonly hooks: RuntimeHooks<R>;
  private readonly logger: NodeLogger;
  private readonly snapshotCount: number;
  private readonly snapshotCatchUpEntries: number;
  private readonly commitNotifyDelayMs: number;
  private readonly onPassStart: (() => void) | null;
  private readonly tracer: RuntimeTracer | null;
  /** Every peer URL we know: from ConfChange contexts and snapshots (the cluster's record),
   * and from the options for ids neither names. */
  private readonly peerUrls: Map<NodeId, string>;
  /** Ids removed and not re-added: answered 410 Gone, persisted in our snapshots. */
  private removedIds: Set<NodeId>;
  /** Proposals applied so far, to skip repeats (proposal-dedup.ts); restored with snapshots. */
  private appliedProposals: ProposalDedup;

  private running = true;
  private confStateValue: ConfState;
  private applied: number;
  private snapshotIndexValue: number;
  private termValue: number;
  private passScheduled = false;
  private passInFlight: Promise<void> | null = null;
  /** True from ready() until its pass ends: at most one Ready in flight. */
  private readyTaken = false;
  /** The last WAL write not awaited by its pass (commit-index-only hard state). */
  private unsyncedWrite: Promise<void> = Promise.resolve();
  /** The background save of a snapshot we took (see takeSnapshot), or null. */
  private snapshotSave: Promise<void> | null = null;
  /** Empty appends (commit-index notices) held back per follower; see commitNotifyDelayMs. */
  private readonly deferredNotices = new Map<NodeId, Message>();
  private noticeTimer: RuntimeTimer | null = null;

  constructor(o: NodeRuntimeOptions<R>) {
    this.id = o.id;
    this.incarnation = o.incarnation;
    this.storage = o.storage;
    this.transport = o.transport;
    this.clock = o.clock;
    this.stateMachine = o.stateMachine;
    this.hooks = o.hooks;
    this.logger = o.logger;
    this.snapshotCount = o.snapshotCount;
    this.snapshotCatchUpEntries = o.snapshotCatchUpEntries;
    this.commitNotifyDelayMs = o.commitNotifyDelayMs;
    this.onPassStart = o.onPassStart;
    this.tracer = o.tracer;
    this.peerUrls = o.peerUrls;
    this.removedIds = o.removedIds;

    const replay = o.replay;
    this.memStorage = new MemoryStorage();
    if (replay.snapshot !== null) this.memStorage.applySnapshot(replay.snapshot);
    this.memStorage.setHardState(replay.hardState);
    if (replay.entries.length > 0) this.memStorage.append(replay.entries);

    this.snapshotIndexValue = replay.snapshot?.metadata.index ?? 0;
    this.applied = this.snapshotIndexValue;
    this.appliedProposals = replay.snapshot === null ? new ProposalDedup() : proposalTableOf(replay.snapshot.data);
    this.confStateValue = this.memStorage.initialState().confState;
    this.termValue = replay.hardState.term;

    this.rawNode = new RawNode({
      ...o.raft,
      id: o.id,
      storage: this.memStorage,
      random: o.random,
      applied: this.applied,
    });
    this.reconcileTransport();
  }

  /**
   * The transport's members and removed ids, from the applied configuration: after every
   * applied conf change, snapshot install, and at start-up (then from the snapshot; the
   * ConfChange entries replayed after it update it as they apply).
   */
  private reconcileTransport(): void {
    const m = transportMembership(this.id, this.confStateValue, this.peerUrls, this.removedIds);
    if (m.missingUrls.length > 0) this.logger.warn('members without a known peer URL cannot be reached', { ids: m.missingUrls });
    this.transport.setMembers(m.members, m.removed);
  }

  private recordPeerUrl(id: NodeId, url: string): void {
    if (usablePeerUrl(url) === null) {
      this.logger.warn('ignoring a peer URL the transport cannot use', { id, url });
      return;
    }
    this.peerUrls.set(id, url);
  }

  private configChanged(before: ConfState): void {
    this.removedIds = removedIdsAfter(before, this.confStateValue, this.removedIds);
    this.reconcileTransport();
  }

  // -------------------------------------------------------------------------------------------
  // What the owner reads

  get appliedIndex(): number {
    return this.applied;
  }

  get snapshotIndex(): number {
    return this.snapshotIndexValue;
  }

  get confState(): ConfState {
    return this.confStateValue;
  }

  /** The term of the last Ready's hard state (or of the replayed one). */
  get term(): number {
    return this.termValue;
  }

  /** True while a Ready is being processed. */
  get busy(): boolean {
    return this.passInFlight !== null;
  }

  peerUrl(id: NodeId): string | null {
    return this.peerUrls.get(id) ?? null;
  }


  // -------------------------------------------------------------------------------------------
  // Running and stopping

  /**
   * Schedules a Ready pass (once per clock turn). Call after every input given to the core.
   * The clock runs it after the current turn's inputs, so they all go into one pass. (In
   * production setImmediate, not a microtask: a microtask pass when idle saved ~0.1–0.2 ms per
   * hop at 1 client but halved GET throughput at 16–256 clients — one ReadIndex heartbeat
   * round per request instead of per turn — and cost PUT batching.)
   */
  schedule(): void {
    if (this.passScheduled || !this.running) return;
    this.passScheduled = true;
    this.clock.schedulePass(this.runScheduledPass);
  }

  /** Stops all further work: no pass, timer or message after this. Call drain() next. */
  halt(): void {
    this.running = false;
    if (this.noticeTimer !== null) {
      this.noticeTimer.cancel();
      this.noticeTimer = null;
    }
  }

  /** After halt(): resolves once no storage write is running (never close storage under one;
   * a pass returns right after its WAL write completes, seeing the runtime halted). */
  async drain(): Promise<void> {
    if (this.passInFlight !== null) await this.passInFlight;
    if (this.snapshotSave !== null) await this.snapshotSave;
    await this.unsyncedWrite;
  }

  private fail(error: Error, detail: string): void {
    if (!this.running) return;
    this.hooks.fatal(error, detail);
  }

  private readonly runScheduledPass = (): void => {
    this.passScheduled = false;
    if (!this.running) return;
    this.onPassStart?.();
    if (this.readyTaken && this.passInFlight === null) {
      // Re-entered from inside a pass (a clock that runs passes synchronously breaks the
      // RuntimeClock contract): at most one Ready may be in flight.
      this.fail(new InvariantError('a Ready pass started while another Ready is in flight'), 'Ready processing failed');
      return;
    }
    this.hooks.feedCore();
    if (this.passInFlight !== null) return; // its completion reschedules
    if (!this.rawNode.hasReady()) return;
    this.readyTaken = true;
    const rd = this.rawNode.ready();
    if (this.tracer !== null) {
      if (rd.entries.length > 0) this.tracer('rdy', rd.entries[0]!.index, rd.entries[rd.entries.length - 1]!.index);
      const ce = rd.committedEntries;
      if (ce.length > 0) this.tracer('crdy', ce[0]!.index, ce[ce.length - 1]!.index);
    }
    this.passInFlight = this.processReady(rd).then(
      () => {
        this.passInFlight = null;
        this.readyTaken = false;
        if (this.running && (this.rawNode.hasReady() || this.hooks.hasQueuedInput())) this.schedule();
      },
      (err: unknown) => {
        this.passInFlight = null;
        this.readyTaken = false;
        this.fail(asError(err), 'Ready processing failed');
      },
    );
  };

  // -------------------------------------------------------------------------------------------
  // The Ready pass

  private async processReady(rd: Ready): Promise<void> {
    if (rd.hardState !== null) this.termValue = rd.hardState.term;
    if (rd.softState !== null) this.hooks.softStateChanged(rd.softState);
    if (rd.parallelMessages.length > 0) {
      this.sendMessages(rd.parallelMessages);
      // The followers' copies are the critical path of a write: out before our WAL call.
      this.transport.flushNow();
    }

    // Durability first. A snapshot's file goes before its WAL marker: an orphan .snap file is
    // harmless, a marker without its file is not.
    if (rd.snapshot !== null) {
      // One snapshot save at a time: ours (in the background) finishes before the leader's.
      if (this.snapshotSave !== null) await this.snapshotSave;
      await this.storage.saveSnapshot(rd.snapshot);
    }
    let toApply = rd.committedEntries;
    const appliedBefore = this.applied;
    if (rd.entries.length > 0 || rd.hardState !== null) {
      const write = this.storage.save(rd.hardState, rd.entries, rd.mustSync);
      if (rd.mustSync) {
        // Under load a Ready carries new entries AND entries committed meanwhile; those were
        // made durable by earlier passes, so apply them (and answer their clients) while this
        // fsync runs instead of after it. Entries of this Ready wait for the write.
        if (rd.snapshot === null && toApply.length > 0) {
          const durableLast = rd.entries.length > 0
            ? Math.min(this.memStorage.lastIndex(), rd.entries[0]!.index - 1)
            : this.memStorage.lastIndex();
          let n = 0;
          while (n < toApply.length && toApply[n]!.index <= durableLast) n++;
          if (n > 0) {
            try {
              await this.applyCommitted(toApply.slice(0, n));
            } catch (err) {
              // Fail-stop, but never with a WAL write still running underneath the close.
              await write.catch(() => undefined);
              throw err;
            }
            toApply = toApply.slice(n);
            this.hooks.appliedAdvanced(this.applied, false);
          }
        }
        await write;
        if (this.tracer !== null && rd.entries.length > 0) this.tracer('wal', rd.entries[0]!.index, rd.entries[rd.entries.length - 1]!.index);
      } else {
        // Only the commit index changed: it needs no fsync (it is recoverable from a quorum),
        // and nothing we send or apply depends on it being on disk, so do not wait for the
        // write. The WAL keeps call order; a failure fails it for good and stops the node.
        this.unsyncedWrite = write.then(
          () => undefined,
          (err: unknown) => this.fail(asError(err), 'WAL write of the commit index failed'),
        );
      }
    }
    if (!this.running) return; // stopping: the write finished, do nothing more

    if (rd.snapshot !== null) await this.installSnapshot(rd.snapshot);
    if (rd.hardState !== null) this.memStorage.setHardState(rd.hardState);
    if (rd.entries.length > 0) {
      this.memStorage.append(rd.entries);
      this.hooks.entriesAppended(rd.entries);
    }
    if (rd.messages.length > 0) this.sendMessages(rd.messages);
    for (const rs of rd.readStates) this.hooks.readStateReady(rs);

    if (toApply.length > 0) await this.applyCommitted(toApply);
    if (this.tracer !== null && rd.committedEntries.length > 0) {
      this.tracer('apl', rd.committedEntries[0]!.index, rd.committedEntries[rd.committedEntries.length - 1]!.index);
    }
    if (!this.running) return;
    this.rawNode.advance(rd);
    if (this.tracer !== null && rd.entries.length > 0) this.tracer('adv', rd.entries[0]!.index, rd.entries[rd.entries.length - 1]!.index);

    if (this.applied !== appliedBefore) this.hooks.appliedAdvanced(this.applied, true);
    if (this.snapshotSave === null && this.applied - this.snapshotIndexValue >= this.snapshotCount) {
      await this.takeSnapshot();
    }
  }

  /**
   * Hands messages to the transport, holding back an empty App (it only carries a new commit
   * index, or re-probes) for up to commitNotifyDelayMs: any later App to the same follower
   * carries a commit index at least as new and does the same job, so the held one is dropped
   * (as a lossy network may). At a serial client's pace the next write's append comes first,
   * which saves a request and an ack per write.
   */
  private sendMessages(msgs: Message[]): void {
    const delayMs = this.commitNotifyDelayMs;
    let out: Message[] | null = null; // a copy only once a notice is held back
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      if (m.type === MessageType.Snap) {
        // Our snapshots carry the ConfState as of their own index (we create them with the
        // membership of exactly the applied index), so an outgoing MsgSnap is correct as the
        // core built it; we do NOT overwrite it with the current membership, which would make
        // the receiver re-apply later ConfChange entries on top of it. raftexample's
        // processMessages fix is for its bug of snapshotting with an empty/stale ConfState;
        // that can only reach us as a snapshot without voters, which we refuse to send.
        if (m.snapshot !== null && m.snapshot.metadata.confState.voters.length === 0) {
          throw new InvariantError(`outgoing snapshot at index ${m.snapshot.metadata.index} has no voters`);
        }
      } else if (m.type === MessageType.App && delayMs > 0) {
        if (m.entries.length === 0) {
          out ??= msgs.slice(0, i);
          this.deferredNotices.set(m.to, m);
          this.noticeTimer ??= this.clock.setTimer(() => this.flushNotices(), delayMs);
          continue;
        }
        this.deferredNotices.delete(m.to);
      }
      out?.push(m);
    }
    const toSend = out ?? msgs;
    if (toSend.length > 0) this.transport.send(toSend);
  }

  private flushNotices(): void {
    this.noticeTimer = null;
    if (!this.running || this.deferredNotices.size === 0) return;
    const held = [...this.deferredNotices.values()];
    this.deferredNotices.clear();
    // A notice from an older term is stale: the core has moved on (and may not lead any more).
    this.transport.send(held.filter((m) => m.term === this.termValue));
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    const index = snap.metadata.index;
    this.memStorage.applySnapshot(snap);
    const files = this.storage.snapshotFiles;
    // A descriptor's state is in the file the transport wrote (saveSnapshot checked it is there).
    const peerUrls = await restoreStateMachine(this.stateMachine, snap, files === undefined ? null : (m) => files.readBody(m));
    // The leader's record as of the snapshot's index is newer than ours: its URLs win, and its
    // removed ids replace ours (a snapshot written before it had them: ours, minus its members).
    for (const [id, url] of peerUrls) this.recordPeerUrl(id, url);
    const removedIds = snapshotRemovedIds(snap.data);
    if (removedIds !== null) this.removedIds = new Set(removedIds);
    this.appliedProposals = proposalTableOf(snap.data);
    const before = this.confStateValue;
    this.confStateValue = snap.metadata.confState;
    this.configChanged(before);
    this.applied = index;
    this.snapshotIndexValue = index;
    this.logger.info('installed snapshot from the leader', { index, term: snap.metadata.term });
    this.hooks.snapshotInstalled(index);
    await this.storage.releaseTo(index);
  }

  private isOurs(tag: RequestTag | null): tag is RequestTag {
    return tag !== null && tag.origin === this.id && tag.incarnation === this.incarnation;
  }

  private async applyCommitted(entries: Entry[]): Promise<void> {
    const sm = this.stateMachine;
    for (const e of entries) {
      if (e.index <= this.applied) continue; // covered by a snapshot we installed
      if (e.index !== this.applied + 1) {
        throw new InvariantError(`committed entry ${e.index} does not follow applied index ${this.applied}`);
      }
      const tag = requestTagOf(e);
      // (The proposalDuplicates mutation, test/simnode only, skips the de-dup: the old bug.)
      if (tag !== null && !mutations.proposalDuplicates && !this.appliedProposals.admit(tag, e.index)) {
        // A repeat of a proposal applied before (a re-sent request appended twice): applied as
        // nothing, on every replica alike. Ours was settled by its first copy (or a snapshot).
        this.logger.warn('skipping a repeated proposal', { index: e.index, origin: tag.origin, seq: tag.seq });
        this.applied = e.index;
        this.hooks.entryApplied(e, this.isOurs(tag) ? tag.seq : 0, { kind: 'empty' });
        if (!this.running) return;
        continue;
      }
      let ownSeq = 0;
      let outcome: AppliedOutcome<R>;
      if (e.type === EntryType.ConfChange) {
        const applied = this.applyConfChangeEntry(e);
        ownSeq = applied.ownSeq;
        outcome = applied.outcome;
      } else if (e.data.length > 0) {
        const { tag, payload } = decodeProposal(e.data);
        let result: R;
        try {
          const r = sm.apply({ index: e.index, term: e.term, data: payload });
          result = isPromiseLike<R>(r) ? await r : r;
        } catch (err) {
          throw new Error(`state machine apply threw at index ${e.index}: ${asError(err).message}`, { cause: err });
        }
        if (this.isOurs(tag)) ownSeq = tag.seq;
        outcome = { kind: 'entry', result };
      } else {
        outcome = { kind: 'empty' };
      }
      this.applied = e.index;
      this.hooks.entryApplied(e, ownSeq, outcome);
      if (!this.running) return;
    }
  }

  private applyConfChangeEntry(e: Entry): { ownSeq: number; outcome: AppliedOutcome<R> } {
    const cc = decodeConfChange(e.data);
    const ctx = decodeConfChangeContext(cc.context);
    const ownSeq = this.isOurs(ctx.tag) ? ctx.tag.seq : 0;
    if (ctx.refused !== undefined) {
      // The leader's safety check refused it when it accepted the entry: a no-op everywhere.
      this.logger.info('membership change refused by the leader', {
        index: e.index,
        type: ConfChangeType[cc.type],
        nodeId: cc.nodeId,
        reason: ctx.refused.reason,
      });
      return { ownSeq, outcome: { kind: 'conf-change-refused', reason: ctx.refused.message, refusal: ctx.refused } };
    }
    const before = this.confStateValue;
    let confState: ConfState;
    try {
      confState = this.rawNode.applyConfChange(cc);
    } catch (err) {
      if (err instanceof InvariantError) throw err;
      // Deterministic on every node: the change is refused everywhere alike.
      this.logger.warn('membership change refused', {
        index: e.index,
        type: ConfChangeType[cc.type],
        nodeId: cc.nodeId,
        error: asError(err).message,
      });
      return { ownSeq, outcome: { kind: 'conf-change-refused', reason: asError(err).message, refusal: null } };
    }
    this.confStateValue = confState;
    if ((cc.type === ConfChangeType.AddVoter || cc.type === ConfChangeType.AddLearner) && ctx.url !== null) {
      this.recordPeerUrl(cc.nodeId, ctx.url);
    }
    // Whether this node is still a member is the owner's to decide from confState (a removal
    // of the last voter is ignored by the core; a later entry may add us back).
    this.configChanged(before);
    this.logger.info('membership changed', {
      index: e.index,
      type: ConfChangeType[cc.type],
      nodeId: cc.nodeId,
      voters: confState.voters,
      learners: confState.learners,
    });
    return { ownSeq, outcome: { kind: 'conf-change', confState } };
  }

  /**
   * Captures the state machine at the applied index (inside the Ready pass: nothing may be
   * applied meanwhile), then saves the snapshot file and its WAL marker, compacts and releases
   * segments in the background: that is several fsyncs (~5-20 ms here), and the write
   * pipeline must not stall on them (it did: a p99 spike every snapshotCount entries). Safe
   * because replay places entries by index, not by their position relative to the marker,
   * and the in-memory log keeps everything until the save is done.
   */
  private async takeSnapshot(): Promise<void> {
    const index = this.applied;
    const confState = this.confStateValue;
    const members = [...confState.voters, ...confState.learners];
    const urls = new Map<NodeId, string>();
    for (const id of members) {
      const url = this.peerUrls.get(id);
      if (url !== undefined) urls.set(id, url);
    }
    const files = this.storage.snapshotFiles;
    let body: AsyncIterable<Uint8Array> | null = null;
    let smBytes: Uint8Array | null = null;
    try {
      if (files !== undefined) {
        body = await captureStateMachine(this.stateMachine);
      } else {
        smBytes = await this.stateMachine.snapshot();
        if (!(smBytes instanceof Uint8Array)) {
          throw new Error(`state machine snapshot() must return a Uint8Array, got ${typeof smBytes}`);
        }
      }
    } catch (err) {
      throw new Error(`state machine snapshot threw at applied index ${index}: ${asError(err).message}`, { cause: err });
    }
    let save: () => Promise<void>;
    if (files !== undefined && body !== null) {
      // Streamed: the state goes to the file chunk by chunk (in the background, while entries
      // are applied: the state machine captured its state above); the core gets a descriptor.
      const metadata = { index, term: this.memStorage.term(index), confState };
      const head = encodeSnapshotData({
        peerUrls: urls,
        stateMachine: new Uint8Array(0),
        removedIds: this.removedIds,
        proposals: this.appliedProposals.toRecords(),
      });
      const stream = body;
      save = async () => {
        const { bodyBytes, bodyCrc } = await files.write(metadata, head, stream);
        const data = encodeSnapshotRef({ head, bodyBytes, bodyCrc });
        await this.storage.saveSnapshot({ metadata, data });
        // A leader's snapshot may have been installed meanwhile: never move back.
        if (index > this.memStorage.snapshot().metadata.index) this.memStorage.createSnapshot(index, confState, data);
        await this.afterSnapshotSaved(index, bodyBytes);
      };
    } else {
      const snap = this.memStorage.createSnapshot(
        index,
        confState,
        encodeSnapshotData({ peerUrls: urls, stateMachine: smBytes!, removedIds: this.removedIds, proposals: this.appliedProposals.toRecords() }),
      );
      save = async () => {
        await this.storage.saveSnapshot(snap);
        await this.afterSnapshotSaved(index, snap.data.length);
      };
    }
    this.snapshotSave = save().then(
      () => {
        this.snapshotSave = null;
      },
      (err: unknown) => {
        this.snapshotSave = null;
        this.fail(asError(err), `saving the snapshot at index ${index} failed`);
      },
    );
  }

  /** Compaction and WAL release once the snapshot at `index` is durable. */
  private async afterSnapshotSaved(index: number, bytes: number): Promise<void> {
    this.snapshotIndexValue = Math.max(this.snapshotIndexValue, index);
    const compactIndex = index - this.snapshotCatchUpEntries;
    if (compactIndex >= this.memStorage.firstIndex()) this.memStorage.compact(compactIndex);
    await this.storage.releaseTo(index);
    this.logger.info('snapshot taken', { index, bytes, compactedTo: Math.max(compactIndex, 0) });
  }
}

/** The table of applied proposals a snapshot carries (inline data or a descriptor's head). */
function proposalTableOf(data: Uint8Array): ProposalDedup {
  const ref = decodeSnapshotRef(data);
  return ProposalDedup.fromRecords(decodeSnapshotData(ref === null ? data : ref.head).proposals);
}
