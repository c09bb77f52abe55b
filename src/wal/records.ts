/**
 * Record bodies of the WAL (docs/wal-format.md, "Record types"): msgpack maps.
 *
 * Decoding validates shape and ranges: a record whose CRC checks out but whose body does not
 * decode to what we wrote is corruption (or a format bug), never something to guess around.
 */
import { Packr } from 'msgpackr';
import { EntryType, type Entry, type HardState } from '../raft/types.js';
import { RecordType, type RecordInput } from './backend.js';

/** Identity of the node and cluster a WAL belongs to; written at the start of every segment. */
export interface WalMetadata {
  nodeId: number;
  clusterId: number;
}

/** A snapshot marker: the log was compacted up to (index, term) by a snapshot saved elsewhere. */
export interface SnapshotMarker {
  index: number;
  term: number;
}

// Plain maps (no msgpackr "records" extension) so any msgpack reader can decode a WAL.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

function pack(value: unknown): Uint8Array {
  // msgpackr returns a view into a buffer it reuses; the backend holds payloads until the write
  // completes, so take a private copy.
  return new Uint8Array(packr.pack(value));
}

export class RecordDecodeError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'RecordDecodeError';
  }
}

function unpackObject(payload: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(payload);
  } catch (err) {
    throw new RecordDecodeError(`${what} record body is not valid msgpack: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new RecordDecodeError(`${what} record body is not a map`);
  }
  return value as Record<string, unknown>;
}

function safeUint(obj: Record<string, unknown>, key: string, what: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new RecordDecodeError(`${what} record: field ${key} is not a non-negative safe integer (${String(v)})`);
  }
  return v;
}

function bytes(obj: Record<string, unknown>, key: string, what: string): Uint8Array {
  const v = obj[key];
  if (!(v instanceof Uint8Array)) throw new RecordDecodeError(`${what} record: field ${key} is not bytes`);
  // Hand out a plain Uint8Array (msgpackr yields Buffers) over the same memory.
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function assertSafeUint(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
}

export function metadataRecord(m: WalMetadata): RecordInput {
  assertSafeUint(m.nodeId, 'metadata.nodeId');
  assertSafeUint(m.clusterId, 'metadata.clusterId');
  return { type: RecordType.Metadata, payload: pack({ nodeId: m.nodeId, clusterId: m.clusterId }) };
}

export function decodeMetadata(payload: Uint8Array): WalMetadata {
  const o = unpackObject(payload, 'metadata');
  return { nodeId: safeUint(o, 'nodeId', 'metadata'), clusterId: safeUint(o, 'clusterId', 'metadata') };
}

export function entryRecord(e: Entry): RecordInput {
  assertSafeUint(e.term, 'entry.term');
  assertSafeUint(e.index, 'entry.index');
  if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) throw new RangeError(`entry.type ${String(e.type)} is unknown`);
  if (!(e.data instanceof Uint8Array)) throw new TypeError('entry.data must be a Uint8Array');
  return { type: RecordType.Entry, payload: pack({ term: e.term, index: e.index, type: e.type, data: e.data }) };
}

export function decodeEntry(payload: Uint8Array): Entry {
  const o = unpackObject(payload, 'entry');
  const type = safeUint(o, 'type', 'entry');
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) throw new RecordDecodeError(`entry record: unknown type ${type}`);
  return {
    term: safeUint(o, 'term', 'entry'),
    index: safeUint(o, 'index', 'entry'),
    type: type as EntryType,
    data: bytes(o, 'data', 'entry'),
  };
}

export function hardStateRecord(hs: HardState): RecordInput {
  assertSafeUint(hs.term, 'hardState.term');
  assertSafeUint(hs.vote, 'hardState.vote');
  assertSafeUint(hs.commit, 'hardState.commit');
  return { type: RecordType.HardState, payload: pack({ term: hs.term, vote: hs.vote, commit: hs.commit }) };
}

export function decodeHardState(payload: Uint8Array): HardState {
  const o = unpackObject(payload, 'hard state');
  return {
    term: safeUint(o, 'term', 'hard state'),
    vote: safeUint(o, 'vote', 'hard state'),
    commit: safeUint(o, 'commit', 'hard state'),
  };
}

export function snapshotRecord(s: SnapshotMarker): RecordInput {
  assertSafeUint(s.index, 'snapshot.index');
  assertSafeUint(s.term, 'snapshot.term');
  return { type: RecordType.Snapshot, payload: pack({ index: s.index, term: s.term }) };
}

export function decodeSnapshotMarker(payload: Uint8Array): SnapshotMarker {
  const o = unpackObject(payload, 'snapshot');
  return { index: safeUint(o, 'index', 'snapshot'), term: safeUint(o, 'term', 'snapshot') };
}
