/**
 * WAL framing as docs/wal-format.md specifies it: frame encoding, the segment header, and a pure
 * scanner. Shared by the JS backend, the native backend's TypeScript side and the WAL layer, so
 * every backend writes and reads exactly the same bytes.
 */

import {
  COMMIT_FRAME_BYTES,
  COMMIT_PAYLOAD_BYTES,
  FRAME_HEADER_BYTES,
  RECORD_BYTES_MAX,
  RecordType,
  SEGMENT_HEADER_PAYLOAD_BYTES,
  SEGMENT_MAGIC,
  WAL_FORMAT_VERSION,
  type LaterCommit,
  type RecordInput,
  type ScanResult,
  type ScanStopReason,
  type ScannedRecord,
} from './backend.js';
import { crc32cRange, crc32cU32 } from './crc32c.js';
import { mutations } from '../testing/mutations.js';

const UINT32_MAX = 0xffffffff;
const MAGIC_BYTES = new TextEncoder().encode(SEGMENT_MAGIC);
/** Offset of `salt` inside the SEGMENT_HEADER payload. */
const HEADER_SALT_OFFSET = 32;

/** A segment written in another format version: not damage, a file this build does not read. */
export class UnsupportedWalVersionError extends Error {
  constructor(readonly version: number) {
    super(
      `unsupported raftkv WAL format version ${version} (this build reads version ${WAL_FORMAT_VERSION} only` +
        (version === 1 ? ': version 1 has no COMMIT frames, so a torn final batch cannot be told from damage)' : ')'),
    );
    this.name = 'UnsupportedWalVersionError';
  }
}

export interface SegmentHeader {
  /** Alignment the writer used (direct mode); 0 for buffered/dsync. */
  blockSize: number;
  seq: number;
  firstIndex: number;
  /** Per-segment random salt mixed into every frame crc. */
  salt: number;
  /** Last frame crc of the previous segment (0 for the very first segment). */
  prevCrc: number;
}

export interface EncodedFrames {
  bytes: Uint8Array;
  /** crc of the last frame encoded (equals prevCrc when `records` is empty). */
  lastCrc: number;
}

function assertUint32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
    throw new RangeError(`${name} must be a uint32, got ${value}`);
  }
}

function isRecordType(type: number): type is RecordType {
  return Number.isInteger(type) && type >= RecordType.SegmentHeader && type <= RecordType.Commit;
}

function roundUp8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

/** Bytes a frame with this payload length occupies on disk: 16 + roundUp8(length). */
export function frameBytes(payloadLength: number): number {
  if (!Number.isInteger(payloadLength) || payloadLength < 1 || payloadLength > RECORD_BYTES_MAX) {
    throw new RangeError(
      `WAL record payload must be 1..${RECORD_BYTES_MAX} bytes, got ${payloadLength}`,
    );
  }
  return FRAME_HEADER_BYTES + roundUp8(payloadLength);
}

function writeHeader8(target: Uint8Array, offset: number, payloadLength: number, type: number) {
  target[offset] = payloadLength & 0xff;
  target[offset + 1] = (payloadLength >>> 8) & 0xff;
  target[offset + 2] = (payloadLength >>> 16) & 0xff;
  target[offset + 3] = (payloadLength >>> 24) & 0xff;
  target[offset + 4] = type;
  target[offset + 5] = 0;
  target[offset + 6] = 0;
  target[offset + 7] = 0;
}

function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value & 0xff;
  target[offset + 1] = (value >>> 8) & 0xff;
  target[offset + 2] = (value >>> 16) & 0xff;
  target[offset + 3] = (value >>> 24) & 0xff;
}

/** Writes a non-negative safe integer as u64 LE. */
function writeU64(target: Uint8Array, offset: number, value: number): void {
  writeU32(target, offset, value % 0x1_0000_0000);
  writeU32(target, offset + 4, Math.floor(value / 0x1_0000_0000));
}

/** u64 LE as a number; values past 2^53 come out imprecise (callers compare them with file
 * offsets, which are far below). */
function readU64(source: Uint8Array, offset: number): number {
  return readU32(source, offset + 4) * 0x1_0000_0000 + readU32(source, offset);
}

function readU32(source: Uint8Array, offset: number): number {
  return (
    (source[offset]! |
      (source[offset + 1]! << 8) |
      (source[offset + 2]! << 16) |
      (source[offset + 3]! << 24)) >>>
    0
  );
}

function checkRecord(record: RecordInput, index: number): void {
  // Records come from callers (and from JS without types): a clear error, not a property crash.
  if (typeof record !== 'object' || record === null) throw new TypeError(`record ${index} must be an object`);
  if (!isRecordType(record.type)) {
    throw new RangeError(`record ${index}: unknown WAL record type ${String(record.type)}`);
  }
  if (record.type === RecordType.Commit) {
    throw new RangeError(`record ${index}: COMMIT frames are added by the backend, not passed in`);
  }
  if (!(record.payload instanceof Uint8Array)) {
    throw new TypeError(`record ${index}: payload must be a Uint8Array`);
  }
  // frameBytes throws for empty or oversized payloads.
  frameBytes(record.payload.length);
}

/** frame[0..8): length u32 LE, type u8, three zero bytes. */
export function encodeFrameHeader(payloadLength: number, type: RecordType): Uint8Array {
  frameBytes(payloadLength);
  if (!isRecordType(type)) throw new RangeError(`unknown WAL record type ${String(type)}`);
  const header8 = new Uint8Array(8);
  writeHeader8(header8, 0, payloadLength, type);
  return header8;
}

/** crc(prevCrc, salt_le32 ‖ header8 ‖ payload): the `crc` field of a frame. */
export function frameCrc(
  prevCrc: number,
  salt: number,
  header8: Uint8Array,
  payload: Uint8Array,
): number {
  assertUint32('prevCrc', prevCrc);
  assertUint32('salt', salt);
  if (header8.length !== 8) throw new RangeError(`frame header must be 8 bytes, got ${header8.length}`);
  const afterHeader = crc32cRange(header8, 0, 8, crc32cU32(salt, prevCrc));
  return crc32cRange(payload, 0, payload.length, afterHeader);
}

/** Total bytes `records` occupy as frames (validates every record). */
export function framesByteLength(records: readonly RecordInput[]): number {
  let total = 0;
  for (let i = 0; i < records.length; i++) {
    checkRecord(records[i]!, i);
    total += frameBytes(records[i]!.payload.length);
  }
  return total;
}

/**
 * Frame `records` into `target` starting at `offset` (which must have room: see
 * framesByteLength; padding bytes are written as zeros). Returns the end offset and last crc.
 * Records must already be validated by framesByteLength.
 */
export function writeFramesInto(
  target: Uint8Array,
  offset: number,
  records: readonly RecordInput[],
  prevCrc: number,
  salt: number,
): { endOffset: number; lastCrc: number } {
  assertUint32('prevCrc', prevCrc);
  assertUint32('salt', salt);
  let crc = prevCrc;
  let at = offset;
  for (const record of records) {
    const length = record.payload.length;
    const size = frameBytes(length);
    if (at + size > target.length) {
      throw new RangeError(`frame buffer too small: need ${at + size} bytes, have ${target.length}`);
    }
    layOutFrame(target, at, record.type, record.payload);
    crc = crc32cRange(target, at, at + 8, crc32cU32(salt, crc));
    crc = crc32cRange(record.payload, 0, length, crc);
    writeU32(target, at + 8, crc);
    at += size;
  }
  return { endOffset: at, lastCrc: crc };
}

/**
 * Lays out one frame at `at` — header, a zero crc field, the payload, zero padding to 8 bytes —
 * and returns where it ends. The crc is left for the caller to seal (writeFramesInto here, the
 * native writer thread for the addon). The record must be valid (see frameBytes) and fit.
 */
export function layOutFrame(target: Uint8Array, at: number, type: RecordType, payload: Uint8Array): number {
  const length = payload.length;
  const end = at + FRAME_HEADER_BYTES + roundUp8(length);
  writeHeader8(target, at, length, type);
  writeU32(target, at + 8, 0);
  writeU32(target, at + 12, 0);
  target.set(payload, at + FRAME_HEADER_BYTES);
  // At most 7 bytes: a loop beats fill()'s call overhead on this hot path.
  for (let p = at + FRAME_HEADER_BYTES + length; p < end; p++) target[p] = 0;
  return end;
}

/** Frame `records` into one new buffer, chaining from `prevCrc` with the segment's `salt`. */
export function encodeFrames(
  records: readonly RecordInput[],
  prevCrc: number,
  salt: number,
): EncodedFrames {
  const bytes = new Uint8Array(framesByteLength(records));
  const { lastCrc } = writeFramesInto(bytes, 0, records, prevCrc, salt);
  return { bytes, lastCrc };
}

export interface BatchPosition {
  /** crc of the frame before the batch (the chain continues from it). */
  prevCrc: number;
  salt: number;
  /** File offset the batch's first frame goes to. */
  fileOffset: number;
  /** The segment is known durable (synced) through this offset; at most fileOffset. */
  durableOffset: number;
}

/** Bytes a batch of `records` takes: its frames and the COMMIT frame closing it (0 if empty). */
export function batchByteLength(records: readonly RecordInput[]): number {
  const frames = framesByteLength(records);
  return records.length === 0 ? 0 : frames + COMMIT_FRAME_BYTES;
}

/**
 * The COMMIT payload: frameOffset u64, durableOffset u64, prevCrc u32, zero u32. Here with
 * frameOffset and prevCrc too; the native writer fills those two in itself (see layOutCommit).
 */
export function encodeCommitPayload(frameOffset: number, durableOffset: number, prevCrc: number): Uint8Array {
  assertSafeU64('frameOffset', frameOffset);
  assertSafeU64('durableOffset', durableOffset);
  assertUint32('prevCrc', prevCrc);
  if (durableOffset > frameOffset) {
    throw new RangeError(`COMMIT durableOffset ${durableOffset} is past the frame's own offset ${frameOffset}`);
  }
  const payload = new Uint8Array(COMMIT_PAYLOAD_BYTES);
  writeU64(payload, 0, frameOffset);
  writeU64(payload, 8, durableOffset);
  writeU32(payload, 16, prevCrc);
  return payload;
}

/**
 * Lays out a COMMIT frame at `at` with only durableOffset filled in (frameOffset, prevCrc and the
 * crc stay zero): what the native backend hands its writer thread, which knows the file offset
 * and the chain and completes it. Returns where the frame ends.
 */
export function layOutCommit(target: Uint8Array, at: number, durableOffset: number): number {
  assertSafeU64('durableOffset', durableOffset);
  const end = at + COMMIT_FRAME_BYTES;
  writeHeader8(target, at, COMMIT_PAYLOAD_BYTES, RecordType.Commit);
  target.fill(0, at + 8, end);
  writeU64(target, at + FRAME_HEADER_BYTES + 8, durableOffset);
  return end;
}

/**
 * Frame `records` as one batch (their frames, then a COMMIT frame) into `target` at `at`, which
 * must have batchByteLength(records) bytes of room; records must be validated by
 * framesByteLength. Returns the end offset in `target` and the batch's last crc. An empty
 * `records` writes nothing.
 */
export function writeBatchInto(
  target: Uint8Array,
  at: number,
  records: readonly RecordInput[],
  position: BatchPosition,
): { endOffset: number; lastCrc: number } {
  const { prevCrc, salt, fileOffset, durableOffset } = position;
  if (records.length === 0) return { endOffset: at, lastCrc: prevCrc };
  const frames = writeFramesInto(target, at, records, prevCrc, salt);
  const commitOffset = fileOffset + (frames.endOffset - at);
  const commit = [{ type: RecordType.Commit, payload: encodeCommitPayload(commitOffset, durableOffset, frames.lastCrc) }];
  return writeFramesInto(target, frames.endOffset, commit, frames.lastCrc, salt);
}

/** One batch (see writeBatchInto) in a new buffer. */
export function encodeBatch(records: readonly RecordInput[], position: BatchPosition): EncodedFrames {
  const bytes = new Uint8Array(batchByteLength(records));
  const { lastCrc } = writeBatchInto(bytes, 0, records, position);
  return { bytes, lastCrc };
}

function assertSafeU64(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

/** The 40-byte SEGMENT_HEADER payload. */
export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  assertUint32('blockSize', header.blockSize);
  assertSafeU64('seq', header.seq);
  assertSafeU64('firstIndex', header.firstIndex);
  assertUint32('salt', header.salt);
  assertUint32('prevCrc', header.prevCrc);
  const payload = new Uint8Array(SEGMENT_HEADER_PAYLOAD_BYTES);
  const view = new DataView(payload.buffer);
  payload.set(MAGIC_BYTES, 0);
  view.setUint32(8, WAL_FORMAT_VERSION, true);
  view.setUint32(12, header.blockSize, true);
  view.setBigUint64(16, BigInt(header.seq), true);
  view.setBigUint64(24, BigInt(header.firstIndex), true);
  view.setUint32(HEADER_SALT_OFFSET, header.salt, true);
  view.setUint32(36, header.prevCrc, true);
  return payload;
}

/** Parse a SEGMENT_HEADER payload; throws a clear error on wrong size, magic or version. */
export function decodeSegmentHeader(payload: Uint8Array): SegmentHeader {
  if (payload.length !== SEGMENT_HEADER_PAYLOAD_BYTES) {
    throw new Error(
      `WAL segment header must be ${SEGMENT_HEADER_PAYLOAD_BYTES} bytes, got ${payload.length}`,
    );
  }
  for (let i = 0; i < MAGIC_BYTES.length; i++) {
    if (payload[i] !== MAGIC_BYTES[i]) {
      throw new Error(`not a raftkv WAL segment: magic is not "${SEGMENT_MAGIC}"`);
    }
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const version = view.getUint32(8, true);
  if (version !== WAL_FORMAT_VERSION) throw new UnsupportedWalVersionError(version);
  const seq = view.getBigUint64(16, true);
  const firstIndex = view.getBigUint64(24, true);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER) || firstIndex > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`WAL segment header seq ${seq} / firstIndex ${firstIndex} exceeds 2^53 - 1`);
  }
  return {
    blockSize: view.getUint32(12, true),
    seq: Number(seq),
    firstIndex: Number(firstIndex),
    salt: view.getUint32(HEADER_SALT_OFFSET, true),
    prevCrc: view.getUint32(36, true),
  };
}

/**
 * Read the SEGMENT_HEADER frame at the start of a segment's bytes, checking its crc against the
 * prevCrc it carries itself (so it needs no chain state). For the WAL to learn the seed of the
 * oldest kept segment; for every other segment scan with the previous segment's lastCrc.
 * Throws a clear error when the file does not start with a valid header frame.
 */
export function readSegmentHeaderFrame(bytes: Uint8Array): SegmentHeader {
  const headerFrameBytes = frameBytes(SEGMENT_HEADER_PAYLOAD_BYTES);
  if (bytes.length < headerFrameBytes) {
    throw new Error(`WAL segment is ${bytes.length} bytes, too short for its header frame`);
  }
  if (readU32(bytes, 0) !== SEGMENT_HEADER_PAYLOAD_BYTES || bytes[4] !== RecordType.SegmentHeader) {
    throw new Error('WAL segment does not start with a SEGMENT_HEADER frame');
  }
  const payload = bytes.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + SEGMENT_HEADER_PAYLOAD_BYTES);
  const header = decodeSegmentHeader(payload);
  const crc = frameCrc(header.prevCrc, header.salt, bytes.subarray(0, 8), payload);
  if (crc !== readU32(bytes, 8)) {
    throw new Error('WAL segment header frame fails its crc check');
  }
  return header;
}

// ---------------------------------------------------------------------------------------------
// Scanning

export interface ScanBufferOptions {
  /** Seed for the first frame's crc (the SEGMENT_HEADER's); the salt comes from the header. */
  prevCrc: number;
  /** Named in ScanResult.path and in error messages. */
  path?: string;
}

/** Index of the first non-zero byte in bytes[from, end), or -1. */
function firstNonZero(bytes: Uint8Array, from: number, end: number): number {
  let i = from;
  // Byte steps up to a 4-byte-aligned address, then word steps: zero tails can be 64 MiB.
  while (i < end && (bytes.byteOffset + i) % 4 !== 0) {
    if (bytes[i] !== 0) return i;
    i++;
  }
  const wordCount = Math.floor((end - i) / 4);
  if (wordCount > 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset + i, wordCount);
    for (let w = 0; w < wordCount; w++) {
      if (words[w] !== 0) {
        i += w * 4;
        while (bytes[i] === 0) i++;
        return i;
      }
    }
    i += wordCount * 4;
  }
  for (; i < end; i++) if (bytes[i] !== 0) return i;
  return -1;
}

function frameValidates(bytes: Uint8Array, at: number, length: number, seed: number, salt: number) {
  let crc = crc32cRange(bytes, at, at + 8, crc32cU32(salt, seed));
  crc = crc32cRange(bytes, at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length, crc);
  return crc === readU32(bytes, at + 8);
}

/**
 * What is wrong with the payload of the COMMIT frame at `at`, whose crc continues `prevCrc`
 * (null: nothing). Its fields must say where it is, a durable offset not past that, the crc it
 * continues, and a zero reserved word.
 */
function commitProblem(bytes: Uint8Array, at: number, prevCrc: number): string | null {
  const payload = at + FRAME_HEADER_BYTES;
  const frameOffset = readU64(bytes, payload);
  const durableOffset = readU64(bytes, payload + 8);
  if (frameOffset !== at) return 'does not state its own offset';
  if (durableOffset > at) return 'states a durable offset past itself';
  if (readU32(bytes, payload + 16) !== prevCrc) return `states prevCrc ${readU32(bytes, payload + 16)}, the chain has ${prevCrc}`;
  if (readU32(bytes, payload + 20) !== 0) return 'has non-zero reserved bytes 20..23';
  return null;
}

/**
 * The first COMMIT frame at or after `from` that validates on its own (its crc checked against
 * the prevCrc its payload states, with this segment's salt; its fields sane) and says the
 * segment was durable past `committedEnd` — or null. Such a frame was written after the bytes
 * at `committedEnd` had been synced, so damage there is not a torn write. Linear: only 8-aligned
 * offsets with a COMMIT frame header get a crc computed.
 */
function findLaterCommit(bytes: Uint8Array, from: number, salt: number, committedEnd: number): LaterCommit | null {
  for (let at = from; at + COMMIT_FRAME_BYTES <= bytes.length; at += 8) {
    if (readU32(bytes, at) !== COMMIT_PAYLOAD_BYTES || bytes[at + 4] !== RecordType.Commit) continue;
    if (bytes[at + 5] !== 0 || bytes[at + 6] !== 0 || bytes[at + 7] !== 0 || readU32(bytes, at + 12) !== 0) continue;
    const statedPrevCrc = readU32(bytes, at + FRAME_HEADER_BYTES + 16);
    if (!frameValidates(bytes, at, COMMIT_PAYLOAD_BYTES, statedPrevCrc, salt)) continue;
    if (commitProblem(bytes, at, statedPrevCrc) !== null) continue;
    const durableOffset = readU64(bytes, at + FRAME_HEADER_BYTES + 8);
    // (The tornBatchAsCorruption mutation, test/simnode only: any later valid frame counts as
    // proof, the format-1 rule that refused a torn final batch as mid-log damage.)
    if (durableOffset > committedEnd || mutations.tornBatchAsCorruption) return { offset: at, durableOffset };
  }
  return null;
}

/**
 * Walk the frames of one segment file's bytes, exactly as docs/wal-format.md specifies.
 * Stops at the first of:
 *  - eof:    the end of the buffer, exactly at a frame boundary.
 *  - zero:   a zero length word and only zeros from there to the end.
 *  - torn:   a frame (or its 16-byte header) running past the end, or a zero length word
 *            followed by non-zero bytes.
 *  - crc:    a well-formed frame whose crc does not match the chain.
 *  - length: length > RECORD_BYTES_MAX, non-zero reserved header bytes, an unknown type, a
 *            header slot with length 0 but other header bytes set, a misplaced SEGMENT_HEADER,
 *            or a SEGMENT_HEADER/COMMIT frame of the wrong length.
 *  - commit: a COMMIT frame that passes the crc check but whose fields do not match.
 * Only frames of committed batches are returned; validEndOffset/lastCrc are those of the last
 * COMMIT frame (or of PAD frames right after it). For a stop other than eof/zero, laterCommit
 * says whether a later COMMIT frame proves the bytes at the stop had been synced.
 * Records hold payload views into `bytes`, not copies.
 * Throws only when the header frame is crc-valid but not a supported raftkv segment (wrong
 * magic or version): that is a wrong file, not damage to repair.
 */
export function scanBuffer(bytes: Uint8Array, options: ScanBufferOptions): ScanResult {
  const path = options.path ?? '';
  assertUint32('prevCrc', options.prevCrc);
  const fileBytes = bytes.length;
  const records: ScannedRecord[] = [];
  let chainCrc = options.prevCrc;
  let salt = 0;
  let offset = 0;
  // The end of the last committed batch: its COMMIT frame, and PAD frames right after it.
  let committedEnd = 0;
  let committedCrc = options.prevCrc;
  let committedCount = 0;

  // Before the header frame validated, the best guess for the salt is whatever its bytes say.
  const saltForSearch = (): number =>
    records.length > 0 || fileBytes < FRAME_HEADER_BYTES + HEADER_SALT_OFFSET + 4
      ? salt
      : readU32(bytes, FRAME_HEADER_BYTES + HEADER_SALT_OFFSET);
  const finish = (reason: ScanStopReason, detail: string): ScanResult => {
    const cleanEnd = reason === 'eof' || reason === 'zero';
    records.length = committedCount;
    return {
      path,
      fileBytes,
      records,
      validEndOffset: committedEnd,
      lastCrc: committedCrc,
      stop: {
        reason,
        offset,
        detail,
        laterCommit: cleanEnd ? null : findLaterCommit(bytes, offset, saltForSearch(), committedEnd),
      },
    };
  };

  for (;;) {
    const remaining = fileBytes - offset;
    if (remaining === 0) return finish('eof', `end of file at offset ${offset}`);

    const length = remaining >= 4 ? readU32(bytes, offset) : -1;
    if (length === 0 || (length === -1 && firstNonZero(bytes, offset, fileBytes) === -1)) {
      const nonZeroAt = firstNonZero(bytes, offset, fileBytes);
      if (nonZeroAt === -1) return finish('zero', `zero tail from offset ${offset} to end of file`);
      if (nonZeroAt < offset + FRAME_HEADER_BYTES && offset + FRAME_HEADER_BYTES <= fileBytes) {
        return finish('length', `frame at offset ${offset} has length 0 but non-zero header bytes`);
      }
      return finish('torn', `zero length word at offset ${offset} followed by non-zero bytes at offset ${nonZeroAt}`);
    }
    if (remaining < FRAME_HEADER_BYTES) {
      return finish(
        'torn',
        `frame header at offset ${offset} cut off by end of file (${remaining} of ${FRAME_HEADER_BYTES} bytes)`,
      );
    }

    const type = bytes[offset + 4]!;
    const storedCrc = readU32(bytes, offset + 8);
    let badHeader: string | null = null;
    if (length > RECORD_BYTES_MAX) {
      badHeader = `length ${length} exceeds RECORD_BYTES_MAX ${RECORD_BYTES_MAX}`;
    } else if (bytes[offset + 5] !== 0 || bytes[offset + 6] !== 0 || bytes[offset + 7] !== 0) {
      badHeader = 'non-zero reserved bytes 5..7';
    } else if (readU32(bytes, offset + 12) !== 0) {
      badHeader = 'non-zero reserved bytes 12..15';
    } else if (!isRecordType(type)) {
      badHeader = `unknown record type ${type}`;
    } else if (offset === 0 && type !== RecordType.SegmentHeader) {
      badHeader = `first frame has type ${type}, not SEGMENT_HEADER`;
    } else if (offset === 0 && length !== SEGMENT_HEADER_PAYLOAD_BYTES) {
      badHeader = `SEGMENT_HEADER frame has length ${length}, not ${SEGMENT_HEADER_PAYLOAD_BYTES}`;
    } else if (offset !== 0 && type === RecordType.SegmentHeader) {
      badHeader = 'SEGMENT_HEADER frame after the start of the segment';
    } else if (type === RecordType.Commit && length !== COMMIT_PAYLOAD_BYTES) {
      badHeader = `COMMIT frame has length ${length}, not ${COMMIT_PAYLOAD_BYTES}`;
    }
    if (badHeader !== null) return finish('length', `bad frame header at offset ${offset}: ${badHeader}`);

    const size = FRAME_HEADER_BYTES + roundUp8(length);
    if (size > remaining) {
      return finish('torn', `frame at offset ${offset} (${size} bytes) runs past end of file (${remaining} bytes left)`);
    }

    const payloadStart = offset + FRAME_HEADER_BYTES;
    const payload = bytes.subarray(payloadStart, payloadStart + length);
    if (offset === 0) salt = readU32(bytes, payloadStart + HEADER_SALT_OFFSET);
    if (!frameValidates(bytes, offset, length, chainCrc, salt)) {
      return finish('crc', `crc mismatch in frame at offset ${offset} (type ${type}, ${length} bytes)`);
    }
    if (offset === 0) {
      try {
        decodeSegmentHeader(payload);
      } catch (error) {
        throw new Error(`${path || 'WAL segment'}: ${(error as Error).message}`, { cause: error });
      }
    }
    if (type === RecordType.Commit) {
      const problem = commitProblem(bytes, offset, chainCrc);
      if (problem !== null) return finish('commit', `COMMIT frame at offset ${offset} ${problem}`);
    }
    records.push({ offset, type: type as RecordType, payload, crc: storedCrc });
    chainCrc = storedCrc;
    const frameStart = offset;
    offset += size;
    if (type === RecordType.Commit || (type === RecordType.Pad && frameStart === committedEnd)) {
      committedEnd = offset;
      committedCrc = chainCrc;
      committedCount = records.length;
    }
  }
}
