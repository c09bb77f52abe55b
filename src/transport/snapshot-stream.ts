/**
 * Streamed snapshots on the wire (`POST /raft/snapshot` with `x-raftkv-snapshot-stream: 1`),
 * like etcd's rafthttp snapshot sender: the Raft message carries only a small descriptor and
 * the state follows it as a stream read from the sender's snapshot file, in CRC-checked chunks,
 * so neither side ever holds the snapshot in memory (format: docs/formats.md, "Snapshot
 * stream").
 *
 *   magic "RKSS" | u32 messageBytes | u64 bodyBytes | message (codec.ts)
 *   chunks: u32 length (1 … SNAPSHOT_WIRE_CHUNK_BYTES) | u32 crc32c | bytes
 *   end:    u32 0 | u32 0
 *
 * The receiver checks every chunk as it arrives and that they add up to exactly bodyBytes; the
 * body is handed to the receiving node as an async iterable that throws SnapshotStreamError on
 * the first problem (a consumer must not use what it read unless the iteration completes).
 */

import { Readable } from 'node:stream';
import type { Client } from 'undici';
import { getWalBackend } from '../wal/select-backend.js';

/** Request header that marks a streamed snapshot (value '1'). */
export const HEADER_SNAPSHOT_STREAM = 'x-raftkv-snapshot-stream';
/** Largest chunk on the wire; the receiver refuses a bigger length field (it allocates no more). */
export const SNAPSHOT_WIRE_CHUNK_BYTES = 1024 * 1024;
const MAGIC = 0x5353_4b52; // "RKSS" read as little-endian u32
const PREAMBLE_BYTES = 16;
const FRAME_HEADER_BYTES = 8;

/** What a sender streams after a Snap message: the snapshot's body, opened when it is sent
 * (each attempt reads it afresh from its source, e.g. the snapshot file). */
export interface SnapshotBody {
  bytes: number;
  open(): AsyncIterable<Uint8Array>;
}

/** A streamed snapshot request that must be refused with `status` (400 malformed, 413 too big). */
export class SnapshotStreamError extends Error {
  override name = 'SnapshotStreamError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function crc32c(bytes: Uint8Array, seed: number): number {
  return getWalBackend().crc32c(bytes, seed) >>> 0;
}

/** The request body for a Snap message (already encoded) and its snapshot body. Each source
 * piece is cut into chunks of at most SNAPSHOT_WIRE_CHUNK_BYTES; the source must yield exactly
 * `body.bytes` bytes, or the stream fails (and the request with it). */
export async function* encodeSnapshotStream(message: Uint8Array, body: SnapshotBody): AsyncGenerator<Buffer> {
  const preamble = Buffer.alloc(PREAMBLE_BYTES);
  preamble.writeUInt32LE(MAGIC, 0);
  preamble.writeUInt32LE(message.byteLength, 4);
  preamble.writeBigUInt64LE(BigInt(body.bytes), 8);
  yield Buffer.concat([preamble, message]);
  let sent = 0;
  for await (const piece of body.open()) {
    for (let off = 0; off < piece.byteLength; off += SNAPSHOT_WIRE_CHUNK_BYTES) {
      const chunk = piece.subarray(off, Math.min(piece.byteLength, off + SNAPSHOT_WIRE_CHUNK_BYTES));
      sent += chunk.byteLength;
      if (sent > body.bytes) throw new Error(`snapshot body is longer than the ${body.bytes} bytes announced`);
      const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      header.writeUInt32LE(chunk.byteLength, 0);
      header.writeUInt32LE(crc32c(chunk, 0), 4);
      yield header;
      yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
  }
  if (sent !== body.bytes) throw new Error(`snapshot body ended after ${sent} of the ${body.bytes} bytes announced`);
  yield Buffer.alloc(FRAME_HEADER_BYTES);
}

/**
 * Posts a streamed snapshot on `client`. Resolves with null once the receiver answered 204 (it
 * has the snapshot on disk and stepped it), else with why it failed. Never rejects.
 */
export async function postSnapshotStream(
  client: Client,
  path: string,
  headers: Record<string, string>,
  message: Uint8Array,
  body: SnapshotBody,
): Promise<string | null> {
  try {
    const res = await client.request({
      path,
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/octet-stream', [HEADER_SNAPSHOT_STREAM]: '1' },
      // Pulled as the socket drains: about one chunk in memory at a time.
      body: Readable.from(encodeSnapshotStream(message, body), { objectMode: false }),
    });
    if (res.statusCode === 204) {
      await res.body.dump();
      return null;
    }
    let reason: string;
    try {
      reason = (await res.body.text()).slice(0, 500);
    } catch (err) {
      reason = `(unreadable answer: ${String(err)})`;
    }
    return `HTTP ${res.statusCode}: ${reason}`;
  } catch (err) {
    if (err instanceof Error) {
      const code = (err as { code?: unknown }).code;
      return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
    }
    return String(err);
  }
}

/** Pulls exact byte counts out of a stream of buffers (an HTTP request body). */
class ByteReader {
  private readonly source: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.source = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes (a fresh buffer), or a 400 when the stream ends first. */
  async read(n: number, what: string): Promise<Buffer> {
    while (this.pendingBytes < n) {
      if (this.ended) throw new SnapshotStreamError(400, `snapshot stream truncated: ${what} needs ${n} bytes, ${this.pendingBytes} left`);
      const next = await this.source.next();
      if (next.done === true) {
        this.ended = true;
        continue;
      }
      this.pending.push(next.value);
      this.pendingBytes += next.value.byteLength;
    }
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out = Buffer.from(all.subarray(0, n)); // a copy: the rest may be kept as pending
    const rest = all.subarray(n);
    this.pending = rest.byteLength > 0 ? [rest] : [];
    this.pendingBytes = rest.byteLength;
    return out;
  }

  /** True when nothing follows (reads the source to its end). */
  async atEnd(): Promise<boolean> {
    if (this.pendingBytes > 0) return false;
    while (!this.ended) {
      const next = await this.source.next();
      if (next.done === true) this.ended = true;
      else if (next.value.byteLength > 0) return false;
    }
    return true;
  }

  /** Stops reading (the request is abandoned). */
  async close(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.ended) {
      this.ended = true;
      await this.source.return?.();
    }
  }
}

export interface ReceivedSnapshotStream {
  /** The encoded Snap message (decode and check it before consuming the body). */
  message: Uint8Array;
  bodyBytes: number;
  /** The body's chunks, each checked before it is yielded; the last step checks the end. */
  body: AsyncGenerator<Uint8Array>;
  /** True once the body was read to its checked end. */
  readonly complete: boolean;
}

/**
 * Reads the preamble and message of a streamed snapshot request. Refuses (SnapshotStreamError)
 * a bad magic, a message over `messageBytesMax` or a body over `bodyBytesMax` (413) before
 * anything else is read.
 */
export async function readSnapshotStream(
  req: Readable,
  limits: { messageBytesMax: number; bodyBytesMax: number },
): Promise<ReceivedSnapshotStream> {
  const reader = new ByteReader(req as AsyncIterable<Buffer>);
  const preamble = await reader.read(PREAMBLE_BYTES, 'the preamble');
  if (preamble.readUInt32LE(0) !== MAGIC) throw new SnapshotStreamError(400, 'not a snapshot stream (bad magic)');
  const messageBytes = preamble.readUInt32LE(4);
  const declared = preamble.readBigUInt64LE(8);
  if (messageBytes > limits.messageBytesMax) {
    throw new SnapshotStreamError(413, `snapshot message of ${messageBytes} bytes exceeds the limit of ${limits.messageBytesMax} bytes`);
  }
  if (declared > BigInt(limits.bodyBytesMax)) {
    throw new SnapshotStreamError(413, `snapshot of ${declared} bytes exceeds snapshotBytesMax ${limits.bodyBytesMax}`);
  }
  const bodyBytes = Number(declared);
  const message = await reader.read(messageBytes, 'the message');
  const state = { complete: false };
  async function* body(): AsyncGenerator<Uint8Array> {
    let received = 0;
    try {
      for (;;) {
        const header = await reader.read(FRAME_HEADER_BYTES, `the chunk header at body offset ${received}`);
        const length = header.readUInt32LE(0);
        const crc = header.readUInt32LE(4);
        if (length === 0) {
          if (crc !== 0) throw new SnapshotStreamError(400, 'bad end frame in the snapshot stream');
          break;
        }
        if (length > SNAPSHOT_WIRE_CHUNK_BYTES) {
          throw new SnapshotStreamError(400, `snapshot chunk of ${length} bytes exceeds ${SNAPSHOT_WIRE_CHUNK_BYTES}`);
        }
        if (received + length > bodyBytes) {
          throw new SnapshotStreamError(400, `snapshot stream carries more than the ${bodyBytes} bytes announced`);
        }
        const chunk = await reader.read(length, `the chunk at body offset ${received}`);
        const actual = crc32c(chunk, 0);
        if (actual !== crc) {
          throw new SnapshotStreamError(400, `crc32c mismatch in the snapshot chunk at body offset ${received} (sent ${crc.toString(16)}, got ${actual.toString(16)})`);
        }
        received += length;
        yield chunk;
      }
      if (received !== bodyBytes) {
        throw new SnapshotStreamError(400, `snapshot stream ended after ${received} of the ${bodyBytes} bytes announced`);
      }
      if (!(await reader.atEnd())) throw new SnapshotStreamError(400, 'bytes after the end of the snapshot stream');
      state.complete = true;
    } finally {
      if (!state.complete) await reader.close();
    }
  }
  return {
    message,
    bodyBytes,
    body: body(),
    get complete() {
      return state.complete;
    },
  };
}
