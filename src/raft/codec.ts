/**
 * Wire encoding of Raft data with msgpackr records (peer messages, conf changes, snapshots).
 * The WAL does not use it: its record bodies are plain msgpack maps any reader can decode
 * (src/wal/records.ts, docs/wal-format.md).
 *
 * Both sides use the same fixed list of record structures (below), so no structure
 * definitions travel with messages and nothing has to be persisted alongside the data. New
 * shapes are never added to the shared list (`shouldShareStructure` is false); an unexpected
 * shape would be encoded inline and then rejected by validation.
 *
 * Changing the structures below changes the wire format: append new ones at the end only.
 *
 * Decoders validate everything: every term/index a safe non-negative integer, enums known,
 * byte fields Uint8Array. Anything else throws CodecError with the offending path.
 */
import { Packr } from 'msgpackr';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Snapshot,
  type SnapshotMetadata,
} from './types.js';
import { CodecError } from './errors.js';

const MESSAGE_KEYS = [
  'type', 'from', 'to', 'term', 'logTerm', 'index', 'entries', 'commit', 'reject', 'rejectHint',
  'snapshot', 'context',
];
const ENTRY_KEYS = ['term', 'index', 'type', 'data'];
const SNAPSHOT_KEYS = ['metadata', 'data'];
const SNAPSHOT_METADATA_KEYS = ['index', 'term', 'confState'];
const CONF_STATE_KEYS = ['voters', 'learners'];
const HARD_STATE_KEYS = ['term', 'vote', 'commit'];
const CONF_CHANGE_KEYS = ['type', 'nodeId', 'context'];

function sharedStructures(): string[][] {
  return [
    MESSAGE_KEYS.slice(),
    ENTRY_KEYS.slice(),
    SNAPSHOT_KEYS.slice(),
    SNAPSHOT_METADATA_KEYS.slice(),
    CONF_STATE_KEYS.slice(),
    HARD_STATE_KEYS.slice(),
    CONF_CHANGE_KEYS.slice(),
  ];
}

function newPackr(): Packr {
  return new Packr({
    useRecords: true,
    structures: sharedStructures(),
    maxSharedStructures: 7,
    shouldShareStructure: () => false,
    // Decoded byte fields must not alias the caller's (possibly reused) receive buffer.
    copyBuffers: true,
    moreTypes: false,
  });
}

let packr = newPackr();
/** The structure arrays as first installed: input that carries its own record definitions makes
 * msgpackr store them in the decoder's table, where they would change how every later message
 * from every peer decodes. Decoding must be stateless, so any change is undone at once. */
let pristineStructures: readonly unknown[] = [...structuresOf(packr)];

function resetIfStructuresChanged(): void {
  const now = structuresOf(packr);
  let changed = now.length !== pristineStructures.length;
  for (let i = 0; !changed && i < now.length; i++) changed = now[i] !== pristineStructures[i];
  if (!changed) return;
  packr = newPackr();
  pristineStructures = [...structuresOf(packr)];
}

/** msgpackr keeps the decoder's record table on the instance; its typings do not declare it. */
function structuresOf(p: Packr): unknown[] {
  const table = (p as unknown as { structures?: unknown[] }).structures;
  if (!Array.isArray(table)) throw new Error('msgpackr: record structure table not found');
  return table;
}

const MESSAGE_TYPES = new Set<number>(
  Object.values(MessageType).filter((v): v is number => typeof v === 'number'),
);
const ENTRY_TYPES = new Set<number>([EntryType.Normal, EntryType.ConfChange]);
const CONF_CHANGE_TYPES = new Set<number>([
  ConfChangeType.AddVoter,
  ConfChangeType.RemoveNode,
  ConfChangeType.AddLearner,
  ConfChangeType.PromoteLearner,
]);

// ----------------------------------------------------------------------------------------
// Normalization: fixed key order so the shared record structures always apply.

function normEntry(e: Entry): Entry {
  return { term: e.term, index: e.index, type: e.type, data: e.data };
}

function normConfState(cs: ConfState): ConfState {
  return { voters: cs.voters, learners: cs.learners };
}

function normSnapshot(s: Snapshot): Snapshot {
  const md: SnapshotMetadata = {
    index: s.metadata.index,
    term: s.metadata.term,
    confState: normConfState(s.metadata.confState),
  };
  return { metadata: md, data: s.data };
}

function normMessage(m: Message): Message {
  return {
    type: m.type,
    from: m.from,
    to: m.to,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    entries: m.entries.map(normEntry),
    commit: m.commit,
    reject: m.reject,
    rejectHint: m.rejectHint,
    snapshot: m.snapshot === null ? null : normSnapshot(m.snapshot),
    context: m.context,
  };
}

// ----------------------------------------------------------------------------------------
// Validation

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function obj(v: unknown, path: string): Record<string, unknown> {
  if (!isRecord(v)) throw new CodecError(`${path}: expected an object, got ${describe(v)}`);
  return v;
}

function idx(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new CodecError(`${path}: expected a non-negative safe integer, got ${describe(v)}`);
  }
  return v;
}

function bytes(v: unknown, path: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new CodecError(`${path}: expected bytes, got ${describe(v)}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw new CodecError(`${path}: expected a boolean, got ${describe(v)}`);
  return v;
}

function enumValue(v: unknown, allowed: Set<number>, path: string): number {
  if (typeof v !== 'number' || !allowed.has(v)) {
    throw new CodecError(`${path}: unknown value ${describe(v)}`);
  }
  return v;
}

function idList(v: unknown, path: string): number[] {
  if (!Array.isArray(v)) throw new CodecError(`${path}: expected an array, got ${describe(v)}`);
  const out: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const id = idx(v[i], `${path}[${i}]`);
    if (id === 0) throw new CodecError(`${path}[${i}]: node id 0 is not allowed`);
    out.push(id);
  }
  return out;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return typeof v;
}

function checkKeys(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of keys) if (!(k in o)) throw new CodecError(`${path}: missing field '${k}'`);
}

function validEntry(v: unknown, path: string): Entry {
  const o = obj(v, path);
  checkKeys(o, ENTRY_KEYS, path);
  return {
    term: idx(o['term'], `${path}.term`),
    index: idx(o['index'], `${path}.index`),
    type: enumValue(o['type'], ENTRY_TYPES, `${path}.type`) as EntryType,
    data: bytes(o['data'], `${path}.data`),
  };
}

function validConfState(v: unknown, path: string): ConfState {
  const o = obj(v, path);
  checkKeys(o, CONF_STATE_KEYS, path);
  return { voters: idList(o['voters'], `${path}.voters`), learners: idList(o['learners'], `${path}.learners`) };
}

function validSnapshot(v: unknown, path: string): Snapshot {
  const o = obj(v, path);
  checkKeys(o, SNAPSHOT_KEYS, path);
  const md = obj(o['metadata'], `${path}.metadata`);
  checkKeys(md, SNAPSHOT_METADATA_KEYS, `${path}.metadata`);
  return {
    metadata: {
      index: idx(md['index'], `${path}.metadata.index`),
      term: idx(md['term'], `${path}.metadata.term`),
      confState: validConfState(md['confState'], `${path}.metadata.confState`),
    },
    data: bytes(o['data'], `${path}.data`),
  };
}

function validMessage(v: unknown, path: string): Message {
  const o = obj(v, path);
  checkKeys(o, MESSAGE_KEYS, path);
  const rawEntries = o['entries'];
  if (!Array.isArray(rawEntries)) {
    throw new CodecError(`${path}.entries: expected an array, got ${describe(rawEntries)}`);
  }
  const entries: Entry[] = new Array<Entry>(rawEntries.length);
  for (let i = 0; i < rawEntries.length; i++) entries[i] = validEntry(rawEntries[i], `${path}.entries[${i}]`);
  const snap = o['snapshot'];
  return {
    type: enumValue(o['type'], MESSAGE_TYPES, `${path}.type`) as MessageType,
    from: idx(o['from'], `${path}.from`),
    to: idx(o['to'], `${path}.to`),
    term: idx(o['term'], `${path}.term`),
    logTerm: idx(o['logTerm'], `${path}.logTerm`),
    index: idx(o['index'], `${path}.index`),
    entries,
    commit: idx(o['commit'], `${path}.commit`),
    reject: bool(o['reject'], `${path}.reject`),
    rejectHint: idx(o['rejectHint'], `${path}.rejectHint`),
    snapshot: snap === null ? null : validSnapshot(snap, `${path}.snapshot`),
    context: bytes(o['context'], `${path}.context`),
  };
}

function validConfChange(v: unknown, path: string): ConfChange {
  const o = obj(v, path);
  checkKeys(o, CONF_CHANGE_KEYS, path);
  const nodeId = idx(o['nodeId'], `${path}.nodeId`);
  if (nodeId === 0) throw new CodecError(`${path}.nodeId: node id 0 is not allowed`);
  return {
    type: enumValue(o['type'], CONF_CHANGE_TYPES, `${path}.type`) as ConfChangeType,
    nodeId,
    context: bytes(o['context'], `${path}.context`),
  };
}

function validHardState(v: unknown, path: string): HardState {
  const o = obj(v, path);
  checkKeys(o, HARD_STATE_KEYS, path);
  return {
    term: idx(o['term'], `${path}.term`),
    vote: idx(o['vote'], `${path}.vote`),
    commit: idx(o['commit'], `${path}.commit`),
  };
}

// ----------------------------------------------------------------------------------------
// Encode / decode

function unpack(b: Uint8Array, what: string): unknown {
  if (!(b instanceof Uint8Array)) throw new CodecError(`${what}: expected bytes, got ${describe(b)}`);
  if (b.length === 0) throw new CodecError(`${what}: empty input`);
  try {
    // A single value must span the whole input: trailing bytes mean corruption or framing bugs.
    const values = unpackAll(b);
    if (values.length !== 1) throw new CodecError(`${what}: expected one value, found ${values.length}`);
    return values[0];
  } catch (err) {
    if (err instanceof CodecError) throw err;
    throw new CodecError(`${what}: malformed msgpack: ${(err as Error).message}`);
  }
}

function unpackAll(b: Uint8Array): unknown[] {
  try {
    return packr.unpackMultiple(b) as unknown[];
  } finally {
    resetIfStructuresChanged();
  }
}

function pack(v: unknown): Uint8Array {
  return packr.pack(v);
}

export function encodeMessage(m: Message): Uint8Array {
  return pack(normMessage(m));
}

export function decodeMessage(b: Uint8Array): Message {
  return validMessage(unpack(b, 'message'), 'message');
}

export function encodeMessages(ms: Message[]): Uint8Array {
  return pack(ms.map(normMessage));
}

export function decodeMessages(b: Uint8Array): Message[] {
  const v = unpack(b, 'messages');
  if (!Array.isArray(v)) throw new CodecError(`messages: expected an array, got ${describe(v)}`);
  const out: Message[] = new Array<Message>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = validMessage(v[i], `messages[${i}]`);
  return out;
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return pack({ type: cc.type, nodeId: cc.nodeId, context: cc.context });
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  return validConfChange(unpack(b, 'confChange'), 'confChange');
}

export function encodeEntry(e: Entry): Uint8Array {
  return pack(normEntry(e));
}

export function decodeEntry(b: Uint8Array): Entry {
  return validEntry(unpack(b, 'entry'), 'entry');
}

export function encodeHardState(hs: HardState): Uint8Array {
  return pack({ term: hs.term, vote: hs.vote, commit: hs.commit });
}

export function decodeHardState(b: Uint8Array): HardState {
  return validHardState(unpack(b, 'hardState'), 'hardState');
}

export function encodeSnapshot(s: Snapshot): Uint8Array {
  return pack(normSnapshot(s));
}

export function decodeSnapshot(b: Uint8Array): Snapshot {
  return validSnapshot(unpack(b, 'snapshot'), 'snapshot');
}

export function encodeConfState(cs: ConfState): Uint8Array {
  return pack(normConfState(cs));
}

export function decodeConfState(b: Uint8Array): ConfState {
  return validConfState(unpack(b, 'confState'), 'confState');
}
