/**
 * Membership decisions of the runtime, as pure functions of the applied configuration (and,
 * for the safety check, of the leader's replication progress). RaftNode calls them at a few
 * small call sites; everything here is testable without a cluster.
 *
 * - checkConfChangeSafety: etcd's strict reconfiguration check (isReadyToAddVotingMember,
 *   isReadyToPromoteMember, isReadyToRemoveVotingMember, isLearnerReady), run on the leader.
 * - removedIdsAfter / transportMembership: the transport's member list (who may talk to us,
 *   who gets 410 Gone) derived from the applied configuration, never from start-up flags alone.
 * - RemovalWatch: when a node should stop because it was removed — only when the configuration
 *   in force after applying says so, or a majority of the other voters does, and no leader has
 *   treated it as a member for two election timeouts.
 * - leaderViewOf / vetForwardedConfChanges / transferTargetOnStop: the leader's side.
 */

import { decodeConfChange, encodeConfChange } from '../raft/codec.js';
import type { Status } from '../raft/status.js';
import { ConfChangeType, EntryType, Role, type ConfChange, type ConfState, type Entry, type NodeId } from '../raft/types.js';
import { decodeConfChangeContext, decodeSnapshotData, encodeConfChangeContext } from './envelope.js';
import { decodeSnapshotRef } from './snapshot-ref.js';
import type { MembershipRefusal } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Safety check (leader side)

/** A learner is ready to be promoted once its match index is within this fraction of the
 * leader's (etcd's readyPercent). */
export const LEARNER_READY_FRACTION = 0.9;

export interface MemberProgressView {
  match: number;
  /** The leader heard from it within the last election timeout (etcd: the transport's
   * ActiveSince; not the core's recentActive, which CheckQuorum clears every election timeout,
   * so that right after each reset every follower would look down). */
  active: boolean;
}

/** What the leader knows when it accepts a ConfChange proposal. */
export interface LeaderView {
  leader: NodeId;
  voters: readonly NodeId[];
  learners: readonly NodeId[];
  progress: ReadonlyMap<NodeId, MemberProgressView>;
}

export interface SafetyRefusal {
  reason: Exclude<MembershipRefusal, 'invalid'>;
  message: string;
}

export function quorumOf(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

function isActive(view: LeaderView, id: NodeId): boolean {
  return id === view.leader || view.progress.get(id)?.active === true;
}

function activeCount(view: LeaderView, ids: readonly NodeId[]): number {
  let n = 0;
  for (const id of ids) if (isActive(view, id)) n++;
  return n;
}

/**
 * Refuses a change that would leave the cluster without a quorum of active, caught-up voters;
 * null when it is safe. Invalid changes (already a voter, …) are the caller's to refuse first;
 * here they pass (the core ignores them deterministically).
 *
 * - AddVoter of a new node: it cannot be caught up (nobody replicates to a non-member), so it
 *   counts as down: the active voters must make a quorum of the enlarged configuration.
 * - PromoteLearner (or AddVoter of a learner): the learner must be active and its match within
 *   90% of the leader's; then it counts as active in the enlarged configuration.
 * - RemoveNode of a voter: the remaining active voters must make a quorum of the rest.
 * - AddLearner, removing a learner: always safe (learners are not in any quorum).
 */
export function checkConfChangeSafety(type: ConfChangeType, nodeId: NodeId, view: LeaderView): SafetyRefusal | null {
  const isVoter = view.voters.includes(nodeId);
  const isLearner = view.learners.includes(nodeId);
  const promoting = type === ConfChangeType.PromoteLearner || (type === ConfChangeType.AddVoter && isLearner);
  if (promoting) {
    if (!isLearner) return null;
    const learner = view.progress.get(nodeId);
    const leaderMatch = view.progress.get(view.leader)?.match ?? 0;
    if (learner === undefined || !learner.active) {
      return { reason: 'learner-not-ready', message: `learner ${nodeId} is not active (the leader has not heard from it recently)` };
    }
    if (learner.match < leaderMatch * LEARNER_READY_FRACTION) {
      return {
        reason: 'learner-not-ready',
        message: `learner ${nodeId} is not caught up: its match index ${learner.match} is below ` +
          `${Math.round(LEARNER_READY_FRACTION * 100)}% of the leader's ${leaderMatch}`,
      };
    }
    const active = activeCount(view, view.voters) + 1;
    const quorum = quorumOf(view.voters.length + 1);
    if (active < quorum) return notEnough(`promoting learner ${nodeId}`, view.voters.length + 1, quorum, active);
    return null;
  }
  if (type === ConfChangeType.AddVoter && !isVoter) {
    const active = activeCount(view, view.voters);
    const quorum = quorumOf(view.voters.length + 1);
    if (active < quorum) {
      return notEnough(`adding node ${nodeId} as a voter`, view.voters.length + 1, quorum, active,
        '; add it as a learner and promote it once it has caught up');
    }
    return null;
  }
  if (type === ConfChangeType.RemoveNode && isVoter) {
    const rest = view.voters.filter((id) => id !== nodeId);
    if (rest.length === 0) return null; // the last voter: refused as invalid elsewhere
    const active = activeCount(view, rest);
    const quorum = quorumOf(rest.length);
    if (active < quorum) return notEnough(`removing voter ${nodeId}`, rest.length, quorum, active);
    return null;
  }
  return null;
}

function notEnough(what: string, voters: number, quorum: number, active: number, hint = ''): SafetyRefusal {
  return {
    reason: 'not-enough-active-voters',
    message: `${what} would leave ${voters} voters needing ${quorum} for a quorum, but only ${active} ` +
      `would be active and caught up${hint}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Transport member list

export function membersOf(cs: ConfState): NodeId[] {
  return [...cs.voters, ...cs.learners];
}

/**
 * The ids removed from the cluster (answered 410 Gone by the transport) after a configuration
 * change from `before` to `after`: those that left are added, those (re-)added are dropped.
 */
export function removedIdsAfter(before: ConfState, after: ConfState, removed: ReadonlySet<NodeId>): Set<NodeId> {
  const now = new Set(membersOf(after));
  const next = new Set(removed);
  for (const id of membersOf(before)) if (!now.has(id)) next.add(id);
  for (const id of now) next.delete(id);
  return next;
}

/** `url` if the transport can use it (http://host:port), else null: a URL from a committed
 * entry or a snapshot written by someone else must not stop the node when it is applied. */
export function usablePeerUrl(url: string): string | null {
  try {
    return new URL(url).protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

/** The removed ids a snapshot's data carries (inline envelope or descriptor's head); null when
 * it was written before they were recorded. */
export function snapshotRemovedIds(data: Uint8Array): ReadonlySet<NodeId> | null {
  const ref = decodeSnapshotRef(data);
  return decodeSnapshotData(ref === null ? data : ref.head).removedIds ?? null;
}

export interface TransportMembership {
  /** Peers (not this node) we exchange messages with, and their URLs. */
  members: Map<NodeId, string>;
  /** Ids answered 410 Gone. */
  removed: Set<NodeId>;
  /** Members of the configuration whose URL nobody told us (they cannot be reached). */
  missingUrls: NodeId[];
}

/**
 * The transport's members: the configuration's members with their URLs, and every other peer
 * we know a URL of (start-up peers, URLs from applied entries and snapshots) that is not
 * removed — a node whose applied configuration lags must still accept a leader added after it
 * (the core only addresses the configuration's members, so nothing is sent to the others
 * unasked). A configuration with no voters (a node that has not applied its bootstrap or been
 * sent a snapshot yet, or one joining) is the same: every known peer. Removed ids never count
 * as members unless the configuration says they are.
 */
export function transportMembership(
  self: NodeId,
  cs: ConfState,
  urls: ReadonlyMap<NodeId, string>,
  removed: ReadonlySet<NodeId>,
): TransportMembership {
  const members = new Map<NodeId, string>();
  const missingUrls: NodeId[] = [];
  const inConfig = new Set(membersOf(cs));
  if (cs.voters.length === 0) {
    for (const [id, url] of urls) if (id !== self && !removed.has(id)) members.set(id, url);
  } else {
    for (const id of inConfig) {
      if (id === self) continue;
      const url = urls.get(id);
      if (url === undefined) missingUrls.push(id);
      else members.set(id, url);
    }
    // Every other peer we know a URL of, unless removed: our applied configuration may lag the
    // cluster's, and a member added since may lead us. Refused (403), such a leader could never
    // send us the entries that add it: we would never catch up (found by test/simnode).
    for (const [id, url] of urls) if (id !== self && !removed.has(id) && !members.has(id)) members.set(id, url);
  }
  const gone = new Set<NodeId>();
  for (const id of removed) if (!inConfig.has(id) && id !== self) gone.add(id);
  return { members, removed: gone, missingUrls };
}

// ---------------------------------------------------------------------------------------------
// Removal of this node

export type RemovalDecision = { stop: false } | { stop: true; detail: string };

/**
 * Decides when this node stops because it was removed, on its own tick count.
 *
 * A node can believe it is removed for two reasons:
 * - 'config': the configuration in force after applying excludes it. During catch-up that can
 *   be an old RemoveNode(self) replayed before a later re-add, so it is only acted on once no
 *   leader has sent us anything (a leader only replicates to its members) for `graceTicks`,
 *   and only if the applied configuration still excludes us then.
 * - 'peers': peers answered 410 Gone (they applied our removal). A peer's view can be stale
 *   (it applied RemoveNode(self) but not yet the re-add), so it counts only when a majority of
 *   the other voters of our applied configuration said so and no leader contacted us for
 *   `graceTicks`. A removed node that missed its removal (it was down) learns it this way.
 */
export class RemovalWatch {
  /** Tick of the last App/Heartbeat/Snap a leader sent us. */
  private lastLeaderContact: number;
  private configSince: number | null = null;
  /** Peers that answered 410, with the tick of their latest such answer. */
  private readonly goneAnswers = new Map<NodeId, number>();

  constructor(
    private readonly self: NodeId,
    private readonly graceTicks: number,
    now: number,
  ) {
    this.lastLeaderContact = now;
  }

  /** With the applied configuration (after a change, or on every tick: idempotent). */
  onConfig(cs: ConfState, now: number): void {
    const member = membersOf(cs).includes(this.self);
    if (member || cs.voters.length === 0) {
      // A member again (or not yet one: joining). 410s from before a re-add are moot.
      if (this.configSince !== null && member) this.goneAnswers.clear();
      this.configSince = null;
    } else {
      this.configSince ??= now;
    }
  }

  onLeaderContact(now: number): void {
    this.lastLeaderContact = now;
    this.goneAnswers.clear();
  }

  onGoneAnswer(peer: NodeId, now: number): void {
    this.goneAnswers.set(peer, now);
  }

  /** True while the applied configuration excludes us (removal pending the grace period). */
  get removedByConfig(): boolean {
    return this.configSince !== null;
  }

  decide(cs: ConfState, now: number): RemovalDecision {
    const quiet = now - this.lastLeaderContact >= this.graceTicks;
    if (this.configSince !== null && quiet && now - this.configSince >= this.graceTicks) {
      return { stop: true, detail: 'this node was removed from the cluster' };
    }
    if (!quiet || this.goneAnswers.size === 0) return { stop: false };
    const others = cs.voters.filter((id) => id !== this.self);
    if (others.length === 0) return { stop: false };
    const saying = others.filter((id) => this.goneAnswers.has(id));
    if (saying.length < quorumOf(others.length)) return { stop: false };
    return {
      stop: true,
      detail: `nodes ${saying.join(', ')} report this node was removed from the cluster`,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// The leader's view, and what it does with it

/** The leader's view from the core's status (RawNode.status()) and whom it heard from
 * recently; null unless it leads. */
export function leaderViewOf(status: Status, heardRecently: (id: NodeId) => boolean): LeaderView | null {
  if (status.role !== Role.Leader || status.progress === null) return null;
  const progress = new Map<NodeId, MemberProgressView>();
  for (const [key, p] of Object.entries(status.progress)) {
    const id = Number(key);
    progress.set(id, { match: p.match, active: id === status.id || heardRecently(id) });
  }
  return { leader: status.id, voters: status.config.voters, learners: status.config.learners, progress };
}

/**
 * The leader's safety check of ConfChange entries forwarded by a follower. A refused one is
 * still appended, with the refusal in its context (envelope.ts): every node applies it as a
 * no-op and the proposer learns why, instead of waiting for a timeout. Returns the entries to
 * step (a copy if any was changed) and the refusals made.
 */
export function vetForwardedConfChanges(
  entries: readonly Entry[],
  view: LeaderView,
): { entries: readonly Entry[]; refused: { cc: ConfChange; refusal: SafetyRefusal }[] } {
  let out: Entry[] | null = null;
  const refused: { cc: ConfChange; refusal: SafetyRefusal }[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.type !== EntryType.ConfChange) continue;
    let cc: ConfChange;
    try {
      cc = decodeConfChange(e.data);
    } catch {
      continue; // malformed: the core refuses it
    }
    const ctx = decodeConfChangeContext(cc.context);
    if (ctx.force === true || ctx.refused !== undefined) continue;
    const refusal = checkConfChangeSafety(cc.type, cc.nodeId, view);
    if (refusal === null) continue;
    refused.push({ cc, refusal });
    const context = encodeConfChangeContext({ ...ctx, refused: refusal });
    out ??= [...entries];
    out[i] = { ...e, data: encodeConfChange({ type: cc.type, nodeId: cc.nodeId, context }) };
  }
  return { entries: out ?? entries, refused };
}

/** The voter a stopping leader hands leadership to: active and the furthest along; 0 = none. */
export function transferTargetOnStop(view: LeaderView): NodeId {
  let best: NodeId = 0;
  let bestMatch = -1;
  for (const id of view.voters) {
    if (id === view.leader) continue;
    const p = view.progress.get(id);
    if (p === undefined || !p.active || p.match <= bestMatch) continue;
    best = id;
    bestMatch = p.match;
  }
  return best;
}
