/**
 * The replicated key-value state machine: an in-memory map of committed values, the binary
 * command format proposals use, and a binary snapshot of the whole map.
 *
 * Every value remembers the Raft index of the write that set it (its revision, like etcd's
 * mod_revision). All replicas apply the same log, so the same key has the same revision on
 * every node; the HTTP API exposes it so tests and clients can see that order agrees.
 *
 * Formats (all integers little-endian):
 *   command  = u8 op (1 = put) | u32 keyBytes | key (UTF-8) | value (rest of the entry)
 *   snapshot = "RKV1" | u32 count | count × (u32 keyBytes | key | f64 revision | u32 valueBytes | value)
 */

import type { AppliedEntry, StateMachine } from '../node/index.js';

export const OP_PUT = 1;

/** Keys are at most this many UTF-8 bytes (the HTTP layer enforces it before proposing). */
export const KEY_BYTES_MAX = 4096;

const SNAPSHOT_MAGIC = 0x31564b52; // "RKV1" read as little-endian u32
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export interface StoredValue {
  value: Buffer;
  /** Raft index of the write that set the value. */
  revision: number;
}

/** What apply returns: the revision of a put, or an error value for an undecodable entry (a
 * committed entry can never be skipped by throwing: every replica must apply the same log). */
export type ApplyResult = { revision: number } | { error: string };

export class CommandError extends Error {
  override name = 'CommandError';
}

export function encodePut(key: string, value: Uint8Array): Buffer {
  const keyBytes = textEncoder.encode(key);
  if (keyBytes.length === 0 || keyBytes.length > KEY_BYTES_MAX) {
    throw new CommandError(`key must be 1..${KEY_BYTES_MAX} UTF-8 bytes, got ${keyBytes.length}`);
  }
  const out = Buffer.allocUnsafe(1 + 4 + keyBytes.length + value.length);
  out.writeUInt8(OP_PUT, 0);
  out.writeUInt32LE(keyBytes.length, 1);
  out.set(keyBytes, 5);
  out.set(value, 5 + keyBytes.length);
  return out;
}

export interface PutCommand {
  op: 'put';
  key: string;
  value: Buffer;
}

export function decodeCommand(data: Uint8Array): PutCommand {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 5) throw new CommandError(`command too short (${buf.length} bytes)`);
  const op = buf.readUInt8(0);
  if (op !== OP_PUT) throw new CommandError(`unknown command op ${op}`);
  const keyLen = buf.readUInt32LE(1);
  if (keyLen === 0 || keyLen > KEY_BYTES_MAX || 5 + keyLen > buf.length) {
    throw new CommandError(`bad key length ${keyLen} in a ${buf.length}-byte command`);
  }
  let key: string;
  try {
    key = textDecoder.decode(buf.subarray(5, 5 + keyLen));
  } catch {
    throw new CommandError('key is not valid UTF-8');
  }
  // Copy: the entry's buffer belongs to the runtime (and may be a slice of a larger batch).
  return { op: 'put', key, value: Buffer.from(buf.subarray(5 + keyLen)) };
}

export function encodeSnapshot(map: ReadonlyMap<string, StoredValue>): Buffer {
  const keys: Uint8Array[] = [];
  let size = 8;
  for (const [key, stored] of map) {
    const k = textEncoder.encode(key);
    keys.push(k);
    size += 4 + k.length + 8 + 4 + stored.value.length;
  }
  const out = Buffer.allocUnsafe(size);
  let off = out.writeUInt32LE(SNAPSHOT_MAGIC, 0);
  off = out.writeUInt32LE(map.size, off);
  let i = 0;
  for (const stored of map.values()) {
    const k = keys[i++]!;
    off = out.writeUInt32LE(k.length, off);
    out.set(k, off);
    off += k.length;
    off = out.writeDoubleLE(stored.revision, off);
    off = out.writeUInt32LE(stored.value.length, off);
    out.set(stored.value, off);
    off += stored.value.length;
  }
  if (off !== size) throw new Error(`snapshot encoder wrote ${off} bytes, expected ${size}`);
  return out;
}

export function decodeSnapshot(data: Uint8Array): Map<string, StoredValue> {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const fail = (why: string, at: number): never => {
    throw new CommandError(`KV snapshot is corrupt at byte ${at} of ${buf.length}: ${why}`);
  };
  if (buf.length < 8) fail('shorter than its header', 0);
  if (buf.readUInt32LE(0) !== SNAPSHOT_MAGIC) fail('bad magic', 0);
  const count = buf.readUInt32LE(4);
  const map = new Map<string, StoredValue>();
  let off = 8;
  for (let n = 0; n < count; n++) {
    if (off + 4 > buf.length) fail('truncated key length', off);
    const keyLen = buf.readUInt32LE(off);
    off += 4;
    if (off + keyLen + 12 > buf.length) fail(`truncated key of ${keyLen} bytes`, off);
    let key: string;
    try {
      key = textDecoder.decode(buf.subarray(off, off + keyLen));
    } catch {
      return fail('key is not valid UTF-8', off);
    }
    off += keyLen;
    const revision = buf.readDoubleLE(off);
    off += 8;
    const valueLen = buf.readUInt32LE(off);
    off += 4;
    if (off + valueLen > buf.length) fail(`truncated value of ${valueLen} bytes`, off);
    map.set(key, { value: Buffer.from(buf.subarray(off, off + valueLen)), revision });
    off += valueLen;
  }
  if (off !== buf.length) fail(`${buf.length - off} trailing bytes after ${count} entries`, off);
  return map;
}

/** Pieces of a streamed snapshot are about this big (a record is never split). */
export const SNAPSHOT_PIECE_BYTES = 1024 * 1024;

export async function* encodeSnapshotStream(entries: ReadonlyArray<readonly [string, StoredValue]>): AsyncGenerator<Uint8Array> {
  const header = Buffer.allocUnsafe(8);
  header.writeUInt32LE(SNAPSHOT_MAGIC, 0);
  header.writeUInt32LE(entries.length, 4);
  let parts: Uint8Array[] = [header];
  let bytes = header.length;
  for (const [key, stored] of entries) {
    const k = textEncoder.encode(key);
    const fixed = Buffer.allocUnsafe(4 + k.length + 12);
    let off = fixed.writeUInt32LE(k.length, 0);
    fixed.set(k, off);
    off += k.length;
    off = fixed.writeDoubleLE(stored.revision, off);
    fixed.writeUInt32LE(stored.value.length, off);
    parts.push(fixed, stored.value);
    bytes += fixed.length + stored.value.length;
    if (bytes >= SNAPSHOT_PIECE_BYTES) {
      yield Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

/** Decodes the snapshot format from pieces of any size, holding at most one record plus one
 * piece; same errors as decodeSnapshot (offsets are into the whole stream). */
export async function decodeSnapshotStream(source: AsyncIterable<Uint8Array>): Promise<Map<string, StoredValue>> {
  let buf = Buffer.alloc(0);
  let base = 0; // stream offset of buf[0]
  let ended = false;
  const it = source[Symbol.asyncIterator]();
  const fail = (why: string, at: number): never => {
    throw new CommandError(`KV snapshot stream is corrupt at byte ${at}: ${why}`);
  };
  /** Makes `n` bytes available at buf[0..n); false at the end of the stream. */
  const need = async (n: number): Promise<boolean> => {
    if (buf.length >= n) return true;
    // Collect pieces first, copy once: tiny pieces must not make a big value quadratic.
    const parts: Uint8Array[] = [buf];
    let have = buf.length;
    while (have < n && !ended) {
      const next = await it.next();
      if (next.done === true) ended = true;
      else {
        parts.push(next.value);
        have += next.value.length;
      }
    }
    buf = Buffer.concat(parts, have);
    return have >= n;
  };
  const take = (n: number): Buffer => {
    const out = buf.subarray(0, n);
    buf = buf.subarray(n);
    base += n;
    return out;
  };
  if (!(await need(8))) fail('shorter than its header', base);
  if (buf.readUInt32LE(0) !== SNAPSHOT_MAGIC) fail('bad magic', 0);
  const count = buf.readUInt32LE(4);
  take(8);
  const map = new Map<string, StoredValue>();
  for (let n = 0; n < count; n++) {
    if (!(await need(4))) fail('truncated key length', base);
    const keyLen = buf.readUInt32LE(0);
    if (keyLen > KEY_BYTES_MAX) fail(`key of ${keyLen} bytes`, base);
    if (!(await need(4 + keyLen + 12))) fail(`truncated key of ${keyLen} bytes`, base);
    let key: string;
    try {
      key = textDecoder.decode(buf.subarray(4, 4 + keyLen));
    } catch {
      return fail('key is not valid UTF-8', base + 4);
    }
    const revision = buf.readDoubleLE(4 + keyLen);
    const valueLen = buf.readUInt32LE(4 + keyLen + 8);
    take(4 + keyLen + 12);
    if (!(await need(valueLen))) fail(`truncated value of ${valueLen} bytes`, base);
    map.set(key, { value: Buffer.from(take(valueLen)), revision });
  }
  if (await need(1)) fail(`trailing bytes after ${count} entries`, base);
  return map;
}

/** The state machine a RaftNode drives. Reads go straight to `get` (the HTTP layer decides
 * whether to wait for a read barrier first). */
export class KvStore implements StateMachine<ApplyResult> {
  private map = new Map<string, StoredValue>();
  /** Called with a description when a committed entry cannot be decoded (logged by the server). */
  onBadEntry: (index: number, why: string) => void = () => {};

  get size(): number {
    return this.map.size;
  }

  get(key: string): StoredValue | undefined {
    return this.map.get(key);
  }

  apply(entry: AppliedEntry): ApplyResult {
    let cmd: PutCommand;
    try {
      cmd = decodeCommand(entry.data);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.onBadEntry(entry.index, why);
      return { error: why };
    }
    this.map.set(cmd.key, { value: cmd.value, revision: entry.index });
    return { revision: entry.index };
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.map);
  }

  restore(data: Uint8Array): void {
    this.map = decodeSnapshot(data);
  }

  /** The same bytes as snapshot(), in pieces of about SNAPSHOT_PIECE_BYTES. The map's entries
   * are captured now (pointers only: values are never mutated, a put replaces them), so the
   * node can write the stream while later entries are applied. */
  snapshotStream(): AsyncIterable<Uint8Array> {
    return encodeSnapshotStream([...this.map]);
  }

  /** Replaces the map with a snapshot read as a stream; the old map stays if it is corrupt. */
  async restoreStream(source: AsyncIterable<Uint8Array>): Promise<void> {
    this.map = await decodeSnapshotStream(source);
  }
}
