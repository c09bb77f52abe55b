/**
 * Snapshots whose state travels as a stream (like etcd's: the Raft message carries metadata, the
 * state goes from file to file). The core keeps `Snapshot.data` in memory and puts it in every
 * MsgSnap, so for those snapshots it holds only a descriptor (format: docs/formats.md):
 *
 *   "RKR1" | u32 crc32c of the body | u64 body length | head
 *
 * The head is the runtime's envelope (envelope.ts) with the state machine's bytes left out; the
 * body — the state machine's snapshot stream — stays in the snapshot file (src/snap, version 2)
 * and is streamed by the transport and into `StateMachine.restoreStream`. A snapshot whose data
 * is not a descriptor (the simulator's, version 1 files) carries its state inline as before.
 */

import type { NodeId, Snapshot, SnapshotMetadata } from '../raft/types.js';
import { decodeSnapshotData } from './envelope.js';
import type { StateMachine } from './options.js';

const REF_MAGIC = [0x52, 0x4b, 0x52, 0x31]; // 'RKR1'
const REF_HEADER_BYTES = 16;

export interface SnapshotRef {
  /** The envelope without the state machine's bytes (or, for old files, with them). */
  head: Uint8Array;
  bodyBytes: number;
  bodyCrc: number;
}

export function encodeSnapshotRef(ref: SnapshotRef): Uint8Array {
  if (!Number.isSafeInteger(ref.bodyBytes) || ref.bodyBytes < 0) throw new RangeError(`bad snapshot body length ${ref.bodyBytes}`);
  const out = new Uint8Array(REF_HEADER_BYTES + ref.head.length);
  const view = new DataView(out.buffer);
  out.set(REF_MAGIC, 0);
  view.setUint32(4, ref.bodyCrc >>> 0, true);
  view.setBigUint64(8, BigInt(ref.bodyBytes), true);
  out.set(ref.head, REF_HEADER_BYTES);
  return out;
}

/** The descriptor in `data`, or null when `data` is not one (its state is inline). Throws on a
 * descriptor that does not make sense. */
export function decodeSnapshotRef(data: Uint8Array): SnapshotRef | null {
  if (data.length < REF_HEADER_BYTES || REF_MAGIC.some((b, i) => data[i] !== b)) return null;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const bodyBytes = view.getBigUint64(8, true);
  if (bodyBytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`snapshot descriptor: body length ${bodyBytes} is too large`);
  return { head: data.subarray(REF_HEADER_BYTES), bodyBytes: Number(bodyBytes), bodyCrc: view.getUint32(4, true) };
}

/** Reads a snapshot's body (its file's chunks, checked) given its metadata. */
export type SnapshotBodyReader = (metadata: SnapshotMetadata) => AsyncIterable<Uint8Array>;

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes;
}

/**
 * The state machine's snapshot as a stream, captured now (the state at the applied index):
 * `snapshotStream()` when it has one, else `snapshot()`'s bytes. The iteration may run later,
 * while entries are applied (snapshotStream's contract).
 */
export async function captureStateMachine<R>(sm: StateMachine<R>): Promise<AsyncIterable<Uint8Array>> {
  if (sm.snapshotStream !== undefined) {
    const source = await sm.snapshotStream();
    if (source === null || typeof source !== 'object' || typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] !== 'function') {
      throw new Error(`state machine snapshotStream() must return an AsyncIterable<Uint8Array>, got ${typeof source}`);
    }
    return checkedChunks(source);
  }
  const bytes = await sm.snapshot();
  if (!(bytes instanceof Uint8Array)) throw new Error(`state machine snapshot() must return a Uint8Array, got ${typeof bytes}`);
  return once(bytes);
}

async function* checkedChunks(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new Error(`state machine snapshotStream() yielded ${typeof chunk}, not a Uint8Array`);
    yield chunk;
  }
}

/**
 * Restores the state machine from a snapshot (its inline state, or its body read by
 * `readBody`) and returns the peer URLs it carries. With `restoreStream` the body is streamed
 * through, which must be read to its end (the file's final check comes last); without it the
 * body is read into memory for `restore(bytes)`.
 */
export async function restoreStateMachine<R>(
  sm: StateMachine<R>,
  snapshot: Snapshot,
  readBody: SnapshotBodyReader | null,
): Promise<Map<NodeId, string>> {
  const ref = decodeSnapshotRef(snapshot.data);
  const env = decodeSnapshotData(ref === null ? snapshot.data : ref.head);
  let source: AsyncIterable<Uint8Array>;
  if (ref === null || ref.bodyBytes === 0) {
    source = once(env.stateMachine);
  } else {
    if (env.stateMachine.length > 0) throw new Error(`snapshot ${snapshot.metadata.index} has both inline state and a body`);
    if (readBody === null) throw new Error(`snapshot ${snapshot.metadata.index} has a ${ref.bodyBytes}-byte body but there are no snapshot files to read it from`);
    source = readBody(snapshot.metadata);
  }
  if (sm.restoreStream !== undefined) {
    let complete = false;
    async function* tracked(): AsyncGenerator<Uint8Array> {
      yield* source;
      complete = true;
    }
    await sm.restoreStream(tracked());
    if (!complete) throw new Error(`state machine restoreStream() returned before reading the whole snapshot ${snapshot.metadata.index}`);
  } else {
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const chunk of source) {
      parts.push(chunk);
      total += chunk.length;
    }
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
    await sm.restore(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return env.peerUrls;
}
