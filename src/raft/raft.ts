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
  type ReadState,
  type SoftState,
  type Snapshot,
} from './types.js';
import type { RaftLogger, ReadIndexFanout, ValidatedConfig } from './config.js';
import { RaftLog } from './log.js';
import { ProgressTracker } from './tracker/tracker.js';
import type { Progress } from './tracker/progress.js';
import { ReadOnly } from './read-only.js';
import { CompactedError, ConfigError, ProposalDroppedError } from './errors.js';
import { assert, fail } from './assert.js';
import { EMPTY_BYTES, entrySize, payloadsSize } from './util.js';
import { decodeConfChange } from './codec.js';
import { mutations } from '../testing/mutations.js';
import type { RandomSource } from './types.js';

/** Why a node campaigns: a pre-vote round, a real election, or a leadership transfer. */
export type CampaignType = 'pre-election' | 'election' | 'transfer';

/** Context of MsgVote in a transfer campaign: lets voters bypass the CheckQuorum lease. */
const CAMPAIGN_TRANSFER = new Uint8Array(
  Array.from('CampaignTransfer', (c) => c.charCodeAt(0)),
);

/** Read rounds in a row an unasked voter must complete to become the preferred reader. */
const READ_RESCUES_TO_SWITCH = 2;

function isCampaignTransfer(ctx: Uint8Array): boolean {
  if (ctx.length !== CAMPAIGN_TRANSFER.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== CAMPAIGN_TRANSFER[i]) return false;
  return true;
}

/** A message with every field present (one hidden class for all messages). */
export function newMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  return {
    type,
    from,
    to,
    term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: EMPTY_BYTES,
  };
}

/**
 * The node a TransferLeader message asks to make leader: `index` carries its id, or 0 when
 * the sender itself is the transferee (`from` is always the sender).
 */
export function transfereeOf(m: Message): NodeId {
  return m.index !== 0 ? m.index : m.from;
}

function voteRespType(t: MessageType): MessageType {
  if (t === MessageType.Vote) return MessageType.VoteResp;
  if (t === MessageType.PreVote) return MessageType.PreVoteResp;
  return fail(`not a vote message: ${t}`);
}

/**
 * The Raft state machine (etcd's `raft` struct). Pure: no I/O, no timers, randomness only from
 * the injected RandomSource. Outputs accumulate in `msgs` and `readStates` and in the log's
 * unstable/committed cursors; RawNode turns them into Ready batches.
 */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  state: Role = Role.Follower;
  readonly raftLog: RaftLog;
  readonly trk: ProgressTracker;
  /** Whether this node is a learner in the current configuration. */
  isLearner = false;
  /** Outgoing messages, in emission order. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** Target of an ongoing leadership transfer, or NONE. */
  leadTransferee: NodeId = NONE;
  /** Index of the last ConfChange entry proposed by this leader; new ones wait until applied. */
  pendingConfIndex = 0;
  /** Payload bytes of uncommitted entries appended by this leader (flow control). */
  uncommittedSize = 0;
  readOnly: ReadOnly;
  /** True while the election timer's own Hup is being stepped. */
  private campaignFromTimer = false;
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /**
   * Monotonic logical clock: ticks seen by this node, plus one (so a 0 stamp means "none").
   * A leader stamps every App and Heartbeat with it (in `rejectHint`, see Message); the
   * follower echoes the stamp back, which tells the leader when the follower's lease (its
   * refusal to vote, see `inLease` in step) began at the latest.
   */
  clock = 1;
  /** This leader sent TimeoutNow in this term: the transferee may win an election that
   * overrides the followers' lease at any time, so lease reads are over for this term. */
  leaseRevoked = false;
  /** An explicit campaign() waits for committed entries to be applied (see requestCampaign). */
  deferredCampaign = false;
  /** ReadIndex requests received before this leader committed an entry of its term. */
  pendingReadIndexMessages: Message[] = [];
  /** Last sequence number handed out to Progress.readAckSeq. */
  private readAckCounter = 0;
  /** Voters the newest read round asked, this leader included (heartbeatReadQuorum); null:
   * everyone was asked. */
  private readAsked: ReadonlyMap<NodeId, boolean> | null = null;
  /** Read rounds in a row completed by a voter that was not asked (see notePreferredReader). */
  private readRescues = 0;

  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly disableProposalForwarding: boolean;
  readonly readIndexFanout: ReadIndexFanout;
  readonly logger: RaftLogger;
  private readonly random: RandomSource;

  constructor(c: ValidatedConfig) {
    this.id = c.id;
    this.logger = c.logger;
    this.random = c.random;
    this.checkQuorum = c.checkQuorum;
    this.preVote = c.preVote;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.maxMsgSize = c.maxSizePerMsg;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize;
    this.disableProposalForwarding = c.disableProposalForwarding;
    this.readIndexFanout = c.readIndexFanout;
    this.readOnly = new ReadOnly(c.readOnlyOption);
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady, c.logger);
    this.trk = new ProgressTracker(c.maxInflightMsgs, c.maxInflightBytes);

    const { hardState, confState } = c.storage.initialState();
    this.restoreConfState(confState);
    if (!(hardState.term === 0 && hardState.vote === 0 && hardState.commit === 0)) {
      this.loadState(hardState);
    }
    if (c.applied > 0) {
      if (c.applied > this.raftLog.committed || c.applied < this.raftLog.firstIndex() - 1) {
        throw new ConfigError(
          `applied (${c.applied}) must be in [snapshot index ${this.raftLog.firstIndex() - 1}, commit ${this.raftLog.committed}]`,
        );
      }
      this.raftLog.appliedTo(c.applied);
    }
    this.becomeFollower(this.term, NONE);
    this.logger.info('raft node started', {
      id: this.id,
      term: this.term,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      lastTerm: this.raftLog.lastTerm(),
      voters: this.trk.voters,
      learners: this.trk.learners,
    });
  }

  private restoreConfState(cs: ConfState): void {
    const seen = new Set<NodeId>();
    const next = this.raftLog.lastIndex();
    for (const id of cs.voters) {
      assert(Number.isSafeInteger(id) && id > 0, `confState voter id ${id} invalid`);
      assert(!seen.has(id), `confState lists ${id} twice`);
      seen.add(id);
      this.trk.setMember(id, false, next);
    }
    for (const id of cs.learners) {
      assert(Number.isSafeInteger(id) && id > 0, `confState learner id ${id} invalid`);
      assert(!seen.has(id), `confState lists ${id} as voter and learner`);
      seen.add(id);
      this.trk.setMember(id, true, next);
    }
    const pr = this.trk.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
  }

  private loadState(hs: HardState): void {
    assert(Number.isSafeInteger(hs.term) && hs.term >= 0, `hardState.term ${hs.term} invalid`);
    assert(Number.isSafeInteger(hs.vote) && hs.vote >= 0, `hardState.vote ${hs.vote} invalid`);
    assert(Number.isSafeInteger(hs.commit) && hs.commit >= 0, `hardState.commit ${hs.commit} invalid`);
    if (hs.commit > this.raftLog.lastIndex()) {
      fail(`hardState.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.commitTo(hs.commit);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  // ---------------------------------------------------------------------------------------
  // Sending

  /** Queues a message, stamping `from` and (except for forwarded Prop/ReadIndex) `term`. */
  private send(m: Message): void {
    m.from = this.id;
    const t = m.type;
    if (
      t === MessageType.Vote ||
      t === MessageType.VoteResp ||
      t === MessageType.PreVote ||
      t === MessageType.PreVoteResp
    ) {
      // Vote messages carry the campaign's term, which may differ from ours (pre-vote).
      if (m.term === 0) fail(`term should be set when sending ${MessageType[t]}`);
    } else if (t !== MessageType.Prop && t !== MessageType.ReadIndex) {
      // Prop and ReadIndex are forwarded like local messages, without a term.
      m.term = this.term;
    }
    this.msgs.push(m);
  }

  private forward(m: Message, to: NodeId): void {
    // Forwarded messages keep their original `from` (the requester).
    const f = newMessage(m.type, m.from, to, 0);
    f.entries = m.entries;
    f.context = m.context;
    if (m.type === MessageType.TransferLeader) {
      f.term = this.term;
      f.index = m.index;
    }
    this.msgs.push(f);
  }

  /** Sends an append (with entries if any) to `to`. */
  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends an App with new entries to `to` if flow control allows. With sendIfEmpty, also an
   * empty one (to carry the commit index or probe). Returns whether a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean, commitOnly = false): boolean {
    const pr = this.trk.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.tryTerm(prevIndex);
    if (prevTerm < 0) {
      // The entries the follower needs were compacted: send a snapshot instead.
      return this.maybeSendSnapshot(to, pr);
    }
    let ents: Entry[] = [];
    // With a full window in replicate state send only an empty App: it still gets acked or
    // rejected, which frees the window if the earlier messages were lost.
    if (pr.state !== 'replicate' || !pr.inflights.full()) {
      try {
        ents = this.raftLog.entries(pr.next, this.maxMsgSize);
      } catch (err) {
        if (err instanceof CompactedError) return this.maybeSendSnapshot(to, pr);
        throw err;
      }
    }
    if (ents.length === 0) {
      if (!sendIfEmpty) return false;
      // Broadcasting a new commit index: a follower with Apps in flight learns it when it acks
      // them (handleAppendResponse), so skip the empty App; under load this halves the
      // message count. (Never skipped otherwise: an empty App also recovers lost ones.)
      if (commitOnly && pr.state === 'replicate' && pr.inflights.count() > 0) return false;
    }
    const m = newMessage(MessageType.App, this.id, to, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.raftLog.committed;
    m.rejectHint = this.clock; // send stamp, echoed in an accepting AppResp
    this.send(m);
    let bytes = 0;
    for (let i = 0; i < ents.length; i++) bytes += entrySize(ents[i]!);
    pr.updateOnEntriesSend(ents.length, bytes, pr.next);
    if (pr.sentCommit < m.commit) pr.sentCommit = m.commit;
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.logger.debug('not sending snapshot to inactive follower', { id: this.id, to });
      return false;
    }
    const snap = this.raftLog.snapshot();
    const sindex = snap.metadata.index;
    assert(Number.isSafeInteger(sindex) && sindex > 0, `need a non-empty snapshot to send to ${to}`);
    assert(
      sindex >= this.raftLog.firstIndex() - 1,
      `storage snapshot ${sindex} older than the compaction point ${this.raftLog.firstIndex() - 1}`,
    );
    this.logger.debug('sending snapshot', {
      id: this.id,
      to,
      index: sindex,
      term: snap.metadata.term,
      progress: pr.toString(),
    });
    pr.becomeSnapshot(sindex);
    const m = newMessage(MessageType.Snap, this.id, to, this.term);
    m.snapshot = snap;
    this.send(m);
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    const pr = this.trk.progress.get(to)!;
    // Never tell a follower to commit beyond what it is known to have: it might not have it.
    const m = newMessage(MessageType.Heartbeat, this.id, to, this.term);
    m.commit = Math.min(pr.match, this.raftLog.committed);
    m.context = ctx;
    m.rejectHint = this.clock; // send stamp, echoed in the HeartbeatResp
    if (pr.sentCommit < m.commit) pr.sentCommit = m.commit;
    this.send(m);
  }

  /**
   * Sends append messages to every other member, in ascending id order. `commitOnly`: the
   * reason is a new commit index, so followers with Apps in flight may be skipped.
   */
  bcastAppend(commitOnly = false): void {
    const ids = this.trk.ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id !== this.id) this.maybeSendAppend(id, true, commitOnly);
    }
  }

  private bcastHeartbeat(): void {
    const ctx = this.readOnly.lastPendingRequestContext();
    this.bcastHeartbeatWithContext(ctx ?? EMPTY_BYTES);
  }

  private bcastHeartbeatWithContext(ctx: Uint8Array): void {
    const ids = this.trk.ids;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    // The transferee campaigns with a context that makes voters ignore their lease.
    this.leaseRevoked = true;
    this.send(newMessage(MessageType.TimeoutNow, this.id, to, this.term));
  }

  // ---------------------------------------------------------------------------------------
  // Commit and progress

  /** Advances the commit index to the quorum match if that entry is from our term (§5.4.2). */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  /**
   * The leader's own entries up to (index, term) are durable (called by RawNode.advance):
   * only now do they count towards the commit quorum.
   */
  onLocalAppendDurable(index: number, term: number): void {
    if (this.state !== Role.Leader) return;
    if (!this.raftLog.matchTerm(index, term)) return;
    const pr = this.trk.progress.get(this.id);
    if (pr === undefined) return;
    if (pr.maybeUpdate(index) && this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend(true);
    }
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    // Our own entries count only once durable: those before the unstable tail are.
    const stableIndex = this.raftLog.unstable.offset - 1;
    for (const [id, pr] of this.trk.progress) {
      pr.resetState('probe');
      pr.match = 0;
      pr.next = lastIndex + 1;
      pr.recentActive = false;
      pr.ackedSendTick = 0;
      pr.graceTick = 0;
      if (id === this.id) pr.match = Math.min(stableIndex, lastIndex);
    }
    this.leaseRevoked = false;
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
    this.readAsked = null;
    this.readRescues = 0;
    this.pendingReadIndexMessages = [];
  }

  /** Appends proposal entries as leader; false if the uncommitted-size limit refuses them. */
  private appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i]!.term = this.term;
      es[i]!.index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      this.logger.warn('appending new entries would exceed the uncommitted entry size limit; dropping proposal', {
        id: this.id,
      });
      return false;
    }
    this.raftLog.append(es);
    // The leader acknowledges its own entries once they are durable (onLocalAppendDurable).
    return true;
  }

  private increaseUncommittedSize(ents: Entry[]): boolean {
    const s = payloadsSize(ents);
    if (
      this.maxUncommittedSize > 0 &&
      this.uncommittedSize > 0 &&
      s > 0 &&
      this.uncommittedSize + s > this.maxUncommittedSize
    ) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  reduceUncommittedSize(s: number): void {
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  // ---------------------------------------------------------------------------------------
  // Timers

  tick(): void {
    this.clock++;
    if (this.state === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      // The lease this node promised its leader has run out by now (see promisedLease); the
      // counter is reset before stepping, so say that this campaign comes from the timer.
      this.electionElapsed = 0;
      this.campaignFromTimer = true;
      try {
        this.step(newMessage(MessageType.Hup, this.id, this.id, 0));
      } finally {
        this.campaignFromTimer = false;
      }
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    // Checked on every tick (not once per election timeout): a leader that cannot hold the
    // followers' lease any more steps down at once, whatever electionElapsed says (a
    // leadership transfer resets that).
    if (this.checkQuorum) this.checkQuorumActive();
    if (this.state !== Role.Leader) return;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        // Everyone (but us) must prove liveness again; recentActive only steers snapshot
        // sending and status, leadership uses the acknowledged send ticks.
        for (const [id, pr] of this.trk.progress) if (id !== this.id) pr.recentActive = false;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === Role.Leader && this.leadTransferee !== NONE) {
        this.logger.info('leadership transfer timed out', { id: this.id, to: this.leadTransferee });
        this.abortLeaderTransfer();
      }
    }
    if (this.state !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage(MessageType.Beat, this.id, this.id, 0));
    }
  }

  // ---------------------------------------------------------------------------------------
  // Leader lease (CheckQuorum, lease-based reads)
  //
  // A follower refuses votes while electionElapsed < electionTimeout, counted from the last
  // App/Heartbeat/Snap it received from the leader (inLease in step). The leader knows when
  // such a message was SENT (its clock stamp), and it was received no earlier; so while a
  // quorum of voters has echoed a stamp s, none of them votes before electionTimeout of its
  // ticks after s, and no other leader can be elected. (Tracking "heard from recently" per
  // check window instead, as etcd does, lets a cut-off leader lead for up to two election
  // timeouts while the followers' lease is only one.)

  /** Notes that `pr` echoed the send stamp `stamp` (0 = an unstamped message). */
  private recordAck(pr: Progress, stamp: number): void {
    // A stamp from the future is not ours (corrupt or from an earlier incarnation): ignore it.
    if (stamp > pr.ackedSendTick && stamp <= this.clock) pr.ackedSendTick = stamp;
  }

  /** The newest send stamp a quorum of voters has acknowledged (we ack ours at once). */
  private quorumAckedSendTick(): number {
    return this.trk.quorumValue((id) => (id === this.id ? this.clock : this.trk.progress.get(id)!.ackedSendTick));
  }

  /**
   * Whether a lease read is safe now: a quorum acknowledged a message we sent at s with
   * clock − s < electionTimeout − 1. Why "− 1": the follower received it at or after our tick
   * s; its lease ends at its electionTimeout-th tick after that, which (ticks at the same rate,
   * arbitrary phase) comes after our tick s + electionTimeout − 1 at the earliest — and we
   * may serve a read at any time before our next tick. Tick rates are assumed equal (no
   * drift), as in etcd; a transfer (TimeoutNow) ends the lease for the rest of the term.
   */
  holdsLease(): boolean {
    if (this.state !== Role.Leader || !this.checkQuorum || this.leaseRevoked) return false;
    return this.clock - this.quorumAckedSendTick() < this.electionTimeout - 1;
  }

  /**
   * CheckQuorum, on every leader tick: step down once no quorum of voters has acknowledged
   * anything we sent within the last electionTimeout ticks (then followers may already be
   * voting for someone else). A member counts as acked at its graceTick (our term began, or
   * it was added) so it gets one election timeout to answer.
   */
  private checkQuorumActive(): void {
    if (this.state !== Role.Leader) return;
    const alive = this.trk.quorumValue((id) => {
      if (id === this.id) return this.clock;
      const pr = this.trk.progress.get(id)!;
      return pr.ackedSendTick > pr.graceTick ? pr.ackedSendTick : pr.graceTick;
    });
    if (this.clock - alive < this.electionTimeout) return;
    this.logger.warn('stepped down to follower since quorum is not active', {
      id: this.id,
      term: this.term,
      clock: this.clock,
      quorumAckedAt: alive,
    });
    this.becomeFollower(this.term, NONE);
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.intn(this.electionTimeout);
  }

  // ---------------------------------------------------------------------------------------
  // Role transitions

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = Role.Follower;
    this.logger.info('became follower', { id: this.id, term: this.term, lead });
  }

  becomeCandidate(): void {
    assert(this.state !== Role.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = Role.Candidate;
    this.logger.info('became candidate', { id: this.id, term: this.term });
  }

  becomePreCandidate(): void {
    assert(this.state !== Role.Leader, 'invalid transition [leader -> pre-candidate]');
    // Pre-candidacy changes neither term nor vote: a failed pre-vote disrupts nobody.
    this.trk.resetVotes();
    this.lead = NONE;
    this.state = Role.PreCandidate;
    this.logger.info('became pre-candidate', { id: this.id, term: this.term });
  }

  becomeLeader(): void {
    assert(this.state !== Role.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = Role.Leader;
    const pr = this.trk.progress.get(this.id);
    if (pr !== undefined) {
      const match = pr.match;
      pr.becomeReplicate();
      pr.match = match;
      pr.next = this.raftLog.lastIndex() + 1;
      pr.recentActive = true;
    }
    // CheckQuorum gives every member one election timeout from now to acknowledge us.
    for (const p of this.trk.progress.values()) p.graceTick = this.clock;
    // We may or may not have an unapplied conf change in the log; conservatively assume so
    // until everything up to here is applied (cheaper than scanning the tail).
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An empty entry of the new term lets us commit (and learn the commit index) (§5.4.2, §8).
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    if (!this.appendEntry([empty])) fail('empty entry was dropped');
    this.logger.info('became leader', { id: this.id, term: this.term });
  }

  /** Whether this node may campaign: a voter, with no snapshot waiting to be applied. */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasNextOrInProgressSnapshot();
  }

  /**
   * An explicit campaign request (RawNode.campaign). If the node cannot campaign yet only
   * because committed entries (possibly conf changes, e.g. right after bootstrap) are not
   * applied, the request is remembered and retried after the next advance().
   */
  requestCampaign(): void {
    this.deferredCampaign = false;
    this.step(newMessage(MessageType.Hup, this.id, this.id, 0));
    if (this.state === Role.Follower && this.raftLog.applied < this.raftLog.committed) {
      this.deferredCampaign = true;
    }
  }

  /** Retries a deferred campaign request once entries were applied (RawNode.advance). */
  retryDeferredCampaign(): void {
    if (!this.deferredCampaign) return;
    if (this.state !== Role.Follower || this.lead !== NONE) {
      // Something happened meanwhile (an election, a leader appeared): the request is moot.
      this.deferredCampaign = false;
      return;
    }
    this.requestCampaign();
  }

  private hup(t: CampaignType): void {
    if (this.state === Role.Leader) {
      this.logger.debug('ignoring campaign: already leader', { id: this.id });
      return;
    }
    if (!this.promotable()) {
      this.logger.warn('is unpromotable and can not campaign', { id: this.id });
      return;
    }
    if (t !== 'transfer' && !this.campaignFromTimer && this.promisedLease()) {
      // With lease-based reads the leader counts on this follower not to help elect anyone
      // until an election timeout has passed since it last heard from the leader (that is what
      // its lease is). A timeout-driven Hup never arrives that early; an explicit campaign()
      // could, and would let a successor commit writes the old leader's lease reads miss.
      this.logger.info('ignoring campaign: the leader\'s lease on this node has not expired', {
        id: this.id,
        term: this.term,
        leader: this.lead,
      });
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logger.warn('cannot campaign: there are committed but unapplied conf changes', {
        id: this.id,
        term: this.term,
      });
      return;
    }
    this.logger.info('starting a new election', { id: this.id, term: this.term, type: t });
    this.campaign(t);
  }

  /** A follower inside the current leader's lease window, with lease-based reads on. */
  private promisedLease(): boolean {
    return (
      this.readOnly.option === 'lease-based' &&
      this.checkQuorum &&
      this.lead !== NONE &&
      this.electionElapsed < this.electionTimeout
    );
  }

  /** Whether committed-but-unapplied entries include a ConfChange (it could change quorum). */
  private hasUnappliedConfChanges(): boolean {
    const log = this.raftLog;
    if (log.applied >= log.committed) return false;
    let lo = Math.max(log.applied, log.firstIndex() - 1) + 1;
    const hi = log.committed + 1;
    while (lo < hi) {
      const ents = log.slice(lo, hi, log.maxApplyingEntsSize);
      for (let i = 0; i < ents.length; i++) {
        if (ents[i]!.type === EntryType.ConfChange) return true;
      }
      lo += ents.length;
    }
    return false;
  }

  campaign(t: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (t === 'pre-election') {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      // Pre-votes are requested for the next term without incrementing ours.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    // Our own vote counts at once: the vote requests below only go out after the Ready that
    // persists our term and vote.
    const { result } = this.poll(this.id, voteRespType(voteMsg), true);
    if (result === 'won') {
      // A single-voter cluster.
      if (t === 'pre-election') {
        this.campaign('election');
      } else {
        this.becomeLeader();
        this.bcastAppend(); // learners, if any
      }
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    const voters = this.trk.voters;
    for (let i = 0; i < voters.length; i++) {
      const id = voters[i]!;
      if (id === this.id) continue;
      const m = newMessage(voteMsg, this.id, id, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (t === 'transfer') m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: NodeId, t: MessageType, granted: boolean): ReturnType<ProgressTracker['tallyVotes']> {
    this.logger.debug(granted ? 'received vote grant' : 'received vote rejection', {
      id: this.id,
      from: id,
      type: MessageType[t],
      term: this.term,
    });
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes();
  }

  // ---------------------------------------------------------------------------------------
  // Step

  /**
   * Processes one message (network or local). Throws ProposalDroppedError for a proposal it
   * cannot accept; `local` marks a proposal made on this node (vs. forwarded to it).
   */
  step(m: Message, local = false): void {
    // Term handling first: it may turn us into a follower.
    if (m.term === 0) {
      // Local message, or a forwarded Prop/ReadIndex.
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = isCampaignTransfer(m.context);
        const inLease =
          this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // A live leader's followers neither update their term nor vote (§6 of the thesis:
          // protects against removed or partitioned servers).
          this.logger.info('ignoring vote request: lease is not expired', {
            id: this.id,
            term: this.term,
            from: m.from,
            msgTerm: m.term,
            type: MessageType[m.type],
            remainingTicks: this.electionTimeout - this.electionElapsed,
          });
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term in response to a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term we asked for; we bump our term only when
        // a quorum grants. A rejection carries the rejecter's term: follow it (below).
      } else {
        this.logger.info('received a message with higher term', {
          id: this.id,
          term: this.term,
          msgTerm: m.term,
          from: m.from,
          type: MessageType[m.type],
        });
        if (
          m.type === MessageType.App ||
          m.type === MessageType.Heartbeat ||
          m.type === MessageType.Snap
        ) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A leader of an older term: maybe our term grew while we were partitioned and we can
        // no longer win (votes are ignored under CheckQuorum). Tell it our term so it steps
        // down and a fresh election can include us.
        this.send(newMessage(MessageType.AppResp, this.id, m.from, 0));
      } else if (m.type === MessageType.PreVote) {
        // Reject explicitly so a pre-candidate with a stale term learns ours; dropping it could
        // deadlock a cluster upgraded to pre-vote.
        const r = newMessage(MessageType.PreVoteResp, this.id, m.from, this.term);
        r.reject = true;
        this.send(r);
      } else {
        this.logger.debug('ignored a message with lower term', {
          id: this.id,
          term: this.term,
          msgTerm: m.term,
          from: m.from,
          type: MessageType[m.type],
        });
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.preVote ? 'pre-election' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        // We can vote if this repeats a vote we already cast, or we have not voted and know of
        // no leader in this term, or it is a pre-vote for a future term…
        const canVote =
          this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === MessageType.PreVote && m.term > this.term);
        // …and the candidate's log is at least as up-to-date as ours (§5.4.1). Learners answer
        // too: a learner may have been promoted without knowing it yet; the candidate only
        // counts voters of its own configuration.
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Respond with the message's term: for pre-votes ours may be older, and the
          // candidate would ignore a response with a stale term.
          this.send(newMessage(voteRespType(m.type), this.id, m.from, m.term));
          if (m.type === MessageType.Vote) {
            // Only real votes are recorded.
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          const r = newMessage(voteRespType(m.type), this.id, m.from, this.term);
          r.reject = true;
          this.send(r);
        }
        return;
      }
      default:
        break;
    }
    switch (this.state) {
      case Role.Leader:
        this.stepLeader(m, local);
        return;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        return;
      default:
        this.stepFollower(m);
    }
  }

  private stepLeader(m: Message, local: boolean): void {
    // Messages that need no progress for m.from.
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        this.checkQuorumActive();
        return;
      case MessageType.Prop:
        this.leaderPropose(m, local);
        return;
      case MessageType.ReadIndex:
        if (mutations.singleVoterReadIndexShortcut && this.trk.isSingleton() && this.trk.isVoter(this.id)) {
          // (Mutation, test/simnode only: the old shortcut, before the commit of our term.)
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // A read index is only safe once we know the commit index of our term (§6.4). That
        // holds for the only voter too: after a restart its commit index may lag entries it
        // acknowledged before (a commit-only hard state is written without fsync), and only
        // committing an entry of its own term brings it up to date.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.sendReadIndexResponse(m);
        return;
      case MessageType.TransferLeader:
        this.leaderTransfer(transfereeOf(m));
        return;
      default:
        break;
    }

    const pr = this.trk.progress.get(m.from);
    if (pr === undefined) {
      this.logger.debug('no progress available for sender', { id: this.id, from: m.from, type: MessageType[m.type] });
      return;
    }
    switch (m.type) {
      case MessageType.AppResp:
        if (!m.reject && m.index > this.raftLog.lastIndex()) {
          // An ack for entries we never had: forged, or from a node whose log does not come
          // from ours. Believing it would count it towards commits and make us send from there.
          this.logger.warn('ignoring append response beyond our last index', {
            id: this.id,
            from: m.from,
            index: m.index,
            lastIndex: this.raftLog.lastIndex(),
          });
          return;
        }
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        this.recordAck(pr, m.rejectHint);
        pr.msgAppFlowPaused = false;
        // Catch up a lagging follower; a probing one gets an (empty) append so it can move to
        // replicate once it answers. Snapshot state stays paused.
        if (pr.match < this.raftLog.lastIndex() || pr.state === 'probe') this.sendAppend(m.from);
        // Safe ReadIndex rounds (also the fallback of lease-based reads without a lease).
        if (m.context.length === 0 || this.readOnly.pendingCount() === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (acks === null) return;
        const completed = this.trk.voteResultOf(acks) === 'won';
        this.notePreferredReader(pr, m.from, completed);
        if (!completed) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== 'snapshot') return;
        if (!m.reject) {
          pr.becomeProbe();
          this.logger.debug('snapshot succeeded, resumed sending replication messages', { id: this.id, to: m.from });
        } else {
          // Clear pendingSnapshot first, or we would probe from an index never installed.
          pr.pendingSnapshot = 0;
          pr.becomeProbe();
          this.logger.debug('snapshot failed, resumed sending replication messages', { id: this.id, to: m.from });
        }
        // Wait for the follower's AppResp (success) or the next heartbeat (failure).
        pr.msgAppFlowPaused = true;
        return;
      case MessageType.Unreachable:
        // During optimistic replication an unreachable peer has probably lost App messages.
        if (pr.state === 'replicate') pr.becomeProbe();
        this.logger.debug('failed to send message to unreachable peer', { id: this.id, to: m.from });
        return;
      default:
        return;
    }
  }

  private leaderTransfer(transferee: NodeId): void {
    const pr = this.trk.progress.get(transferee);
    if (pr === undefined) {
      this.logger.debug('ignored transferring leadership to a non-member', { id: this.id, to: transferee });
      return;
    }
    if (pr.isLearner) {
      this.logger.debug('ignored transferring leadership to a learner', { id: this.id, to: transferee });
      return;
    }
    const last = this.leadTransferee;
    if (last !== NONE) {
      if (last === transferee) {
        this.logger.info('transfer leadership already in progress', { id: this.id, to: transferee });
        return;
      }
      this.abortLeaderTransfer();
      this.logger.info('aborted previous leadership transfer', { id: this.id, to: last });
    }
    if (transferee === this.id) {
      this.logger.debug('ignored transferring leadership to self', { id: this.id });
      return;
    }
    this.logger.info('starting leadership transfer', { id: this.id, term: this.term, to: transferee });
    // The transfer must complete within one election timeout.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) {
      this.sendTimeoutNow(transferee);
    } else {
      this.sendAppend(transferee);
    }
  }

  private leaderPropose(m: Message, local: boolean): void {
    assert(m.entries.length > 0, 'stepped empty Prop');
    if (!this.trk.progress.has(this.id)) {
      // Removed from the configuration while leading: accept nothing new.
      throw new ProposalDroppedError('not-a-member');
    }
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError('transferring-leader', `transfer to ${this.leadTransferee} in progress`);
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (e.type !== EntryType.ConfChange) continue;
      // Decoded now, not first when applied: an undecodable change, once committed, would stop
      // every node that applies it (and again after each restart: it is in their logs).
      try {
        decodeConfChange(e.data);
      } catch (err) {
        throw new ProposalDroppedError('invalid-conf-change', (err as Error).message);
      }
    }
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i]!;
      if (e.type !== EntryType.ConfChange) continue;
      if (this.pendingConfIndex > this.raftLog.applied) {
        if (local) {
          throw new ProposalDroppedError(
            'conf-change-pending',
            `unapplied conf change at index ${this.pendingConfIndex} (applied ${this.raftLog.applied})`,
          );
        }
        // A forwarded one: the proposer cannot be told, so (like etcd) replace it with an
        // empty normal entry; it never takes effect.
        this.logger.info('ignoring forwarded conf change while another is pending', {
          id: this.id,
          pendingConfIndex: this.pendingConfIndex,
          applied: this.raftLog.applied,
        });
        m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
      } else {
        this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
      }
    }
    if (!this.appendEntry(m.entries)) throw new ProposalDroppedError('uncommitted-size-limit');
    this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    // Only an accepting response echoes the send stamp (a rejection's rejectHint is a hint).
    if (!m.reject) this.recordAck(pr, m.rejectHint);
    if (m.reject) {
      // rejectHint is the follower's guess of the last index where we may match and logTerm
      // its term there. Skip every index in our log whose term is above that (they cannot
      // match): one round trip per term rather than per entry.
      this.logger.debug('received AppResp rejection', {
        id: this.id,
        from: m.from,
        index: m.index,
        rejectHint: m.rejectHint,
        logTerm: m.logTerm,
      });
      let nextProbeIdx = m.rejectHint;
      if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    // Update if the match moved, or if a probing follower confirmed its position.
    if (!(pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === 'probe'))) return;
    if (pr.state === 'probe') {
      pr.becomeReplicate();
    } else if (pr.state === 'snapshot' && pr.match + 1 >= this.raftLog.firstIndex()) {
      // The follower caught up far enough (by snapshot or otherwise) to continue from the log.
      this.logger.debug('recovered from needing snapshot', { id: this.id, to: m.from });
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      // The commit index moved within our term: pending reads can be served.
      this.releasePendingReadIndexMessages();
      this.bcastAppend(true);
    } else if (oldPaused || pr.sentCommit < this.raftLog.committed) {
      // The follower may have missed our commit index (paused, or skipped while it had Apps
      // in flight).
      this.sendAppend(m.from);
    }
    // Flow control may now allow several messages at once (e.g. after probe → replicate).
    while (this.maybeSendAppend(m.from, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
      this.logger.info('transferee caught up; sending TimeoutNow', { id: this.id, to: m.from });
      this.sendTimeoutNow(m.from);
    }
  }

  private stepCandidate(m: Message): void {
    // Only vote responses for our current kind of candidacy count (a candidate may still get
    // stale pre-vote responses).
    const myVoteRespType = this.state === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError('no-leader', `candidate at term ${this.term}`);
      case MessageType.App:
        this.becomeFollower(m.term, m.from); // m.term === this.term
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteRespType: {
        const { granted, rejected, result } = this.poll(m.from, m.type, !m.reject);
        this.logger.info('vote tally', { id: this.id, granted, rejected, type: MessageType[m.type] });
        if (result === 'won') {
          if (this.state === Role.PreCandidate) {
            this.campaign('election');
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          // A pre-vote response carries the future term; keep ours.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case MessageType.TimeoutNow:
        this.logger.debug('ignored TimeoutNow as candidate', { id: this.id, from: m.from });
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    if (
      (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) &&
      this.lead !== NONE && m.from !== this.lead
    ) {
      // A term has one leader (§5.2) and we know who it is: this message is forged or from a
      // confused node. Obeying it would make us follow (and forward requests to) the sender.
      this.logger.warn('ignoring a leader message from a node that does not lead this term', {
        id: this.id,
        term: this.term,
        lead: this.lead,
        from: m.from,
        type: MessageType[m.type],
      });
      return;
    }
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new ProposalDroppedError('no-leader', `follower at term ${this.term}`);
        if (this.disableProposalForwarding) throw new ProposalDroppedError('forwarding-disabled');
        this.forward(m, this.lead);
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) {
          this.logger.info('no leader; dropping leadership transfer request', { id: this.id, term: this.term });
          return;
        }
        this.forward(m, this.lead);
        return;
      case MessageType.TimeoutNow:
        // Transfers skip pre-vote: we are not recovering from a partition.
        this.logger.info('received TimeoutNow; starting an election to take leadership', {
          id: this.id,
          term: this.term,
          from: m.from,
        });
        this.hup('transfer');
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) {
          this.logger.info('no leader; dropping ReadIndex', { id: this.id, term: this.term });
          return;
        }
        this.forward(m, this.lead);
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    const log = this.raftLog;
    if (m.index < log.committed) {
      // Everything up to our commit index is already known to match.
      const r = newMessage(MessageType.AppResp, this.id, m.from, 0);
      r.index = log.committed;
      r.rejectHint = m.rejectHint; // echo the leader's send stamp (lease)
      this.send(r);
      return;
    }
    const lastNew = log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      const r = newMessage(MessageType.AppResp, this.id, m.from, 0);
      r.index = lastNew;
      r.rejectHint = m.rejectHint; // echo the leader's send stamp (lease)
      this.send(r);
      return;
    }
    // Mismatch at m.index. Hint the largest (index, term) in our log with index ≤ m.index and
    // term ≤ m.logTerm: every entry after it cannot match the leader's log.
    const hintIndex = Math.min(m.index, log.lastIndex());
    const hint = log.findConflictByTerm(hintIndex, m.logTerm);
    this.logger.debug('rejected App', {
      id: this.id,
      index: m.index,
      logTerm: m.logTerm,
      ourTerm: log.zeroTermOnOutOfBounds(m.index),
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
    const r = newMessage(MessageType.AppResp, this.id, m.from, 0);
    r.index = m.index;
    r.reject = true;
    r.rejectHint = hint.index;
    r.logTerm = hint.term;
    this.send(r);
  }

  private handleHeartbeat(m: Message): void {
    if (m.commit > this.raftLog.lastIndex()) {
      // A leader never tells a follower to commit past the follower's acknowledged match, so
      // this heartbeat is forged or our log lost entries we acknowledged; either way it must
      // not be obeyed (commitTo would fail) nor answered (the answer counts as a read ack).
      this.logger.warn('ignoring heartbeat: its commit index is beyond our log', {
        id: this.id,
        from: m.from,
        commit: m.commit,
        lastIndex: this.raftLog.lastIndex(),
      });
      return;
    }
    this.raftLog.commitTo(m.commit);
    const r = newMessage(MessageType.HeartbeatResp, this.id, m.from, 0);
    r.context = m.context;
    r.rejectHint = m.rejectHint; // echo the leader's send stamp (lease)
    this.send(r);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === null) {
      this.logger.warn('ignoring Snap message without a snapshot', { id: this.id, from: m.from });
      return;
    }
    const r = newMessage(MessageType.AppResp, this.id, m.from, 0);
    if (this.restore(s)) {
      this.logger.info('restored snapshot', { id: this.id, index: s.metadata.index, term: s.metadata.term });
      r.index = this.raftLog.lastIndex();
    } else {
      this.logger.info('ignored snapshot', { id: this.id, index: s.metadata.index, term: s.metadata.term });
      r.index = this.raftLog.committed;
    }
    this.send(r);
  }

  /** Installs a snapshot from the leader; false if it was not needed. */
  private restore(s: Snapshot): boolean {
    const log = this.raftLog;
    if (s.metadata.index <= log.committed) return false;
    if (log.applying > log.applied) {
      // Committed entries handed out in a Ready are being applied right now; restoring would
      // replace the configuration under them (their conf changes would then be applied to
      // the snapshot's configuration). Refuse; the leader sends the snapshot again.
      this.logger.info('not restoring snapshot while committed entries are being applied', {
        id: this.id,
        index: s.metadata.index,
        applying: log.applying,
        applied: log.applied,
      });
      return false;
    }
    if (this.state !== Role.Follower) {
      // Defense in depth: should be impossible (callers become followers first).
      this.logger.warn('attempted to restore snapshot as non-follower; should never happen', { id: this.id });
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    if (log.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entry the snapshot ends with: just fast-forward the commit index.
      log.commitTo(s.metadata.index);
      return false;
    }
    log.restore(s);
    // Rebuild membership from the snapshot's configuration.
    const cs = s.metadata.confState;
    for (const id of [...this.trk.progress.keys()]) this.trk.removeMember(id);
    this.restoreConfState(cs);
    if (!this.trk.progress.has(this.id)) {
      // Possible when this node was added after the snapshot was taken: the entry adding it
      // follows in the log.
      this.logger.info('restored a snapshot whose configuration does not include us', { id: this.id });
    }
    for (const pr of this.trk.progress.values()) {
      pr.resetState('probe');
      pr.match = 0;
      pr.next = log.lastIndex() + 1;
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // ReadIndex

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnOutOfBounds(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) {
      this.logger.warn('pending ReadIndex should be released only after first commit in current term', {
        id: this.id,
      });
      return;
    }
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendReadIndexResponse(m);
  }

  private sendReadIndexResponse(m: Message): void {
    if (this.trk.isSingleton() && this.trk.isVoter(this.id)) {
      // The only voter: nobody else can have been elected, no round of acks is needed.
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    if (this.readOnly.option === 'lease-based' && this.holdsLease()) {
      // No other leader can have been elected while a quorum still refuses votes.
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    // Confirm leadership with a heartbeat round carrying the request's context (lease-based
    // reads fall back to this while the lease is not held).
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    if (this.readIndexFanout === 'all') {
      this.readAsked = null;
      this.bcastHeartbeatWithContext(m.context);
    } else {
      this.heartbeatReadQuorum(m.context);
    }
  }

  /**
   * Sends the round's heartbeat to just enough voters to make a quorum with this leader: those
   * whose acks most recently counted for a read first (ties: lower id). On a serial reader this
   * halves the messages per read (3 nodes), and each one costs the leader a socket write and a
   * wake-up of the peer. If a chosen voter does not answer, the next heartbeat broadcast
   * (bcastHeartbeat) carries the newest pending context to every member, and any quorum of
   * acks for it completes this read too; a voter that completes two rounds in a row that way
   * is asked first from then on (notePreferredReader).
   * The choice is deliberately sticky: a follower asked every time stays warm (measured on a
   * 2-core VM: also ranking by recentActive, which CheckQuorum resets every election timeout,
   * or asking everyone every 8th round, spread reads over both followers and cost 20-50 % of
   * serial read throughput).
   */
  private heartbeatReadQuorum(ctx: Uint8Array): void {
    const seq = (id: NodeId): number => this.trk.progress.get(id)!.readAckSeq;
    const candidates = this.trk.voters.filter((id) => id !== this.id).sort((a, b) => seq(b) - seq(a) || a - b);
    const asked = new Map<NodeId, boolean>([[this.id, true]]);
    for (const id of candidates) {
      if (this.trk.voteResultOf(asked) === 'won') break;
      asked.set(id, true);
      this.sendHeartbeat(id, ctx);
    }
    assert(this.trk.voteResultOf(asked) === 'won', 'every voter acking must make a quorum');
    this.readAsked = asked;
  }

  /**
   * An ack for a pending read round: keeps the voters the rounds ask preferred while they
   * answer. A voter that was not asked (the heartbeat broadcast reached it) earns the
   * preference only when it completes READ_RESCUES_TO_SWITCH rounds in a row that the asked
   * voters did not: a down follower is replaced after two slow reads, but one late answer
   * (a descheduled process) no longer moves the reads to a cold follower. On a 2-core VM,
   * such flips spread serial reads over both followers and cost 20-50 % of their throughput.
   */
  private notePreferredReader(pr: Progress, from: NodeId, completed: boolean): void {
    if (this.readAsked === null || this.readAsked.has(from)) {
      pr.readAckSeq = ++this.readAckCounter;
      this.readRescues = 0;
      return;
    }
    if (!completed || ++this.readRescues < READ_RESCUES_TO_SWITCH) return;
    this.readRescues = 0;
    pr.readAckSeq = ++this.readAckCounter;
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context });
      return;
    }
    const r = newMessage(MessageType.ReadIndexResp, this.id, req.from, 0);
    r.index = index;
    r.context = req.context;
    this.send(r);
  }

  // ---------------------------------------------------------------------------------------
  // Membership

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /**
   * Applies one single-step membership change (called when its entry is applied) and returns
   * the new configuration. Invalid changes (removing the last voter, promoting a non-learner)
   * are ignored with a warning: every node applies the same entry the same way.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const id = cc.nodeId;
    assert(Number.isSafeInteger(id) && id > 0, `conf change node id ${id} invalid`);
    const pr = this.trk.progress.get(id);
    const next = Math.max(this.raftLog.lastIndex(), 1);
    this.applyMembershipChange(cc, pr, next);
    // A member added while we lead gets one election timeout to acknowledge us (CheckQuorum).
    const added = pr === undefined ? this.trk.progress.get(id) : undefined;
    if (added !== undefined) added.graceTick = this.clock;
    return this.afterConfigChange();
  }

  private applyMembershipChange(cc: ConfChange, pr: Progress | undefined, next: number): void {
    const id = cc.nodeId;
    switch (cc.type) {
      case ConfChangeType.AddVoter:
        this.trk.setMember(id, false, next);
        break;
      case ConfChangeType.PromoteLearner:
        if (pr === undefined) {
          this.logger.warn('ignoring promotion of a node that is not a member', { id: this.id, node: id });
        } else {
          this.trk.setMember(id, false, next);
        }
        break;
      case ConfChangeType.AddLearner:
        if (pr !== undefined && !pr.isLearner && this.trk.voters.length === 1) {
          this.logger.warn('ignoring demotion of the last voter', { id: this.id, node: id });
        } else {
          this.trk.setMember(id, true, next);
        }
        break;
      case ConfChangeType.RemoveNode:
        if (pr !== undefined && !pr.isLearner && this.trk.voters.length === 1) {
          this.logger.warn('ignoring removal of the last voter', { id: this.id, node: id });
        } else if (pr !== undefined) {
          this.trk.removeMember(id);
        }
        break;
      default:
        fail(`unknown conf change type ${String(cc.type)}`);
    }
  }

  private afterConfigChange(): ConfState {
    const cs = this.trk.confState();
    const self = this.trk.progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((self === undefined || this.isLearner) && this.state === Role.Leader) {
      // Removed (or demoted) while leading: hand over to an up-to-date voter so the cluster
      // does not wait out an election timeout, then step down.
      const last = this.raftLog.lastIndex();
      for (const vid of this.trk.voters) {
        const pr = this.trk.progress.get(vid)!;
        if (pr.match === last) {
          this.sendTimeoutNow(vid);
          break;
        }
      }
      this.logger.info('removed from the configuration; stepping down', { id: this.id, term: this.term });
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== Role.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // The quorum shrank and more entries are committed: tell everyone.
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      // Probe newly added members now rather than at the next heartbeat or proposal.
      for (const id of this.trk.ids) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
    return cs;
  }
}
