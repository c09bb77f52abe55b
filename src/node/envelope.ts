/**
 * Byte formats the runtime puts inside Raft entries, ConfChange contexts, ReadIndex contexts and
 * snapshots. They exist so that ANY node can recognise its own requests when they come back
 * committed (follower proposals are forwarded to the leader by the core, so the entry index is
 * not known at propose time), and so that snapshots carry the peer URLs with the membership.
 *
 * Every request is tagged with (origin node id, incarnation, sequence number). The incarnation
 * is a random 32-bit number chosen at every start, so an entry proposed before a restart can
 * never resolve a promise made after it, even though sequence numbers start again from 1.
 */

import { decodeConfChange } from '../raft/codec.js';
import { EntryType, type Entry, type NodeId } from '../raft/types.js';
import type { MembershipRefusal } from './errors.js';
import { ProposalDedup, type DedupRecord } from './proposal-dedup.js';

const PROPOSAL_MAGIC = 0xa5;
const PROPOSAL_VERSION = 1;
/** magic(1) version(1) incarnation(4) origin(8, float64) seq(8, float64) */
export const PROPOSAL_HEADER_BYTES = 22;

export interface RequestTag {
  origin: NodeId;
  incarnation: number;
  seq: number;
}

export interface DecodedProposal {
  /** null when the entry was not written by this runtime (foreign or legacy data): the whole
   * data is then the payload. */
  tag: RequestTag | null;
  payload: Uint8Array;
}

export function encodeProposal(tag: RequestTag, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(PROPOSAL_HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = PROPOSAL_MAGIC;
  out[1] = PROPOSAL_VERSION;
  view.setUint32(2, tag.incarnation, true);
  view.setFloat64(6, tag.origin, true);
  view.setFloat64(14, tag.seq, true);
  out.set(payload, PROPOSAL_HEADER_BYTES);
  return out;
}

export function decodeProposal(data: Uint8Array): DecodedProposal {
  if (data.length < PROPOSAL_HEADER_BYTES || data[0] !== PROPOSAL_MAGIC || data[1] !== PROPOSAL_VERSION) {
    return { tag: null, payload: data };
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const origin = view.getFloat64(6, true);
  const seq = view.getFloat64(14, true);
  if (!Number.isSafeInteger(origin) || origin <= 0 || !Number.isSafeInteger(seq) || seq <= 0) {
    return { tag: null, payload: data };
  }
  return {
    tag: { origin, incarnation: view.getUint32(2, true), seq },
    payload: data.subarray(PROPOSAL_HEADER_BYTES),
  };
}

/** Fast check used on the hot path: is this entry data one of `tag.origin`'s proposals from
 * this incarnation? Returns the sequence number, or 0. */
export function ownProposalSeq(data: Uint8Array, origin: NodeId, incarnation: number): number {
  if (data.length < PROPOSAL_HEADER_BYTES || data[0] !== PROPOSAL_MAGIC || data[1] !== PROPOSAL_VERSION) return 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(2, true) !== incarnation || view.getFloat64(6, true) !== origin) return 0;
  const seq = view.getFloat64(14, true);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
}

// ---------------------------------------------------------------------------------------------
// ConfChange context: JSON so that it stays readable in a WAL dump.

export interface ConfChangeContext {
  /** Peer URL of the node being added (AddVoter / AddLearner); null otherwise. */
  url: string | null;
  tag: RequestTag | null;
  /** The proposer skipped the leader's safety check (CallOptions.force). Absent = false. */
  force?: boolean;
  /** Set by the leader when it accepted the entry but refused the change (the safety check
   * failed): every node applies it as a no-op and the proposer is told why. */
  refused?: ConfChangeRefusal;
}

export interface ConfChangeRefusal {
  reason: Exclude<MembershipRefusal, 'invalid'>;
  message: string;
}

interface ConfChangeContextJson {
  url?: string;
  o?: number;
  i?: number;
  s?: number;
  force?: boolean;
  refused?: { reason?: unknown; message?: unknown };
}

export function encodeConfChangeContext(ctx: ConfChangeContext): Uint8Array {
  const json: ConfChangeContextJson = {};
  if (ctx.url !== null) json.url = ctx.url;
  if (ctx.tag !== null) {
    json.o = ctx.tag.origin;
    json.i = ctx.tag.incarnation;
    json.s = ctx.tag.seq;
  }
  if (ctx.force === true) json.force = true;
  if (ctx.refused !== undefined) json.refused = { reason: ctx.refused.reason, message: ctx.refused.message };
  return new TextEncoder().encode(JSON.stringify(json));
}

function decodeRefusal(json: ConfChangeContextJson['refused']): ConfChangeRefusal | undefined {
  if (typeof json !== 'object' || json === null) return undefined;
  const reason = json.reason === 'learner-not-ready' ? 'learner-not-ready' : 'not-enough-active-voters';
  const message = typeof json.message === 'string' ? json.message : 'refused by the leader';
  return { reason, message };
}

/** Never throws: a context written by someone else (raftexample puts a bare URL there) still
 * yields its URL when it looks like one. */
export function decodeConfChangeContext(bytes: Uint8Array): ConfChangeContext {
  if (bytes.length === 0) return { url: null, tag: null };
  const text = new TextDecoder().decode(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { url: /^https?:\/\//.test(text) ? text : null, tag: null };
  }
  if (typeof parsed !== 'object' || parsed === null) return { url: null, tag: null };
  const json = parsed as ConfChangeContextJson;
  const url = typeof json.url === 'string' ? json.url : null;
  const tag =
    Number.isSafeInteger(json.o) && Number.isSafeInteger(json.i) && Number.isSafeInteger(json.s)
      ? { origin: json.o as number, incarnation: json.i as number, seq: json.s as number }
      : null;
  const ctx: ConfChangeContext = { url, tag };
  if (json.force === true) ctx.force = true;
  const refused = decodeRefusal(json.refused);
  if (refused !== undefined) ctx.refused = refused;
  return ctx;
}

/** The request tag an entry carries (its proposal header, or its ConfChange's context), or null
 * for entries without one (the leader's empty entries, data written by someone else). */
export function requestTagOf(e: Entry): RequestTag | null {
  if (e.type === EntryType.ConfChange) {
    try {
      return decodeConfChangeContext(decodeConfChange(e.data).context).tag;
    } catch {
      return null; // applying it reports the problem
    }
  }
  return e.data.length > 0 ? decodeProposal(e.data).tag : null;
}

// ---------------------------------------------------------------------------------------------
// ReadIndex context: only ever interpreted by the node that issued it.

const READ_MAGIC = 0x52; // 'R'
export const READ_CONTEXT_BYTES = 13;

export function encodeReadContext(incarnation: number, seq: number): Uint8Array {
  const out = new Uint8Array(READ_CONTEXT_BYTES);
  const view = new DataView(out.buffer);
  out[0] = READ_MAGIC;
  view.setUint32(1, incarnation, true);
  view.setFloat64(5, seq, true);
  return out;
}

/** The sequence number of one of our read requests, or 0 when the context is not ours. */
export function decodeReadContext(bytes: Uint8Array, incarnation: number): number {
  if (bytes.length !== READ_CONTEXT_BYTES || bytes[0] !== READ_MAGIC) return 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(1, true) !== incarnation) return 0;
  const seq = view.getFloat64(5, true);
  return Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
}

// ---------------------------------------------------------------------------------------------
// Snapshot data: the runtime's own metadata (peer URLs of the members in the snapshot's
// ConfState, which the ConfChange entries that carried them no longer provide once compacted,
// the ids removed from the cluster, and the table of applied proposals) followed by the state
// machine's bytes.

const SNAPSHOT_MAGIC = [0x52, 0x4b, 0x4e, 0x31]; // 'RKN1'
const SNAPSHOT_HEADER_BYTES = 8; // magic(4) metaLength(4)

export interface SnapshotEnvelope {
  peerUrls: Map<NodeId, string>;
  stateMachine: Uint8Array;
  // --- membership (src/node/membership.ts) ---
  /** Ids removed from the cluster and not re-added, as of the snapshot's index (their
   * messages are answered 410 Gone). Decoded as null from snapshots written before this field
   * existed: then nothing is known. */
  removedIds?: ReadonlySet<NodeId> | null;
  // --- end membership ---
  /** The table of applied proposals (proposal-dedup.ts) at the snapshot's index. Absent when
   * encoding: empty; snapshots written before it existed decode to an empty table. */
  proposals?: DedupRecord[];
}

interface SnapshotMetaJson {
  peers?: Record<string, unknown>;
  /** membership: removed ids (absent in snapshots written before it existed) */
  removed?: unknown[];
  /** applied proposals (absent in snapshots written before it existed) */
  proposals?: unknown;
}

export function encodeSnapshotData(envelope: SnapshotEnvelope): Uint8Array {
  const metaJson: SnapshotMetaJson = { peers: Object.fromEntries(envelope.peerUrls) };
  // --- membership ---
  if (envelope.removedIds !== undefined && envelope.removedIds !== null) {
    metaJson.removed = [...envelope.removedIds].sort((a, b) => a - b);
  }
  // --- end membership ---
  metaJson.proposals = envelope.proposals ?? [];
  const meta = new TextEncoder().encode(JSON.stringify(metaJson));
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES + meta.length + envelope.stateMachine.length);
  out.set(SNAPSHOT_MAGIC, 0);
  new DataView(out.buffer).setUint32(4, meta.length, true);
  out.set(meta, SNAPSHOT_HEADER_BYTES);
  out.set(envelope.stateMachine, SNAPSHOT_HEADER_BYTES + meta.length);
  return out;
}

/** Throws a clear error on data this runtime did not write (it never restores garbage into
 * the user's state machine). An empty snapshot (index 0) decodes to nothing. */
export function decodeSnapshotData(data: Uint8Array): SnapshotEnvelope {
  if (data.length === 0) return { peerUrls: new Map(), stateMachine: data, proposals: [] };
  if (data.length < SNAPSHOT_HEADER_BYTES || SNAPSHOT_MAGIC.some((b, i) => data[i] !== b)) {
    throw new Error('snapshot data was not written by the raftkv runtime (bad magic)');
  }
  const metaLength = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(4, true);
  if (SNAPSHOT_HEADER_BYTES + metaLength > data.length) {
    throw new Error(`snapshot data is truncated (metadata length ${metaLength}, total ${data.length} bytes)`);
  }
  const metaText = new TextDecoder().decode(data.subarray(SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + metaLength));
  let parsed: unknown;
  try {
    parsed = JSON.parse(metaText);
  } catch (err) {
    throw new Error(`snapshot metadata is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('snapshot metadata is not an object');
  const meta = parsed as SnapshotMetaJson;
  const peerUrls = new Map<NodeId, string>();
  for (const [id, url] of Object.entries(typeof meta.peers === 'object' && meta.peers !== null ? meta.peers : {})) {
    const nodeId = Number(id);
    if (Number.isSafeInteger(nodeId) && nodeId > 0 && typeof url === 'string') peerUrls.set(nodeId, url);
  }
  // --- membership ---
  let removedIds: Set<NodeId> | null = null;
  if (meta.removed !== undefined) {
    if (!Array.isArray(meta.removed) || !meta.removed.every((id) => Number.isSafeInteger(id) && (id as number) > 0)) {
      throw new Error('snapshot metadata has a malformed removed-members list');
    }
    removedIds = new Set(meta.removed as NodeId[]);
  }
  // --- end membership ---
  let proposals: DedupRecord[] = [];
  if (meta.proposals !== undefined) {
    try {
      proposals = ProposalDedup.fromRecords(meta.proposals).toRecords();
    } catch (err) {
      throw new Error(`snapshot metadata: ${(err as Error).message}`);
    }
  }
  return { peerUrls, stateMachine: data.subarray(SNAPSHOT_HEADER_BYTES + metaLength), removedIds, proposals };
}
