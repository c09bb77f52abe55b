/**
 * The seam between the WAL logic (src/wal/wal.ts) and the bytes on disk.
 *
 * Two implementations: `native` (the C++ addon, src/wal/native-backend.ts) and `js`
 * (writev + fdatasync through a FileSystem — node:fs, or a simulated disk —
 * src/wal/js-backend.ts). Both frame records exactly as
 * docs/wal-format.md says, so their `buffered` files are byte-identical.
 *
 * Durability contract for SegmentFile.append: the promise resolves only after the bytes are
 * written AND (when `sync` is true) fdatasync/O_DSYNC/O_DIRECT completion has returned success.
 * If a write or sync fails, the segment enters a failed state: that append and every pending
 * and later call reject with the ORIGINAL error (`SegmentFailedError` whose `cause` is the
 * first error). It is never retried.
 */

import type { FileSystem } from './file-system.js';

export type WalMode = 'buffered' | 'direct' | 'dsync';
export type WalModeOption = WalMode | 'auto';

/** How a new segment's space is reserved before use. */
export type PreallocateStrategy = 'zero' | 'fallocate' | 'none';

export enum RecordType {
  SegmentHeader = 1,
  Metadata = 2,
  Entry = 3,
  HardState = 4,
  Snapshot = 5,
  Pad = 6,
  /** Closes every batch (one append() call); added by the backend, never passed in. */
  Commit = 7,
}

export const FRAME_HEADER_BYTES = 16;
export const RECORD_BYTES_MAX = 64 * 1024 * 1024;
export const SEGMENT_HEADER_PAYLOAD_BYTES = 40;
/** COMMIT payload: frameOffset u64, durableOffset u64, prevCrc u32, zero u32. */
export const COMMIT_PAYLOAD_BYTES = 24;
/** A COMMIT frame on disk: its 16-byte header and payload. */
export const COMMIT_FRAME_BYTES = FRAME_HEADER_BYTES + COMMIT_PAYLOAD_BYTES;
export const SEGMENT_MAGIC = 'RAFTKVWL';
/** 2: every batch ends with a COMMIT frame (version 1 had none and is refused). */
export const WAL_FORMAT_VERSION = 2;

/**
 * The frame-format constants, as one object: the native addon exports its own copy
 * (formatConstants) and the loader refuses an addon whose copy differs.
 */
export const FORMAT_CONSTANTS = Object.freeze({
  formatVersion: WAL_FORMAT_VERSION,
  segmentMagic: SEGMENT_MAGIC,
  frameHeaderBytes: FRAME_HEADER_BYTES,
  recordBytesMax: RECORD_BYTES_MAX,
  segmentHeaderPayloadBytes: SEGMENT_HEADER_PAYLOAD_BYTES,
  commitPayloadBytes: COMMIT_PAYLOAD_BYTES,
  typeSegmentHeader: RecordType.SegmentHeader,
  typeMetadata: RecordType.Metadata,
  typeEntry: RecordType.Entry,
  typeHardState: RecordType.HardState,
  typeSnapshot: RecordType.Snapshot,
  typePad: RecordType.Pad,
  typeCommit: RecordType.Commit,
});

export interface RecordInput {
  type: RecordType;
  payload: Uint8Array;
}

export interface AppendResult {
  /** File offset just past the last frame written: the batch's COMMIT frame, or the PAD frame
   * after it in direct mode. */
  endOffset: number;
  /** crc of that frame: the chain continues from it. */
  lastCrc: number;
}

export interface OpenSegmentOptions {
  mode: WalModeOption;
  /** Where the next frame goes and the chain state to continue from (from a scan, or 0/prevCrc
   * for a fresh segment whose header has not been written yet). */
  offset: number;
  prevCrc: number;
  salt: number;
}

export interface SegmentFile {
  readonly path: string;
  /** The mode actually in use (auto resolved) and why it was chosen. */
  readonly mode: WalMode;
  readonly modeReason: string;
  /** Block size used for direct-mode alignment (0 when not direct). */
  readonly blockSize: number;
  /**
   * Frame and write `records` after everything previously appended, as one batch closed by a
   * COMMIT frame (docs/wal-format.md); sync if asked. An empty `records` writes nothing.
   * Batches handed in while one is in flight are merged into the next write+sync (group
   * commit), in order. A batch with sync=false that is merged with a sync=true one is synced.
   */
  append(records: readonly RecordInput[], sync: boolean): Promise<AppendResult>;
  /** fdatasync now (no-op write); rejects and fails the segment on error. */
  sync(): Promise<void>;
  /** The first error that failed this segment, or null. */
  readonly failure: Error | null;
  /** Stop accepting appends, wait for in-flight ones, close the fd. */
  close(): Promise<void>;
}

export type ScanStopReason = 'eof' | 'zero' | 'torn' | 'crc' | 'length' | 'commit';

export interface ScannedRecord {
  offset: number;
  type: RecordType;
  payload: Uint8Array;
  crc: number;
}

/** A COMMIT frame found after a scan's stop that validates on its own (see format doc). */
export interface LaterCommit {
  offset: number;
  /** What it says: the segment was durable (synced) through here before its batch was written. */
  durableOffset: number;
}

export interface ScanResult {
  path: string;
  fileBytes: number;
  /** The frames of committed batches, in order (SEGMENT_HEADER, PAD and COMMIT frames
   * included); frames of a batch whose COMMIT frame was not reached are left out. */
  records: ScannedRecord[];
  /** Offset just past the last committed batch (and any PAD frames right after it): where the
   * next batch goes. */
  validEndOffset: number;
  /** crc of the frame ending there (the seed for the next one). */
  lastCrc: number;
  stop: {
    /** Where and why the walk along the chain stopped. A clean end is eof/zero with
     * offset === validEndOffset; at a larger offset, valid frames without a COMMIT preceded it. */
    reason: ScanStopReason;
    offset: number;
    detail: string;
    /**
     * For a stop that is not a clean end (torn/crc/length/commit): the first later COMMIT frame
     * in this file that validates on its own and says the segment was durable past
     * validEndOffset when its batch was written — proof that the bytes at the stop had been
     * synced, i.e. damage, not a torn write. null when there is none (always for eof/zero).
     */
    laterCommit: LaterCommit | null;
  };
}

export interface ScanOptions {
  /** Seed for the first frame's crc (the SEGMENT_HEADER); the salt is read from the header. */
  prevCrc: number;
}

export interface DirSyncResult {
  /** true: the directory was fsynced. false: the filesystem refused with `errno`
   * (EINVAL/ENOTSUP/ENOSYS only: anything else throws). */
  supported: boolean;
  errno: string | null;
}

export interface DirectIoProbe {
  usable: boolean;
  blockSize: number;
  reason: string;
}

export interface WalBackend {
  readonly name: 'native' | 'js';
  /** Why this backend is active (e.g. "prebuild loaded from …" or the load error). */
  readonly reason: string;
  /** The filesystem its segment I/O goes to (native: always the real one, in C++); the WAL
   * does its own file operations (readdir, rename, unlink, repair) through the same one. */
  readonly fileSystem: FileSystem;
  crc32c(data: Uint8Array, seed: number): number;
  /** Create `path` (must not exist) of `sizeBytes`, reserving space by `strategy`, fsync it. */
  createSegmentFile(path: string, sizeBytes: number, strategy: PreallocateStrategy): Promise<void>;
  openSegment(path: string, options: OpenSegmentOptions): Promise<SegmentFile>;
  scanSegment(path: string, options: ScanOptions): Promise<ScanResult>;
  /** fsync a directory; EINVAL/ENOTSUP/ENOSYS → { supported: false }, anything else throws. */
  syncDirectory(path: string): DirSyncResult;
  probeDirectIo(dir: string): DirectIoProbe;
  /** Filesystem type name of the filesystem holding path (ext4, xfs, tmpfs, vboxsf, …). */
  filesystemType(path: string): string;
  /** Take an exclusive non-blocking flock on path (created if missing). Returns a release
   * function, or throws an error with code 'ELOCKED' when another holder has it. null when this
   * backend cannot flock. */
  readonly flock: ((path: string) => () => void) | null;
}

export class SegmentFailedError extends Error {
  constructor(path: string, cause: Error) {
    super(`WAL segment ${path} has failed and accepts no more writes: ${cause.message}`, { cause });
    this.name = 'SegmentFailedError';
  }
}
