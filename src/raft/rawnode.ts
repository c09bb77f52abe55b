/**
 * RawNode: the synchronous, single-threaded API of the Raft core (etcd's RawNode).
 *
 * Inputs: tick(), step(message), propose(), proposeConfChange(), readIndex(), transferLeader(),
 * reportUnreachable(), reportSnapshot(), campaign(). Outputs come only through ready():
 *
 * ```
 * while (node.hasReady()) {
 *   const rd = node.ready();
 *   send(rd.parallelMessages);                      // 1. may go at once (leader only)
 *   if (rd.snapshot) storage.applySnapshot(rd.snapshot);   // 2. persist snapshot,
 *   storage.append(rd.entries);                     //    entries
 *   if (rd.hardState) storage.setHardState(rd.hardState);  //    and hard state,
 *   if (rd.mustSync) fsync();                       //    durably when mustSync
 *   send(rd.messages);                              // 3. only now the other messages
 *   for (const e of rd.committedEntries) apply(e);  // 4. apply (ConfChange entries: decode
 *                                                   //    and call node.applyConfChange)
 *   node.advance(rd);                               // 5. acknowledge
 * }
 * ```
 *
 * Ordering rules and why:
 * 1. `parallelMessages` (App, Heartbeat, Snap, TimeoutNow of the current leader) depend on
 *    nothing this node has not already made durable: the leader's term and vote were synced
 *    before it won (a Ready whose term or vote changed never has parallel messages). Sending
 *    appends before the leader's own write finishes is safe because the leader only counts
 *    its own copy towards the commit quorum in advance(), i.e. after it is durable (Raft
 *    thesis §10.2.1). A runtime that does not care may send them after persisting too.
 * 2. The snapshot, entries and hard state must be persisted before `messages` go out: those
 *    are votes, vote and append responses, etc. that promise durability. `mustSync` is true
 *    when entries, a snapshot, the term or the vote changed; a commit-only change needs no
 *    fsync (the commit index can be recovered from a quorum).
 * 3. Committed entries are applied in order, after the entries are persisted (a committed
 *    entry may be in this Ready's `entries`).
 * 4. advance(rd) must be called once per ready(), in order, before the next ready(). While a
 *    Ready is outstanding hasReady() returns false. advance() marks the entries stable,
 *    the leader's own log as durable (this may commit entries and queue messages), the
 *    snapshot and the committed entries as applied.
 *
 * Snapshots sent with MsgSnap: the runtime must call reportSnapshot(to, ok) for every one it
 * sends (ok = false if delivery failed), or the follower's progress stays paused until it
 * answers an append.
 */
import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
} from './types.js';
import { validateConfig, type RaftConfig, type RaftLogger } from './config.js';
import { Raft, newMessage } from './raft.js';
import { ConfigError, ProposalDroppedError, StepError } from './errors.js';
import { assert, fail } from './assert.js';
import { EMPTY_BYTES, payloadsSize } from './util.js';
import { encodeConfChange } from './codec.js';
import { getStatus, type Status } from './status.js';
import { messageProblem } from './message-check.js';

const RESPONSE_TYPES = new Set<MessageType>([
  MessageType.AppResp,
  MessageType.VoteResp,
  MessageType.PreVoteResp,
  MessageType.HeartbeatResp,
]);

/** Requests a follower forwards to the leader; they keep the requester's id in `from`. */
function isForwardable(t: MessageType): boolean {
  return t === MessageType.Prop || t === MessageType.ReadIndex || t === MessageType.TransferLeader;
}

function isParallelType(t: MessageType): boolean {
  return (
    t === MessageType.App ||
    t === MessageType.Heartbeat ||
    t === MessageType.Snap ||
    t === MessageType.TimeoutNow
  );
}

export class RawNode {
  private readonly raft: Raft;
  private readonly logger: RaftLogger;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** The Ready handed out and not yet advanced. */
  private outstanding: Ready | null = null;

  /** Restores term, vote, commit and membership from config.storage. */
  constructor(config: RaftConfig) {
    const c = validateConfig(config);
    this.logger = c.logger;
    this.raft = new Raft(c);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** This node's id. */
  get id(): NodeId {
    return this.raft.id;
  }

  /**
   * Bootstraps a brand-new cluster: only on an empty storage. Appends one AddVoter ConfChange
   * entry per peer at term 1, already committed. Like every conf change they take effect when
   * applied: the first Ready hands them out as committed entries, and the runtime calls
   * applyConfChange for each (so the configuration at every applied index is the same on all
   * nodes, restarted or not). Until then the node has no configuration and cannot campaign.
   */
  bootstrap(peers: NodeId[]): void {
    if (!Array.isArray(peers) || peers.length === 0) {
      throw new ConfigError('bootstrap needs at least one peer');
    }
    const seen = new Set<NodeId>();
    for (const id of peers) {
      if (!Number.isSafeInteger(id) || id <= 0) throw new ConfigError(`bootstrap: invalid peer id ${id}`);
      if (seen.has(id)) throw new ConfigError(`bootstrap: duplicate peer id ${id}`);
      seen.add(id);
    }
    const r = this.raft;
    if (r.raftLog.storage.lastIndex() !== 0 || r.raftLog.lastIndex() !== 0 || r.term !== 0) {
      throw new ConfigError("can't bootstrap a non-empty storage");
    }
    // Nothing is persisted yet: the first Ready must carry the hard state.
    this.prevHardState = { term: 0, vote: 0, commit: 0 };
    r.becomeFollower(1, NONE);
    const ents: Entry[] = peers.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: id, context: EMPTY_BYTES }),
    }));
    r.raftLog.append(ents);
    r.raftLog.committed = ents.length;
  }

  /** Advances logical time by one tick (election and heartbeat timeouts). */
  tick(): void {
    this.raft.tick();
  }

  /**
   * Starts an election now (with a pre-vote round if preVote is on). Right after bootstrap (or
   * whenever committed entries are not yet applied) the node may not know its configuration
   * yet; the request is then retried after advance() has applied them.
   */
  campaign(): void {
    this.raft.requestCampaign();
  }

  /**
   * Processes a message received from the network. A message no correct node sends (local
   * types, malformed fields, entries that do not follow `index`, an undecodable ConfChange…:
   * see messageProblem, which the transport applies too) throws StepError and changes nothing.
   * A forwarded proposal the leader cannot accept is dropped (the proposer retries).
   */
  step(m: Message): void {
    const problem = messageProblem(m);
    if (problem !== null) throw new StepError(`step: ${problem}`);
    const r = this.raft;
    if (m.to !== r.id) throw new StepError(`step: ${MessageType[m.type]} addressed to ${m.to}, this is node ${r.id}`);
    if (m.from === r.id && !isForwardable(m.type)) {
      // Only a request forwarded back to us can name us as its sender.
      throw new StepError(`step: ${MessageType[m.type]} claims to come from this node`);
    }
    if (RESPONSE_TYPES.has(m.type) && !r.trk.progress.has(m.from)) {
      this.logger.debug('ignoring response from unknown peer', { id: r.id, from: m.from, type: MessageType[m.type] });
      return;
    }
    if (m.type === MessageType.Prop) {
      if (m.entries.length === 0) return;
      // Copy: the leader stamps term/index into the entries, and the same message object may
      // be delivered twice (duplicating networks, in-memory transports).
      const copy = newMessage(MessageType.Prop, m.from, m.to, 0);
      copy.entries = m.entries.map((e) => ({ term: 0, index: 0, type: e.type, data: e.data }));
      try {
        r.step(copy);
      } catch (err) {
        if (!(err instanceof ProposalDroppedError)) throw err;
        this.logger.debug('dropped forwarded proposal', { id: r.id, from: m.from, reason: err.reason });
      }
      return;
    }
    r.step(m);
  }

  /** Proposes application data; throws ProposalDroppedError if it cannot be accepted now. */
  propose(data: Uint8Array): void {
    if (!(data instanceof Uint8Array)) throw new TypeError('propose: data must be a Uint8Array');
    const m = newMessage(MessageType.Prop, this.raft.id, NONE, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data }];
    this.raft.step(m, true);
  }

  /**
   * Proposes several entries in one message (one App per follower instead of one per entry).
   * All or none are accepted.
   */
  proposeBatch(data: Uint8Array[]): void {
    if (data.length === 0) return;
    const ents: Entry[] = new Array<Entry>(data.length);
    for (let i = 0; i < data.length; i++) {
      const d = data[i]!;
      if (!(d instanceof Uint8Array)) throw new TypeError('proposeBatch: data must be Uint8Arrays');
      ents[i] = { term: 0, index: 0, type: EntryType.Normal, data: d };
    }
    const m = newMessage(MessageType.Prop, this.raft.id, NONE, 0);
    m.entries = ents;
    this.raft.step(m, true);
  }

  /**
   * Proposes a membership change. It takes effect when its entry is applied (applyConfChange).
   * Throws ProposalDroppedError('conf-change-pending') on a leader while another change is
   * unapplied. (Forwarded from a follower, a conflicting change becomes a no-op entry.)
   */
  proposeConfChange(cc: ConfChange): void {
    validateConfChange(cc);
    const m = newMessage(MessageType.Prop, this.raft.id, NONE, 0);
    m.entries = [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }];
    this.raft.step(m, true);
  }

  /**
   * Requests a linearizable read point. The result appears in Ready.readStates with the same
   * context once the leader confirmed its leadership; serve the read once applied ≥ index.
   * Contexts must be unique among pending requests. Throws ProposalDroppedError('no-leader')
   * when no leader is known; requests may still be lost (leader change) — use a timeout.
   */
  readIndex(context: Uint8Array): void {
    if (!(context instanceof Uint8Array)) throw new TypeError('readIndex: context must be a Uint8Array');
    const r = this.raft;
    if (r.lead === NONE) throw new ProposalDroppedError('no-leader', `term ${r.term}`);
    const m = newMessage(MessageType.ReadIndex, r.id, NONE, 0);
    m.context = context;
    r.step(m);
  }

  /** Asks the leader to hand leadership to `transferee` (forwarded if we are a follower). */
  transferLeader(transferee: NodeId): void {
    if (!Number.isSafeInteger(transferee) || transferee <= 0) {
      throw new ConfigError(`transferLeader: invalid node id ${transferee}`);
    }
    // `from` is the sender (as for every message); `index` carries the transferee's id.
    const m = newMessage(MessageType.TransferLeader, this.raft.id, this.raft.id, 0);
    m.index = transferee;
    this.raft.step(m);
  }

  /** The transport could not deliver to `id`: stop optimistic pipelining to it. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage(MessageType.Unreachable, id, this.raft.id, 0));
  }

  /** Outcome of sending a snapshot to `id`; call once for every MsgSnap sent. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const m = newMessage(MessageType.SnapStatus, id, this.raft.id, 0);
    m.reject = !ok;
    this.raft.step(m);
  }

  /** Applies a committed ConfChange; call when applying its entry. Returns the new config. */
  applyConfChange(cc: ConfChange): ConfState {
    validateConfChange(cc);
    return this.raft.applyConfChange(cc);
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.raft;
    if (r.msgs.length > 0) return true;
    if (r.lead !== this.prevSoftState.leader || r.state !== this.prevSoftState.role) return true;
    const hs = this.prevHardState;
    if (r.term !== hs.term || r.vote !== hs.vote || r.raftLog.committed !== hs.commit) return true;
    if (r.raftLog.hasNextUnstableSnapshot()) return true;
    if (r.raftLog.hasNextUnstableEnts() || r.raftLog.hasNextCommittedEnts()) return true;
    return r.readStates.length > 0;
  }

  /** The next batch of work; see the module comment for the rules. */
  ready(): Ready {
    if (this.outstanding !== null) fail('ready() called again before advance() of the previous Ready');
    const r = this.raft;
    const log = r.raftLog;
    const entries = log.nextUnstableEnts();
    const committedEntries = log.nextCommittedEnts();
    const snapshot = log.nextUnstableSnapshot();

    let softState: SoftState | null = null;
    if (r.lead !== this.prevSoftState.leader || r.state !== this.prevSoftState.role) {
      softState = r.softState();
      this.prevSoftState = softState;
    }
    const prev = this.prevHardState;
    const termVoteChanged = r.term !== prev.term || r.vote !== prev.vote;
    let hardState: HardState | null = null;
    if (termVoteChanged || log.committed !== prev.commit) {
      hardState = r.hardState();
      assert(hardState.commit >= prev.commit, `commit went backwards: ${prev.commit} -> ${hardState.commit}`);
      this.prevHardState = hardState;
    }

    const messages: Message[] = [];
    const parallelMessages: Message[] = [];
    const msgs = r.msgs;
    r.msgs = [];
    if (r.state === Role.Leader && !termVoteChanged) {
      for (let i = 0; i < msgs.length; i++) {
        const m = msgs[i]!;
        if (isParallelType(m.type) && m.term === r.term && m.from === r.id) parallelMessages.push(m);
        else messages.push(m);
      }
    } else {
      for (let i = 0; i < msgs.length; i++) messages.push(msgs[i]!);
    }

    const readStates = r.readStates;
    r.readStates = [];

    log.acceptUnstable();
    if (committedEntries.length > 0) {
      log.acceptApplying(committedEntries[committedEntries.length - 1]!.index);
    }
    const rd: Ready = {
      softState,
      hardState,
      entries,
      snapshot,
      committedEntries,
      messages,
      parallelMessages,
      readStates,
      mustSync: entries.length > 0 || snapshot !== null || termVoteChanged,
    };
    this.outstanding = rd;
    return rd;
  }

  /** Acknowledges that `rd` was persisted, sent and applied as the module comment requires. */
  advance(rd: Ready): void {
    if (this.outstanding === null) fail('advance() without an outstanding Ready');
    if (rd !== this.outstanding) fail('advance() with a Ready that is not the last one returned by ready()');
    this.outstanding = null;
    const r = this.raft;
    const log = r.raftLog;
    if (rd.snapshot !== null) {
      const index = rd.snapshot.metadata.index;
      log.stableSnapTo(index);
      if (index > log.applied) log.appliedTo(index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1]!;
      log.stableTo(last.index, last.term);
      r.onLocalAppendDurable(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1]!;
      log.appliedTo(last.index);
      r.reduceUncommittedSize(payloadsSize(rd.committedEntries));
    }
    r.retryDeferredCampaign();
  }

  status(): Status {
    return getStatus(this.raft);
  }

  /** The underlying state machine, for white-box tests. Not part of the stable API. */
  get raftForTesting(): Raft {
    return this.raft;
  }
}

function validateConfChange(cc: ConfChange): void {
  if (cc === null || typeof cc !== 'object') throw new ConfigError('conf change must be an object');
  if (
    cc.type !== ConfChangeType.AddVoter &&
    cc.type !== ConfChangeType.RemoveNode &&
    cc.type !== ConfChangeType.AddLearner &&
    cc.type !== ConfChangeType.PromoteLearner
  ) {
    throw new ConfigError(`unknown conf change type ${String(cc.type)}`);
  }
  if (!Number.isSafeInteger(cc.nodeId) || cc.nodeId <= 0) {
    throw new ConfigError(`conf change node id must be a positive safe integer, got ${cc.nodeId}`);
  }
  if (!(cc.context instanceof Uint8Array)) throw new ConfigError('conf change context must be a Uint8Array');
}
