/**
 * RaftNode: the runtime that joins the Raft core (src/raft), durable storage (src/wal + src/snap
 * through ./storage.ts) and the peer transport (src/transport), and the API a Node service
 * embeds.
 *
 * The Ready pass (persist, send, apply, snapshot, advance) lives in NodeRuntime (runtime.ts),
 * which takes its storage, transport and clock as parameters; RaftNode composes it with the
 * real NodeStorage, Transport and timers, and keeps the public API: request tracking (every
 * proposal, membership change and read is a PendingCall resolved from the runtime's hooks),
 * read batching, events, and stopping.
 *
 * Fail-stop: any storage error (or a throwing state machine, or a broken core invariant) stops
 * the node: ticking stops, the transport closes, every pending call is rejected with the cause,
 * 'fatal' is emitted. It never keeps serving on a WAL it cannot trust.
 */

import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';

import {
  InvariantError,
  ProposalDroppedError,
  SeededRandom,
  decodeConfChange,
} from '../raft/index.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type ReadState,
  type SoftState,
} from '../raft/types.js';
import {
  SnapshotStreamError,
  Transport,
  trace,
  traceNow,
  traceOn,
  type SnapshotBody,
  type TransportStats,
} from '../transport/index.js';
import type { TransportOptions } from '../transport/types.js';
import { PendingCall } from './call.js';
import {
  decodeConfChangeContext,
  decodeReadContext,
  encodeConfChangeContext,
  encodeProposal,
  encodeReadContext,
  ownProposalSeq,
} from './envelope.js';
import {
  InvalidArgumentError,
  MembershipError,
  NoLeaderError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalLostError,
  ProposalRejectedError,
  StoppedError,
  TimeoutError,
  TooManyRequestsError,
  type StoppedOutcome,
} from './errors.js';
import {
  RemovalWatch,
  checkConfChangeSafety,
  leaderViewOf,
  snapshotRemovedIds,
  transferTargetOnStop,
  usablePeerUrl,
  vetForwardedConfChanges,
  type LeaderView,
} from './membership.js';
import type { RaftNodeEvents, StopReason, StoppedEvent } from './events.js';
import {
  normalizePeerUrl,
  resolveOptions,
  validateNodeId,
  validatePeerUrl,
  type RaftNodeOptions,
  type ResolvedOptions,
} from './options.js';
import { NodeRuntime, asError, type AppliedOutcome, type RuntimeHooks } from './runtime.js';
import { REAL_CLOCK, type NodeTransport, type RuntimeClock, type RuntimeTimer } from './runtime-io.js';
import { NodeStorage, type NodeStorageStatus, type Replay } from './storage.js';
import { LeaderWait } from './leader-wait.js';
import { decodeSnapshotRef, restoreStateMachine } from './snapshot-ref.js';
import { peerMessageCheck } from './peer-check.js';
import { LoopSpinner } from './loop-spin.js';
import { nativeSchedYield } from '../wal/native-backend.js';


/** One per process: there is one event loop (see loop-spin.ts). Created on first use. */
let loopSpinner: LoopSpinner | null = null;

export interface CallOptions {
  /** Overrides the node's requestTimeoutMs for this call. Waiting for a leader counts. */
  timeoutMs?: number;
  /** Overrides the node's waitForLeader for this call: false rejects with NoLeaderError at
   * once while no leader is known instead of waiting for one within the timeout. */
  waitForLeader?: boolean;
  /**
   * Membership calls only: skip the leader's safety check (a change that would leave the
   * cluster without a quorum of active, caught-up voters is refused with MembershipError
   * otherwise). For recovery by an operator who knows better.
   */
  force?: boolean;
}

export interface StopOptions {
  /**
   * How long a graceful stop may wait for this node's proposals already in flight to finish
   * (a leader first hands leadership to its most caught-up voter). Default: two election
   * timeouts. 0 stops at once; the requests still in flight then fail with StoppedError
   * (outcome 'unknown').
   */
  drainTimeoutMs?: number;
}

export interface ReadyOptions {
  /** Give up after this long (NoLeaderError while no leader is known, else TimeoutError).
   * Default: wait until ready or stopped. */
  timeoutMs?: number;
}

export interface MemberInfo {
  id: NodeId;
  url: string | null;
}

export interface PeerProgress {
  id: NodeId;
  url: string | null;
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  recentActive: boolean;
  /** Heard from within the last election timeout: what the membership safety check counts as
   * active (always true for the leader itself). */
  active: boolean;
  inflight: number;
  pendingSnapshot: number;
  isLearner: boolean;
}

export type NodeState = 'running' | 'stopping' | 'stopped';

export interface NodeStatus {
  id: NodeId;
  state: NodeState;
  term: number;
  vote: NodeId;
  leader: NodeId;
  leaderUrl: string | null;
  role: Role;
  commit: number;
  applied: number;
  lastIndex: number;
  snapshotIndex: number;
  members: { voters: MemberInfo[]; learners: MemberInfo[] };
  /** Replication progress of every member, as the leader tracks it; null on non-leaders. */
  progress: PeerProgress[] | null;
  /** Proposals, membership changes and reads waiting for their outcome. */
  pendingRequests: number;
  wal: NodeStorageStatus;
  transport: TransportStats;
}

type PendingKind = 'proposal' | 'conf-change';

interface PendingRequest {
  kind: PendingKind;
  what: string;
  call: PendingCall<unknown>;
  /** Handed to the Raft core (appended, or forwarded to the leader): from then on, a stop
   * leaves its outcome unknown. */
  proposed: boolean;
  /** Where the entry was appended, once this node has seen it in its log (0 before). */
  index: number;
  term: number;
  /** Hands the request to the core again (same request tag) after the transport dropped its
   * forwarded proposal unsent; null until set. */
  resubmit: (() => void) | null;
}

interface ReadBatch {
  calls: PendingCall<number>[];
  issuedAtTick: number;
}

interface ReadWaiter {
  index: number;
  call: PendingCall<number>;
}

interface TransferWaiter {
  target: NodeId;
  call: PendingCall<void>;
}

/** Most proposals handed to the core in one batch. */
const PROPOSE_BATCH_ENTRIES_MAX = 4096;

export class RaftNode<R = unknown> extends EventEmitter<RaftNodeEvents> {
  readonly id: NodeId;

  private readonly opts: ResolvedOptions<R>;
  private readonly storage: NodeStorage;
  private readonly transport: NodeTransport;
  /** Timers and Ready passes: real ones, or the simulator's virtual clock. */
  private readonly clock: RuntimeClock;
  /** The Ready pass, over the real storage, transport and timers. */
  private readonly runtime: NodeRuntime<R>;
  /** Random per start: tags our requests so an entry proposed before a restart never resolves
   * a call made after it. Never 0. */
  private readonly incarnation: number;

  private state: NodeState = 'running';
  private leader: NodeId = 0;
  private role: Role = Role.Follower;
  private ticks = 0;
  private tickTimer: RuntimeTimer | null = null;
  private nextSeq = 1;
  /** readBarrier calls not settled yet (bounded by maxPendingReads). */
  private pendingReads = 0;


  private proposeQueue: { seq: number; payload: Uint8Array }[] = [];
  /** RAFTKV_TRACE only: when each of our proposals was made. */
  private readonly proposedAt = new Map<number, number>();
  private readonly pending = new Map<number, PendingRequest>();
  /** index → sequence numbers of our requests seen appended there (normally one). */
  private readonly seqsByIndex = new Map<number, number[]>();
  private readQueue: PendingCall<number>[] = [];
  private readonly readBatches = new Map<number, ReadBatch>();
  private readWaiters: ReadWaiter[] = [];
  private transfers: TransferWaiter[] = [];
  /** Calls the core refused for want of a leader, until it knows one (see leader-wait.ts). */
  private readonly leaderWait = new LeaderWait();
  /** Requests whose forwarded proposal the transport dropped unsent: proposed again at the
   * next tick (not at once: the leader may stay unreachable for a while). */
  private notSentRequests = new Set<number>();

  private stopPromise: Promise<void> | null = null;
  private stopInfo: StoppedEvent | null = null;
  private abortListener: (() => void) | null = null;

  /** Tick at which each peer last sent us anything (the leader's notion of "active"). */
  private readonly lastHeardTick = new Map<NodeId, number>();
  /** Decides when this node stops as removed (membership.ts), on ticks. */
  private readonly removalWatch: RemovalWatch;
  /** Membership calls settled by entries applied in the current pass: they settle once
   * advance() has told the core (appliedAdvanced at the end of the pass), so the caller's next
   * change is not refused as 'conf-change-pending'. */
  private confChangeSettlements: (() => void)[] = [];
  /** Forwarded proposals carrying a ConfChange that reached us (the leader) during a pass:
   * stepped after it (see onPeerMessages). */
  private heldConfChangeProps: Message[] = [];
  /** Graceful stop in progress: new calls are refused, the loop still runs (see stop()). */
  private draining: Promise<void> | null = null;

  /**
   * Opens (or creates) the node's storage, restores the newest snapshot into the state machine,
   * replays the WAL, bootstraps a brand-new cluster member (unless `join`), starts the peer
   * server and the tick timer. Rejects with StoppedError if `signal` aborts meanwhile.
   */
  static async start<R = unknown>(options: RaftNodeOptions<R>): Promise<RaftNode<R>> {
    const o = resolveOptions(options);
    const throwIfAborted = (): void => {
      if (o.signal?.aborted) throw new StoppedError('start', 'start-up aborted', o.signal.reason);
    };
    throwIfAborted();
    // NodeStorage.open creates the data directory (durably).
    const { storage, replay } = await NodeStorage.open({
      dir: o.dataDir,
      nodeId: o.id,
      clusterId: o.clusterId,
      walMode: o.walMode,
      dirSync: o.dirSync,
      logger: o.logger,
      walBackend: o.walBackend,
      fileSystem: o.fileSystem,
      walSegmentBytes: o.walSegmentBytes,
    });
    let node: RaftNode<R> | null = null;
    try {
      throwIfAborted();
      let snapshotPeers = new Map<NodeId, string>();
      let snapshotRemoved: ReadonlySet<NodeId> | null = null;
      if (replay.snapshot !== null) {
        snapshotPeers = await restoreStateMachine(o.stateMachine, replay.snapshot, (m) => storage.readBody(m));
        snapshotRemoved = snapshotRemovedIds(replay.snapshot.data);
      }
      throwIfAborted();
      node = new RaftNode(o, storage, replay, snapshotPeers, new Set(snapshotRemoved ?? []));
      await node.transport.start();
      throwIfAborted();
      node.run();
      return node;
    } catch (err) {
      if (node !== null) {
        await node.shutdown('stopped', 'start-up failed or was aborted', null);
      } else {
        await storage.close().catch(() => undefined);
      }
      throw err;
    }
  }

  private constructor(
    o: ResolvedOptions<R>,
    storage: NodeStorage,
    replay: Replay,
    snapshotPeers: Map<NodeId, string>,
    snapshotRemoved: Set<NodeId>,
  ) {
    super();
    this.id = o.id;
    this.opts = o;
    this.storage = storage;
    this.removalWatch = new RemovalWatch(o.id, 2 * o.electionTicks, 0);
    this.clock = o.simulation?.clock ?? REAL_CLOCK;
    this.incarnation = o.simulation?.incarnation ?? randomInt(1, 0xffffffff);

    // The cluster's record (the snapshot) wins over the start-up options, which only fill in
    // ids it does not name; ConfChange entries replayed after the snapshot update both. The
    // runtime sets the transport's members from the applied configuration.
    const peerUrls = new Map(o.peers);
    for (const [id, url] of snapshotPeers) if (usablePeerUrl(url) !== null) peerUrls.set(id, url);

    const transportOptions: TransportOptions = {
      id: o.id,
      clusterId: o.clusterId,
      peers: new Map(),
      listenHost: o.listenHost,
      listenPort: Number(o.selfUrl.port),
      onMessages: (msgs) => this.onPeerMessages(msgs),
      checkMessage: peerMessageCheck,
      onSnapshot: (m) => this.onWholeSnapshot(m),
      snapshotSource: (m) => this.snapshotSource(m),
      onSnapshotStream: (m, body, bytes) => this.onSnapshotStream(m, body, bytes),
      limits: { snapshotBytesMax: o.snapshotBytesMax },
      onUnreachable: (id) => {
        if (this.state !== 'running') return;
        this.runtime.rawNode.reportUnreachable(id);
        this.runtime.schedule();
      },
      onProposalsNotSent: (_id, msgs) => this.onProposalsNotSent(msgs),
      onSnapshotStatus: (id, ok) => {
        if (this.state !== 'running') return;
        this.runtime.rawNode.reportSnapshot(id, ok);
        this.runtime.schedule();
      },
      onRemoved: (byPeer) => this.onRemovedByPeer(byPeer),
      logger: o.logger,
    };
    this.transport = o.simulation !== null ? o.simulation.createTransport(transportOptions) : new Transport(transportOptions);

    this.runtime = new NodeRuntime<R>({
      id: o.id,
      replay,
      peerUrls,
      removedIds: snapshotRemoved,
      raft: {
        electionTick: o.electionTicks,
        heartbeatTick: o.heartbeatTicks,
        maxSizePerMsg: o.maxSizePerMsg,
        maxInflightMsgs: o.maxInflightMsgs,
        maxUncommittedEntriesSize: o.maxUncommittedEntriesSize,
        preVote: o.preVote,
        checkQuorum: o.checkQuorum,
        readIndexFanout: o.readIndexFanout,
        disableProposalForwarding: !o.forwardProposals,
        logger: o.logger,
      },
      random: o.simulation?.random ?? new SeededRandom(randomInt(0, 0x7fffffff)),
      incarnation: this.incarnation,
      storage,
      transport: this.transport,
      clock: this.clock,
      stateMachine: o.stateMachine,
      hooks: this.runtimeHooks(),
      logger: o.logger,
      snapshotCount: o.snapshotCount,
      snapshotCatchUpEntries: o.snapshotCatchUpEntries,
      commitNotifyDelayMs: o.commitNotifyDelayMs,
      onPassStart: o.idleSpinUs > 0
        ? () => (loopSpinner ??= new LoopSpinner(nativeSchedYield())).poke(o.idleSpinUs)
        : null,
      tracer: traceOn ? (event, lo, hi, peer) => trace(event, lo, hi, peer) : null,
    });

    const neverPersisted = replay.snapshot === null && replay.hardState.term === 0 && replay.entries.length === 0;
    if (neverPersisted && !o.join) {
      // A brand-new member (or one that crashed before its bootstrap entries reached the WAL:
      // nothing was ever acknowledged, so bootstrapping again is safe).
      const voters = [...o.peers.keys()].sort((a, b) => a - b);
      this.runtime.rawNode.bootstrap(voters);
      o.logger.info('bootstrapping a new cluster', { id: o.id, voters });
    } else if (neverPersisted) {
      o.logger.info('joining: waiting to be added to the cluster', { id: o.id });
    } else {
      if (o.join) o.logger.info('join ignored: the data directory already holds this node\'s log', { id: o.id });
      o.logger.info('restarted from storage', {
        id: o.id,
        snapshotIndex: this.runtime.snapshotIndex,
        term: replay.hardState.term,
        commit: replay.hardState.commit,
        entries: replay.entries.length,
      });
    }
  }

  /** How the runtime reports back: each hook is the API-layer half of one step of the pass. */
  private runtimeHooks(): RuntimeHooks<R> {
    return {
      feedCore: () => {
        if (traceOn) trace(this.runtime.busy ? 'blk' : 'run', this.proposeQueue.length, 0);
        this.resumeParked();
        this.flushProposals();
        this.issueReads();
        if (!this.runtime.busy) this.stepHeldConfChangeProps();
      },
      hasQueuedInput: () => this.readQueue.length > 0 || this.proposeQueue.length > 0 || this.heldConfChangeProps.length > 0,
      softStateChanged: (ss) => this.onSoftState(ss),
      entriesAppended: (entries) => this.trackAppended(entries),
      readStateReady: (rs) => this.onReadState(rs),
      entryApplied: (entry, ownSeq, outcome) => this.onEntryApplied(entry, ownSeq, outcome),
      snapshotInstalled: (index) => this.onSnapshotInstalled(index),
      appliedAdvanced: (index, endOfPass) => {
        this.resolveReads();
        if (endOfPass) {
          this.settleConfChanges();
          this.emitSafe('applied', { index });
        }
      },
      fatal: (error, detail) => this.fatal(error, detail),
    };
  }

  /**
   * A peer answers 410 Gone once it has applied our removal, which the core never tells a
   * removed follower (the leader stops replicating to it). But the peer may lag behind our
   * re-addition, so this is evidence, not a verdict: see RemovalWatch (checked every tick).
   */
  private onRemovedByPeer(peer: NodeId): void {
    if (this.state !== 'running') return;
    this.opts.logger.info('a peer reports this node was removed from the cluster', { id: this.id, peer });
    this.removalWatch.onGoneAnswer(peer, this.ticks);
  }

  private run(): void {
    if (traceOn) trace('node', this.id, this.id);
    if (this.opts.simulation === null) {
      const interval = setInterval(() => this.onTick(), this.opts.tickMs);
      this.tickTimer = { cancel: () => clearInterval(interval) };
    } else {
      // A virtual clock has one-shot timers only: re-arm on every tick.
      const tickMs = this.opts.tickMs;
      const rearm = (): void => {
        this.tickTimer = this.clock.setTimer(() => {
          rearm();
          this.onTick();
        }, tickMs);
      };
      rearm();
    }
    const signal = this.opts.signal;
    if (signal !== null) {
      this.abortListener = () => void this.stop();
      signal.addEventListener('abort', this.abortListener, { once: true });
    }
    this.runtime.schedule();
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /** The peer server's bound address (useful when the URL's port was 0). */
  address(): { host: string; port: number } {
    return this.transport.address();
  }

  /** True when this node believes it is the leader. */
  get isLeader(): boolean {
    return this.role === Role.Leader;
  }

  /** Leader id as this node knows it (0 = unknown). */
  get leaderId(): NodeId {
    return this.leader;
  }

  /** Index of the last entry applied to the state machine. */
  get appliedIndex(): number {
    return this.runtime.appliedIndex;
  }

  /** 'stopping' from the moment stop() is called (new calls are refused), though the loop
   * keeps running while requests in flight finish. */
  get nodeState(): NodeState {
    return this.state === 'running' && this.draining !== null ? 'stopping' : this.state;
  }

  /** Resolves when the node has stopped, for any reason (never rejects). */
  get stopped(): Promise<StoppedEvent> {
    if (this.state === 'stopped' && this.stopInfo !== null) return Promise.resolve(this.stopInfo);
    return new Promise((resolve) => this.once('stopped', resolve));
  }

  /**
   * Replicates `data` and resolves with the state machine's apply result once the entry is
   * committed and applied on THIS node. Works on any member (a follower forwards to the
   * leader). While no leader is known it waits for one within its timeout (unless
   * waitForLeader is false). Rejects with NoLeaderError (none appeared in time; nothing was
   * proposed), NotLeaderError (forwarding disabled), ProposalRejectedError, ProposalLostError,
   * OutcomeUnknownError, TooManyRequestsError, TimeoutError or StoppedError.
   */
  propose(data: Uint8Array, options?: CallOptions): Promise<R> {
    const what = 'propose';
    const early = this.checkRunning(what);
    if (early !== null) return Promise.reject(early);
    if (!(data instanceof Uint8Array)) {
      return Promise.reject(new InvalidArgumentError(`propose needs a Uint8Array, got ${typeof data}`));
    }
    if (this.pending.size >= this.opts.maxPendingProposals) {
      return Promise.reject(new TooManyRequestsError(what, this.opts.maxPendingProposals));
    }
    const seq = this.nextSeq++;
    const payload = encodeProposal({ origin: this.id, incarnation: this.incarnation, seq }, data);
    // Proposals of one event-loop turn go to the core as one batch (one Prop message, one App
    // per follower): see flushProposals.
    this.proposeQueue.push({ seq, payload });
    if (traceOn) this.proposedAt.set(seq, traceNow());
    const { promise } = this.track<R>('proposal', what, seq, options);
    this.pending.get(seq)!.resubmit = () => this.proposeQueue.push({ seq, payload });
    return promise;
  }

  /**
   * Linearizable read barrier (ReadIndex): resolves, with the read index, once the local state
   * machine reflects every write committed before this call. Read your state machine after it
   * resolves. Concurrent calls share one ReadIndex round.
   */
  readBarrier(options?: CallOptions): Promise<number> {
    return this.barrier('readBarrier', options);
  }

  /**
   * Resolves once a leader is known and this member has applied everything committed at that
   * moment: a ReadIndex round, so "committed" is the leader's commit index confirmed by a
   * quorum, not this member's possibly stale one. It keeps waiting through elections; it
   * rejects with StoppedError if the node stops (or fails) first, and with NoLeaderError or
   * TimeoutError if `timeoutMs` passes first.
   */
  async ready(options?: ReadyOptions): Promise<void> {
    const what = 'ready';
    const timeoutMs = options?.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs <= 0)) {
      throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    }
    const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      const remainingMs = deadline - performance.now();
      try {
        // Rounds of one request timeout each: a round lost to a leader change is asked again.
        await this.barrier(what, { timeoutMs: Math.max(1, Math.min(this.opts.requestTimeoutMs, remainingMs)), waitForLeader: true });
        return;
      } catch (err) {
        const again = err instanceof NoLeaderError || err instanceof TimeoutError;
        if (!again || performance.now() >= deadline) throw err;
      }
    }
  }

  /**
   * Adds a voting member (or promotes a learner). Resolves with the new membership once the
   * change is applied on this node and the next membership change can be proposed.
   *
   * Membership calls are checked for safety on the leader (whichever member they are made
   * on: a follower's is forwarded and checked when the leader accepts it), as etcd's strict
   * reconfiguration check: a new voter counts as down, so the active voters must still make a
   * quorum of the enlarged cluster (add a learner and promote it once caught up instead); a
   * learner is promoted only when active and within 90% of the leader's log; a voter is
   * removed only if the rest keep a quorum of active voters. A refused change rejects with
   * MembershipError (reason 'not-enough-active-voters' or 'learner-not-ready'); `force`
   * skips the check.
   */
  addVoter(id: NodeId, url: string, options?: CallOptions): Promise<ConfState> {
    const what = `addVoter(${String(id)})`;
    return this.changeMembership(what, options, () => {
      validateNodeId('node id', id);
      const peerUrl = normalizePeerUrl(validatePeerUrl('peer url', url));
      if (this.runtime.confState.voters.includes(id)) throw new MembershipError(`${what}: node ${id} is already a voter`);
      return { type: ConfChangeType.AddVoter, nodeId: id, url: peerUrl };
    });
  }

  /** Adds a non-voting member that receives the log but never counts in quorums. */
  addLearner(id: NodeId, url: string, options?: CallOptions): Promise<ConfState> {
    const what = `addLearner(${String(id)})`;
    return this.changeMembership(what, options, () => {
      validateNodeId('node id', id);
      const peerUrl = normalizePeerUrl(validatePeerUrl('peer url', url));
      if (this.runtime.confState.voters.includes(id)) throw new MembershipError(`${what}: node ${id} is already a voter`);
      if (this.runtime.confState.learners.includes(id)) throw new MembershipError(`${what}: node ${id} is already a learner`);
      return { type: ConfChangeType.AddLearner, nodeId: id, url: peerUrl };
    });
  }

  /** Makes a learner a voter. */
  promoteLearner(id: NodeId, options?: CallOptions): Promise<ConfState> {
    const what = `promoteLearner(${String(id)})`;
    return this.changeMembership(what, options, () => {
      validateNodeId('node id', id);
      if (!this.runtime.confState.learners.includes(id)) throw new MembershipError(`${what}: node ${id} is not a learner`);
      return { type: ConfChangeType.PromoteLearner, nodeId: id, url: null };
    });
  }

  /** Removes a voter or learner. Removing this node stops it once the change is applied. */
  removeMember(id: NodeId, options?: CallOptions): Promise<ConfState> {
    const what = `removeMember(${String(id)})`;
    return this.changeMembership(what, options, () => {
      validateNodeId('node id', id);
      if (!this.runtime.confState.voters.includes(id) && !this.runtime.confState.learners.includes(id)) {
        throw new MembershipError(`${what}: node ${id} is not a member`);
      }
      if (this.runtime.confState.voters.length === 1 && this.runtime.confState.voters[0] === id) {
        throw new MembershipError(`${what}: cannot remove the last voter`);
      }
      return { type: ConfChangeType.RemoveNode, nodeId: id, url: null };
    });
  }

  /**
   * Asks the leader to hand leadership to voter `id`; resolves when this node sees `id` as
   * leader. Rejects with TimeoutError if the transfer does not complete (the leader aborts a
   * transfer after an election timeout).
   */
  transferLeadership(id: NodeId, options?: CallOptions): Promise<void> {
    const what = `transferLeadership(${String(id)})`;
    const early = this.checkRunning(what);
    if (early !== null) return Promise.reject(early);
    try {
      validateNodeId('node id', id);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.leader === id) return Promise.resolve();
    const timeoutMs = this.timeoutOf(options);
    const call: PendingCall<void> = new PendingCall<void>(timeoutMs, () => {
      this.transfers = this.transfers.filter((t) => t.call !== call);
      return this.leaderWait.unpark(call) ? new NoLeaderError(what, timeoutMs) : new TimeoutError(what, timeoutMs, false);
    }, null, this.clock);
    if (!this.waitsForLeader(options)) this.leaderWait.markFailFast(call);
    const submit = (): void => {
      const leader = this.runtime.rawNode.status().leader;
      // Membership is checked once a leader is known: until then this node's view may be
      // behind (a fresh member has none before its first pass).
      if (leader === 0) {
        if (!this.leaderWait.park(call, submit)) call.reject(new NoLeaderError(what));
      } else if (!this.runtime.confState.voters.includes(id)) {
        call.reject(new MembershipError(`${what}: node ${id} is not a voter`));
      } else if (leader === id) {
        call.resolve();
      } else {
        this.transfers.push({ target: id, call });
        try {
          this.runtime.rawNode.transferLeader(id);
        } catch (err) {
          call.reject(this.mapCoreError(err, what));
        }
        this.runtime.schedule();
      }
    };
    submit();
    return call.promise;
  }

  /** A consistent picture of this node: Raft state, membership, replication progress (on the
   * leader), WAL capabilities and transport counters. */
  status(): NodeStatus {
    const s = this.runtime.rawNode.status();
    const member = (id: NodeId): MemberInfo => ({ id, url: this.runtime.peerUrl(id) });
    let progress: PeerProgress[] | null = null;
    if (s.progress !== null) {
      progress = Object.entries(s.progress).map(([key, p]) => ({
        id: Number(key),
        url: this.runtime.peerUrl(Number(key)),
        match: p.match,
        next: p.next,
        state: p.state,
        recentActive: p.recentActive,
        active: Number(key) === this.id || this.heardRecently(Number(key)),
        inflight: p.inflight,
        pendingSnapshot: p.pendingSnapshot,
        isLearner: p.isLearner,
      }));
    }
    return {
      id: this.id,
      state: this.nodeState,
      term: s.term,
      vote: s.vote,
      leader: s.leader,
      leaderUrl: s.leader !== 0 ? (this.runtime.peerUrl(s.leader)) : null,
      role: s.role,
      commit: s.commit,
      applied: this.runtime.appliedIndex,
      lastIndex: s.lastIndex,
      snapshotIndex: this.runtime.snapshotIndex,
      members: { voters: this.runtime.confState.voters.map(member), learners: this.runtime.confState.learners.map(member) },
      progress,
      // pendingReads counts every unsettled read, those waiting for a leader included.
      pendingRequests: this.pending.size + this.pendingReads + this.transfers.length,
      wal: this.storage.status(),
      transport: this.transport.stats(),
    };
  }

  /**
   * Graceful stop: refuses new calls (StoppedError, outcome 'not-proposed'), and so calls still
   * queued or waiting for a leader; a leader hands leadership to its most caught-up voter;
   * then waits (at most `drainTimeoutMs`) for this node's proposals already in flight to be
   * applied or lost. Then it stops ticking, waits for an in-flight WAL write to finish (the WAL
   * is never left half-written), rejects what is still pending with StoppedError (outcome
   * 'unknown' for what was already proposed), closes the transport and the WAL (releasing its
   * lock). Idempotent; resolves when everything is closed.
   */
  stop(options?: StopOptions): Promise<void> {
    if (this.stopPromise !== null) return this.stopPromise;
    const drainTimeoutMs = options?.drainTimeoutMs ?? 2 * this.opts.electionTicks * this.opts.tickMs;
    if (!Number.isFinite(drainTimeoutMs) || drainTimeoutMs < 0) {
      return Promise.reject(new InvalidArgumentError(`drainTimeoutMs must be a non-negative number, got ${drainTimeoutMs}`));
    }
    this.draining ??= this.drain(drainTimeoutMs).then(() => this.shutdown('stopped', 'stop() was called', null));
    return this.draining;
  }

  /** The first part of a graceful stop; see stop(). Never rejects. */
  private async drain(timeoutMs: number): Promise<void> {
    if (this.state !== 'running' || timeoutMs === 0) return;
    // Queued reads and not-yet-proposed writes are refused now: nothing of them was proposed.
    const refused = new StoppedError('request', 'stop() was called');
    for (const c of this.readQueue) c.reject(refused);
    this.readQueue = [];
    this.proposeQueue = [];
    this.leaderWait.rejectAll(refused);
    for (const [seq, req] of this.pending) {
      if (req.proposed) continue;
      this.pending.delete(seq);
      req.call.reject(refused);
    }
    const view = this.leaderView();
    const target = view !== null ? transferTargetOnStop(view) : 0;
    if (target !== 0) {
      this.opts.logger.info('stopping: handing leadership over', { id: this.id, to: target });
      this.runtime.rawNode.transferLeader(target);
      this.runtime.schedule();
    }
    const inFlight = (): boolean => [...this.pending.values()].some((r) => r.proposed);
    const deadline = performance.now() + timeoutMs;
    const pollMs = Math.max(1, Math.min(this.opts.tickMs, 20));
    while (this.state === 'running' && performance.now() < deadline) {
      // Until the transfer completes, or the core gives up on it (after an election timeout).
      const transferring = target !== 0 && this.runtime.rawNode.status().leadTransferee !== 0;
      if (!transferring && !inFlight()) break;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    if (inFlight()) this.opts.logger.info('stopping with requests in flight: their outcome is unknown', { id: this.id });
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  private onTick(): void {
    if (this.state !== 'running') return;
    this.ticks++;
    const wasRemoved = this.removalWatch.removedByConfig;
    this.removalWatch.onConfig(this.runtime.confState, this.ticks);
    if (this.removalWatch.removedByConfig && !wasRemoved) {
      this.opts.logger.info('the applied configuration does not include this node: it stops unless a leader still counts it a member',
        { id: this.id });
    }
    const removal = this.removalWatch.decide(this.runtime.confState, this.ticks);
    if (removal.stop) {
      this.opts.logger.info('this node was removed from the cluster; stopping', { id: this.id, detail: removal.detail });
      void this.shutdown('removed', removal.detail, null);
      return;
    }
    this.runtime.rawNode.tick();
    this.resubmitNotSent();
    // A ReadIndex request can be lost (leader change, dropped message): re-issue it with a new
    // context after an election timeout. The answer to a later request is valid for the
    // earlier callers too (its read index can only be higher).
    for (const [seq, batch] of this.readBatches) {
      if (this.ticks - batch.issuedAtTick >= this.opts.electionTicks) {
        this.readBatches.delete(seq);
        this.readQueue.unshift(...batch.calls.filter((c) => !c.settled));
      }
    }
    this.runtime.schedule();
  }

  /**
   * The transport dropped forwarded proposals before sending them (it was backing off from the
   * leader, or its queue was full): the leader never appended them. Our own are proposed again
   * at the next tick, with the same request tag, within the caller's deadline; meanwhile they
   * count as not proposed (a stop or a timeout says they cannot commit).
   */
  private onProposalsNotSent(msgs: Message[]): void {
    if (this.state !== 'running') return;
    for (const m of msgs) {
      for (const e of m.entries) {
        const seq = this.ownRequestSeq(e);
        const req = seq !== 0 ? this.pending.get(seq) : undefined;
        // index !== 0: seen in our log, so it went out some other way; leave it be.
        if (req === undefined || !req.proposed || req.index !== 0 || req.resubmit === null) continue;
        req.proposed = false;
        this.notSentRequests.add(seq);
      }
    }
  }

  private resubmitNotSent(): void {
    if (this.notSentRequests.size === 0) return;
    const seqs = [...this.notSentRequests];
    this.notSentRequests.clear();
    for (const seq of seqs) {
      const req = this.pending.get(seq);
      if (req === undefined || req.call.settled || req.proposed) continue;
      this.opts.logger.debug('proposing again: the transport dropped the forwarded proposal unsent', { seq, what: req.what });
      req.resubmit!();
    }
  }

  /** Our request's sequence number carried by `e` (this incarnation), or 0. */
  private ownRequestSeq(e: Entry): number {
    if (e.type === EntryType.Normal) return ownProposalSeq(e.data, this.id, this.incarnation);
    const tag = decodeConfChangeContext(decodeConfChange(e.data).context).tag;
    return tag !== null && tag.origin === this.id && tag.incarnation === this.incarnation ? tag.seq : 0;
  }

  private onPeerMessages(msgs: Message[]): void {
    if (this.state !== 'running') return;
    if (traceOn) for (const m of msgs) traceMessage('rcv', m);
    for (let m of msgs) {
      this.lastHeardTick.set(m.from, this.ticks);
      // A leader sends these only to the members of its configuration.
      const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
      if (fromLeader && m.term >= this.runtime.term) this.removalWatch.onLeaderContact(this.ticks);
      if (m.type === MessageType.Prop && m.entries.some((e) => e.type === EntryType.ConfChange)) {
        if (this.runtime.busy && this.role === Role.Leader) {
          // The pass may be applying the previous change: step this one once advance() has
          // told the core (feedCore), or the core would drop it as conflicting (a follower's
          // call resolves as soon as IT applies, possibly before we advance).
          this.heldConfChangeProps.push(m);
          continue;
        }
        m = this.vetConfChangeProposal(m);
      }
      try {
        this.runtime.rawNode.step(m);
      } catch (err) {
        if (err instanceof InvariantError) {
          this.fatal(err, `Raft core invariant broken while stepping ${MessageType[m.type]} from ${m.from}`);
          return;
        }
        this.opts.logger.debug('message rejected by the core', {
          from: m.from,
          type: MessageType[m.type],
          error: asError(err).message,
        });
      }
    }
    this.runtime.schedule();
  }

  /** An outgoing snapshot whose state is in its file: stream the file's body after it. */
  private snapshotSource(m: Message): SnapshotBody | null {
    const snap = m.snapshot;
    if (snap === null) return null;
    const ref = decodeSnapshotRef(snap.data);
    if (ref === null) return null;
    return { bytes: ref.bodyBytes, open: () => this.storage.readBody(snap.metadata) };
  }

  /**
   * A snapshot streamed in by the leader: its body goes to a temp file in the snap directory,
   * is checked against the descriptor (length, CRC; each chunk's CRC on the way), fsynced and
   * renamed into place — only then is the message stepped into the core, whose Ready makes the
   * WAL marker durable and restores the state machine from the file.
   */
  private async onSnapshotStream(m: Message, body: AsyncIterable<Uint8Array>, bodyBytes: number): Promise<void> {
    if (this.state !== 'running') throw new Error('this node is stopping');
    const snap = m.snapshot!;
    let ref;
    try {
      ref = decodeSnapshotRef(snap.data);
    } catch (err) {
      throw new SnapshotStreamError(400, `bad snapshot descriptor: ${asError(err).message}`);
    }
    if (ref === null) throw new SnapshotStreamError(400, 'a streamed snapshot must carry a descriptor of its body');
    if (ref.bodyBytes !== bodyBytes) {
      throw new SnapshotStreamError(400, `the descriptor says ${ref.bodyBytes} bytes, the stream ${bodyBytes}`);
    }
    await this.storage.receiveSnapshot(snap.metadata, ref.head, body, { bytes: bodyBytes, crc: ref.bodyCrc }, this.opts.snapshotBytesMax);
    this.onPeerMessages([m]);
  }

  /** A snapshot sent whole (its state inline in the message). A descriptor without its body
   * would make the core ask for a file that is not there: refused. */
  private onWholeSnapshot(m: Message): Promise<void> {
    let ref;
    try {
      ref = m.snapshot === null ? null : decodeSnapshotRef(m.snapshot.data);
    } catch (err) {
      return Promise.reject(new SnapshotStreamError(400, `bad snapshot descriptor: ${asError(err).message}`));
    }
    if (ref !== null) return Promise.reject(new SnapshotStreamError(400, 'a snapshot descriptor must be streamed with its body'));
    this.onPeerMessages([m]);
    return Promise.resolve();
  }

  private onSoftState(ss: SoftState): void {
    if (ss.leader !== this.leader) {
      const previous = this.leader;
      this.leader = ss.leader;
      const leaderUrl = ss.leader !== 0 ? this.runtime.peerUrl(ss.leader) : null;
      this.opts.logger.info('leader changed', { leader: ss.leader, previous, term: this.runtime.term });
      this.emitSafe('leader-change', { leader: ss.leader, leaderUrl, previous, term: this.runtime.term });
      for (const t of this.transfers) if (t.target === ss.leader) t.call.resolve();
      this.transfers = this.transfers.filter((t) => !t.call.settled);
      if (ss.leader !== 0 && this.readBatches.size > 0) {
        // Requests sent to (or through) the old leader are likely lost: ask the new one now.
        for (const batch of this.readBatches.values()) this.readQueue.unshift(...batch.calls.filter((c) => !c.settled));
        this.readBatches.clear();
      }
    }
    if (ss.role !== this.role) {
      const previous = this.role;
      this.role = ss.role;
      this.emitSafe('role-change', { role: ss.role, previous, term: this.runtime.term });
    }
  }

  /** Our entries at or below an installed snapshot's index may or may not be inside it. */
  private onSnapshotInstalled(index: number): void {
    for (const [seq, req] of this.pending) {
      if (req.index !== 0 && req.index <= index) {
        this.pending.delete(seq);
        req.call.reject(new OutcomeUnknownError(req.what, req.index, index));
      }
    }
    for (const i of this.seqsByIndex.keys()) if (i <= index) this.seqsByIndex.delete(i);
    this.emitSafe('applied', { index });
  }


  /** Remember where our own requests landed, so an overwrite can be detected on commit. */
  private trackAppended(entries: Entry[]): void {
    if (this.pending.size === 0) return;
    for (const e of entries) {
      const seq = this.ownRequestSeq(e);
      if (seq === 0) continue;
      if (traceOn) {
        const at = this.proposedAt.get(seq);
        this.proposedAt.delete(seq);
        if (at !== undefined) trace('prop', e.index, e.index, 0, at);
      }
      const req = this.pending.get(seq);
      if (req === undefined) continue;
      req.index = e.index;
      req.term = e.term;
      const seqs = this.seqsByIndex.get(e.index);
      if (seqs === undefined) this.seqsByIndex.set(e.index, [seq]);
      else if (!seqs.includes(seq)) seqs.push(seq);
    }
  }

  /** Settles our request carried by an applied entry, and any other recorded at its index. */
  private onEntryApplied(e: Entry, ownSeq: number, outcome: AppliedOutcome<R>): void {
    const req = ownSeq !== 0 ? this.pending.get(ownSeq) : undefined;
    if (req !== undefined) {
      switch (outcome.kind) {
        case 'entry':
          this.pending.delete(ownSeq);
          req.call.resolve(outcome.result);
          break;
        case 'conf-change': {
          this.pending.delete(ownSeq);
          const confState = outcome.confState;
          this.confChangeSettlements.push(() => req.call.resolve(confState));
          break;
        }
        case 'conf-change-refused': {
          this.pending.delete(ownSeq);
          const error = outcome.refusal !== null
            ? new MembershipError(`${req.what}: ${outcome.refusal.message}`, outcome.refusal.reason)
            : new MembershipError(`${req.what}: refused when applied: ${outcome.reason}`);
          this.confChangeSettlements.push(() => req.call.reject(error));
          break;
        }
        case 'empty':
          break;
      }
    }
    this.settleIndex(e, ownSeq);
  }

  /** Any other request of ours recorded at this index lost its slot to a different entry. */
  private settleIndex(e: Entry, ownSeq: number): void {
    const seqs = this.seqsByIndex.get(e.index);
    if (seqs === undefined) return;
    this.seqsByIndex.delete(e.index);
    for (const seq of seqs) {
      if (seq === ownSeq) continue;
      const req = this.pending.get(seq);
      if (req === undefined) continue;
      this.pending.delete(seq);
      req.call.reject(new ProposalLostError(req.what, req.index, req.term, e.term));
    }
  }


  private flushProposals(): void {
    while (this.proposeQueue.length > 0) {
      // Bounded batches keep a forwarded Prop message well under the transport's body limit.
      let bytes = 0;
      let n = 0;
      while (n < this.proposeQueue.length && n < PROPOSE_BATCH_ENTRIES_MAX && bytes < this.opts.maxSizePerMsg) {
        bytes += this.proposeQueue[n]!.payload.length;
        n++;
      }
      const batch = this.proposeQueue.splice(0, n).filter((p) => this.pending.has(p.seq)); // not timed out
      if (batch.length === 0) continue;
      try {
        this.runtime.rawNode.proposeBatch(batch.map((p) => p.payload));
        for (const p of batch) {
          const req = this.pending.get(p.seq);
          if (req !== undefined) req.proposed = true;
        }
      } catch (err) {
        const error = this.mapCoreError(err, 'propose');
        for (const p of batch) {
          const req = this.pending.get(p.seq);
          if (req === undefined) continue;
          if (error instanceof NoLeaderError && this.leaderWait.park(req.call, () => this.proposeQueue.push(p))) continue;
          this.pending.delete(p.seq);
          req.call.reject(error);
        }
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  private issueReads(): void {
    if (this.readQueue.length === 0) return;
    const calls = this.readQueue.filter((c) => !c.settled);
    this.readQueue = [];
    if (calls.length === 0) return;
    const seq = this.nextSeq++;
    try {
      this.runtime.rawNode.readIndex(encodeReadContext(this.incarnation, seq));
    } catch (err) {
      const error = this.mapCoreError(err, 'readBarrier');
      for (const c of calls) {
        if (error instanceof NoLeaderError && this.leaderWait.park(c, () => this.readQueue.push(c))) continue;
        c.reject(error);
      }
      return;
    }
    this.readBatches.set(seq, { calls, issuedAtTick: this.ticks });
  }

  private onReadState(rs: ReadState): void {
    const seq = decodeReadContext(rs.context, this.incarnation);
    const batch = this.readBatches.get(seq);
    if (batch === undefined) return; // an answer to a request we re-issued meanwhile
    this.readBatches.delete(seq);
    for (const call of batch.calls) if (!call.settled) this.readWaiters.push({ index: rs.index, call });
    this.resolveReads();
  }

  private resolveReads(): void {
    if (this.readWaiters.length === 0) return;
    const waiting: ReadWaiter[] = [];
    for (const w of this.readWaiters) {
      if (w.call.settled) continue;
      if (w.index <= this.runtime.appliedIndex) w.call.resolve(w.index);
      else waiting.push(w);
    }
    this.readWaiters = waiting;
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private changeMembership(
    what: string,
    options: CallOptions | undefined,
    validate: () => { type: ConfChangeType; nodeId: NodeId; url: string | null },
  ): Promise<ConfState> {
    const early = this.checkRunning(what);
    if (early !== null) return Promise.reject(early);
    if (this.pending.size >= this.opts.maxPendingProposals) {
      return Promise.reject(new TooManyRequestsError(what, this.opts.maxPendingProposals));
    }
    const seq = this.nextSeq++;
    const force = options?.force === true;
    const { call, promise } = this.track<ConfState>('conf-change', what, seq, options);
    const submit = (): void => {
      try {
        // Validated again after a wait for a leader: the membership may have changed meanwhile.
        const change = validate();
        // On the leader the safety check runs here; a follower's call is checked by the leader
        // when it accepts the forwarded entry (vetConfChangeProposal).
        const view = force ? null : this.leaderView();
        const refusal = view !== null ? checkConfChangeSafety(change.type, change.nodeId, view) : null;
        if (refusal !== null) throw new MembershipError(`${what}: ${refusal.message}`, refusal.reason);
        const context = encodeConfChangeContext({
          url: change.url,
          tag: { origin: this.id, incarnation: this.incarnation, seq },
          ...(force ? { force: true } : {}),
        });
        this.runtime.rawNode.proposeConfChange({ type: change.type, nodeId: change.nodeId, context });
        const req = this.pending.get(seq);
        if (req !== undefined) req.proposed = true;
      } catch (err) {
        let error = this.mapCoreError(err, what);
        // Until a leader is known this node's membership may be behind (a fresh member has
        // none before its first pass): it is checked again once one is.
        if (error instanceof MembershipError && this.runtime.rawNode.status().leader === 0) error = new NoLeaderError(what);
        if (error instanceof NoLeaderError && this.leaderWait.park(call, submit)) return;
        this.pending.delete(seq);
        call.reject(error);
      }
    };
    this.pending.get(seq)!.resubmit = submit;
    submit();
    return promise;
  }

  /** The core's view as leader, with whom we heard from within an election timeout; null
   * unless we lead. */
  private leaderView(): LeaderView | null {
    return leaderViewOf(this.runtime.rawNode.status(), (id) => this.heardRecently(id));
  }

  private heardRecently(id: NodeId): boolean {
    const at = this.lastHeardTick.get(id);
    return at !== undefined && this.ticks - at <= this.opts.electionTicks;
  }

  /** The leader's safety check of a forwarded proposal's ConfChange entries (membership.ts). */
  private vetConfChangeProposal(m: Message): Message {
    const view = this.leaderView();
    if (view === null) return m; // not the leader: the core forwards it to the one it knows
    const vetted = vetForwardedConfChanges(m.entries, view);
    for (const { cc, refusal } of vetted.refused) {
      this.opts.logger.info('forwarded membership change refused by the safety check', {
        from: m.from,
        type: ConfChangeType[cc.type],
        nodeId: cc.nodeId,
        reason: refusal.reason,
      });
    }
    return vetted.refused.length === 0 ? m : { ...m, entries: [...vetted.entries] };
  }

  /** Forwarded ConfChange proposals held during a pass, stepped once it is over (feedCore). */
  private stepHeldConfChangeProps(): void {
    if (this.heldConfChangeProps.length === 0) return;
    const held = this.heldConfChangeProps;
    this.heldConfChangeProps = [];
    this.onPeerMessages(held);
  }

  /** Membership calls settle at the end of the pass, after advance(); see appliedAdvanced. */
  private settleConfChanges(): void {
    if (this.confChangeSettlements.length === 0) return;
    const settle = this.confChangeSettlements;
    this.confChangeSettlements = [];
    for (const fn of settle) fn();
  }

  private track<T>(
    kind: PendingKind,
    what: string,
    seq: number,
    options: CallOptions | undefined,
  ): { call: PendingCall<unknown>; promise: Promise<T> } {
    const timeoutMs = this.timeoutOf(options);
    const call: PendingCall<unknown> = new PendingCall<unknown>(timeoutMs, () => {
      const proposed = this.pending.get(seq)?.proposed ?? true;
      this.pending.delete(seq);
      this.notSentRequests.delete(seq);
      // Still parked: the core never saw it.
      if (this.leaderWait.unpark(call)) return new NoLeaderError(what, timeoutMs);
      // Never handed on (queued, or its forwarded proposal was dropped unsent): it cannot commit.
      return new TimeoutError(what, timeoutMs, proposed);
    }, null, this.clock);
    if (!this.waitsForLeader(options)) this.leaderWait.markFailFast(call);
    this.pending.set(seq, { kind, what, call, proposed: false, index: 0, term: 0, resubmit: null });
    this.runtime.schedule();
    return { call, promise: call.promise as Promise<T> };
  }

  /** readBarrier, and each round of ready(). */
  private barrier(what: string, options: CallOptions | undefined): Promise<number> {
    const early = this.checkRunning(what);
    if (early !== null) return Promise.reject(early);
    if (this.pendingReads >= this.opts.maxPendingReads) {
      return Promise.reject(new TooManyRequestsError(what, this.opts.maxPendingReads));
    }
    const timeoutMs = this.timeoutOf(options);
    const failFast = !this.waitsForLeader(options);
    this.pendingReads++;
    const call: PendingCall<number> = new PendingCall<number>(
      timeoutMs,
      () => (this.leaderWait.unpark(call) ? new NoLeaderError(what, timeoutMs) : new TimeoutError(what, timeoutMs, false)),
      () => this.pendingReads--,
      this.clock,
    );
    if (failFast) this.leaderWait.markFailFast(call);
    this.readQueue.push(call);
    this.runtime.schedule();
    return call.promise;
  }

  private waitsForLeader(options: CallOptions | undefined): boolean {
    const wait = options?.waitForLeader ?? this.opts.waitForLeader;
    if (typeof wait !== 'boolean') throw new InvalidArgumentError(`waitForLeader must be true or false, got ${String(wait)}`);
    return wait;
  }

  /**
   * Hands the calls parked for want of a leader back once the core knows one. Asks the core,
   * not this.leader: that is updated a Ready pass later, and a leader lost and regained
   * between two passes never shows up as a change there.
   */
  private resumeParked(): void {
    if (this.leaderWait.size === 0 || this.runtime.rawNode.status().leader === 0) return;
    const newer = this.proposeQueue;
    this.proposeQueue = [];
    this.leaderWait.resumeAll(); // the parked proposals were made first
    this.proposeQueue.push(...newer);
  }

  private timeoutOf(options: CallOptions | undefined): number {
    const t = options?.timeoutMs ?? this.opts.requestTimeoutMs;
    if (!Number.isFinite(t) || t <= 0) throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${t}`);
    return t;
  }

  private checkRunning(what: string): Error | null {
    if (this.state === 'running' && this.draining === null) return null;
    return new StoppedError(what, this.stopInfo?.detail ?? 'stopping', this.stopInfo?.error ?? undefined);
  }

  private mapCoreError(err: unknown, what: string): Error {
    if (err instanceof ProposalDroppedError) {
      switch (err.reason) {
        case 'no-leader':
          return new NoLeaderError(what);
        case 'forwarding-disabled':
          return new NotLeaderError(this.leader, this.runtime.peerUrl(this.leader), what);
        default:
          return new ProposalRejectedError(what, err.reason);
      }
    }
    return asError(err);
  }

  private emitSafe<K extends keyof RaftNodeEvents>(event: K, ...args: RaftNodeEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: RaftNodeEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.opts.logger.warn(`a '${String(event)}' event listener threw`, { error: asError(err).message });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Stopping

  private fatal(error: Error, detail: string): void {
    if (this.state !== 'running') return;
    this.opts.logger.error('fatal: stopping the node', { detail, error: error.message });
    void this.shutdown('fatal', `${detail}: ${error.message}`, error);
    this.emitSafe('fatal', { error, detail });
  }

  private shutdown(reason: StopReason, detail: string, error: Error | null): Promise<void> {
    if (this.stopPromise !== null) return this.stopPromise;
    this.state = 'stopping';
    this.stopInfo = { reason, detail, error };
    if (this.tickTimer !== null) {
      this.tickTimer.cancel();
      this.tickTimer = null;
    }
    this.runtime.halt();
    if (this.abortListener !== null && this.opts.signal !== null) {
      this.opts.signal.removeEventListener('abort', this.abortListener);
    }
    this.stopPromise = (async () => {
      this.rejectAll(detail, error);
      // Never close the WAL under a write: wait for the pass (it returns right after its WAL
      // write completes, seeing state !== 'running').
      await this.runtime.drain();
      await this.transport.stop().catch((err: unknown) =>
        this.opts.logger.warn('transport stop failed', { error: asError(err).message }),
      );
      await this.storage.close().catch((err: unknown) =>
        this.opts.logger.warn('storage close failed', { error: asError(err).message }),
      );
      this.state = 'stopped';
      this.opts.logger.info('node stopped', { reason, detail });
      this.emitSafe('stopped', this.stopInfo!);
    })();
    return this.stopPromise;
  }

  private rejectAll(detail: string, cause: Error | null): void {
    // Membership changes applied but not yet settled (stopped before advance): they happened.
    this.settleConfChanges();
    const stopped = (outcome: StoppedOutcome): StoppedError => new StoppedError('request', detail, cause ?? undefined, outcome);
    const error = stopped('not-proposed');
    const unknown = stopped('unknown');
    for (const req of this.pending.values()) req.call.reject(req.proposed ? unknown : error);
    this.pending.clear();
    this.heldConfChangeProps = [];
    this.proposeQueue = [];
    this.notSentRequests.clear();
    this.seqsByIndex.clear();
    for (const c of this.readQueue) c.reject(error);
    this.readQueue = [];
    for (const b of this.readBatches.values()) for (const c of b.calls) c.reject(error);
    this.readBatches.clear();
    for (const w of this.readWaiters) w.call.reject(error);
    this.readWaiters = [];
    for (const t of this.transfers) t.call.reject(error);
    this.transfers = [];
    this.leaderWait.rejectAll(error);
  }
}

/** RAFTKV_TRACE: appends with entries and successful append responses. */
function traceMessage(prefix: string, m: Message): void {
  if (m.type === MessageType.App && m.entries.length > 0) {
    trace(`${prefix}App`, m.entries[0]!.index, m.entries[m.entries.length - 1]!.index, m.from);
  } else if (m.type === MessageType.AppResp && !m.reject) {
    trace(`${prefix}Ack`, m.index, m.index, m.from);
  }
}
