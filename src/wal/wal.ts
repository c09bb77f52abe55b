/**
 * The write-ahead log: a directory of segments (docs/wal-format.md) on top of a WalBackend.
 *
 * Shaped like etcd's wal package for a Raft runtime:
 *   const wal = await Wal.create(dir, { metadata });                 // once, atomically
 *   const { wal, hardState, entries } = await Wal.open(dir, { snapshot }); // every restart
 *   await wal.save(ready.hardState, ready.entries, { sync: ready.mustSync });
 *   await wal.saveSnapshot({ index, term }); await wal.releaseTo(index);
 *
 * Durability: a save's promise resolves only once its records are written and (sync: true)
 * synced; a failed write/sync fails the WAL for good and every later call rejects with that
 * first error. Recovery repairs only a torn tail of the last segment; anything else refuses to
 * open with a WalCorruptionError naming file and offset.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Entry, HardState } from '../raft/types.js';
import { mutations, storageRandomness } from '../testing/mutations.js';
import {
  COMMIT_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  RecordType,
  SEGMENT_HEADER_PAYLOAD_BYTES,
  type AppendResult,
  type PreallocateStrategy,
  type RecordInput,
  type ScanResult,
  type SegmentFile,
  type WalBackend,
  type WalMode,
  type WalModeOption,
} from './backend.js';
import { mkdirDurable, syncDirectory, type DirSyncPolicy } from './dir-sync.js';
import { WalClosedError, WalCorruptionError, WalExistsError, WalSnapshotNotFoundError } from './errors.js';
import { fdatasyncAsync, nodeFileSystem, readAt, writeAllAt, type FileStat, type FileSystem } from './file-system.js';
import {
  batchByteLength,
  decodeSegmentHeader,
  encodeSegmentHeader,
  frameBytes,
  readSegmentHeaderFrame,
  UnsupportedWalVersionError,
  type SegmentHeader,
} from './frame.js';
import { lockDirectory, LOCK_FILE_NAME, type DirLock, type LockMethod } from './lock.js';
import { stderrLogger, type WalLogger } from './logger.js';
import {
  decodeEntry,
  decodeHardState,
  decodeMetadata,
  decodeSnapshotMarker,
  entryRecord,
  hardStateRecord,
  metadataRecord,
  RecordDecodeError,
  snapshotRecord,
  type SnapshotMarker,
  type WalMetadata,
} from './records.js';
import { parseSegmentFileName, preparedSegmentFileName, segmentFileName } from './segment-name.js';
import { backendFor } from './select-backend.js';

export type { SnapshotMarker, WalMetadata } from './records.js';

export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Smallest segment size accepted: the initial records of a segment must fit comfortably. */
export const MIN_SEGMENT_BYTES = 4096;

export interface WalOptions {
  /** Default: getWalBackend() (native where it loads, else js); over a simulated `fs`, the js
   * backend over it. */
  backend?: WalBackend;
  /** Advanced (the deterministic simulator): the filesystem every file operation goes through.
   * Default node:fs. Any other runs the js backend over it (the native backend does its I/O on
   * real files in C++). */
  fs?: FileSystem;
  /** Default 'auto' (direct where the filesystem accepts O_DIRECT, else buffered). */
  mode?: WalModeOption;
  /** Size segments are preallocated to; a segment is cut when the next batch would not fit.
   * Default 64 MiB. */
  segmentBytes?: number;
  /** How the next segment's space is reserved (off the hot path). Default 'zero'. */
  preallocate?: PreallocateStrategy;
  /** Default 'auto': warn once and carry on where directories cannot be fsynced. */
  dirSync?: DirSyncPolicy;
  logger?: WalLogger;
  /** Default 'auto': native flock → fs-ext flock → pid lock file. */
  lockMethod?: LockMethod | 'auto';
  /** Testing hook: every directory fsync goes to this path instead (e.g. a FIFO → EINVAL). */
  dirSyncTarget?: string;
}

export interface WalCreateOptions extends WalOptions {
  metadata: WalMetadata;
}

export interface WalOpenOptions extends WalOptions {
  /** Replay starts after this snapshot; its marker must be in the log. Default {0, 0} (the
   * marker Wal.create writes), i.e. replay everything. */
  snapshot?: SnapshotMarker;
}

export interface TailRepair {
  file: string;
  /** Where the log now ends; everything from here to the end of the file was zeroed. */
  offset: number;
  /** Non-zero bytes dropped (what may have been a partly written batch). */
  droppedBytes: number;
  /** Copy of the dropped bytes, or null when there were none to keep. */
  brokenFile: string | null;
  reason: string;
}

export interface WalReplay {
  metadata: WalMetadata;
  /** The last hard state in the log; all zero when none was ever saved. */
  hardState: HardState;
  /** Entries after the opened snapshot, in index order (a later rewrite of an index wins). */
  entries: Entry[];
  /** Snapshot markers found in the replayed segments, in log order. */
  snapshots: SnapshotMarker[];
  /** Set when a torn tail of the last segment was cut off during this open. */
  repair: TailRepair | null;
}

export interface OpenedWal extends WalReplay {
  wal: Wal;
}

export interface SaveOptions {
  /** fdatasync before resolving. Pass Ready.mustSync (etcd: sync only when term, vote or
   * entries changed). Default true. */
  sync?: boolean;
}

export interface WalStatus {
  dir: string;
  backend: 'native' | 'js';
  backendReason: string;
  mode: WalMode;
  modeReason: string;
  blockSize: number;
  directIoUsable: boolean;
  directIoReason: string;
  dirSyncPolicy: DirSyncPolicy;
  /** false when the filesystem refused a directory fsync (EINVAL/ENOTSUP/ENOSYS). */
  dirSyncUsable: boolean;
  dirSyncErrno: string | null;
  filesystemType: string;
  lock: { kind: LockMethod; path: string; reason: string };
  segments: number;
  currentSegment: string;
  lastIndex: number;
  failed: string | null;
  closed: boolean;
}

interface SegmentInfo {
  seq: number;
  firstIndex: number;
  path: string;
}

interface ResolvedOptions {
  backend: WalBackend;
  /** backend.fileSystem: where the WAL's own file operations go too. */
  fs: FileSystem;
  mode: WalModeOption;
  segmentBytes: number;
  preallocate: PreallocateStrategy;
  dirSync: DirSyncPolicy;
  logger: WalLogger;
  lockMethod: LockMethod | 'auto';
  dirSyncTarget: string | undefined;
}

const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: 0, commit: 0 });
const HEADER_FRAME_BYTES = FRAME_HEADER_BYTES + SEGMENT_HEADER_PAYLOAD_BYTES;
const ZERO_CHUNK_BYTES = 1024 * 1024;

function resolveOptions(options: WalOptions): ResolvedOptions {
  const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < MIN_SEGMENT_BYTES) {
    throw new RangeError(`segmentBytes must be an integer ≥ ${MIN_SEGMENT_BYTES}, got ${segmentBytes}`);
  }
  const dirSync = options.dirSync ?? 'auto';
  if (dirSync !== 'auto' && dirSync !== 'strict') throw new RangeError(`dirSync must be 'auto' or 'strict', got ${String(dirSync)}`);
  const backend = backendFor({ backend: options.backend, fs: options.fs });
  return {
    backend,
    fs: backend.fileSystem,
    mode: options.mode ?? 'auto',
    segmentBytes,
    preallocate: options.preallocate ?? 'zero',
    dirSync,
    logger: options.logger ?? stderrLogger,
    lockMethod: options.lockMethod ?? 'auto',
    dirSyncTarget: options.dirSyncTarget,
  };
}

function randomSalt(): number {
  const seeded = storageRandomness.salt;
  return seeded !== null ? seeded() : randomBytes(4).readUInt32LE(0);
}

function headerRecord(header: SegmentHeader): RecordInput {
  return { type: RecordType.SegmentHeader, payload: encodeSegmentHeader(header) };
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** Upper bound of the bytes a batch takes on disk: its frames and COMMIT frame (direct mode
 * adds one PAD frame ≤ 2 blocks). */
function batchBytesUpperBound(records: readonly RecordInput[], blockSize: number): number {
  return batchByteLength(records) + (blockSize > 0 ? 2 * blockSize : 0);
}

function listSegments(files: FileSystem, dir: string): SegmentInfo[] {
  const segments: SegmentInfo[] = [];
  for (const name of files.readdirSync(dir)) {
    const parsed = parseSegmentFileName(name);
    if (parsed !== null) segments.push({ ...parsed, path: path.join(dir, name) });
  }
  segments.sort((a, b) => a.seq - b.seq);
  return segments;
}

export class Wal {
  readonly dir: string;
  private readonly opts: ResolvedOptions;
  private readonly lock: DirLock;
  private readonly metadata: WalMetadata;
  private segments: SegmentInfo[];
  private current: SegmentFile;
  /** Upper bound of the current segment's end offset, counting batches still in flight. */
  private currentEnd: number;
  /** End of the records every segment starts with (header, metadata, hard state). */
  private currentInitialEnd: number;
  private lastCrc: number;
  private lastAppend: Promise<AppendResult> | null = null;
  private inFlight = 0;
  private generation = 0;
  private lastIndex: number;
  /**
   * The hard state of the last batch handed to the current segment (set when the batch is
   * issued, in queue order — not when save() is called). A cut copies it into the new segment
   * only after that batch is written and synced, so the copy never runs ahead of the entries
   * it commits. The hard state of the save that triggers a cut, or of saves queued behind it,
   * is not it: their entries are not on disk yet.
   */
  private lastIssuedHardState: HardState | null;
  private latestSnapshotIndex: number;
  /** Serializes the *issuing* of operations (cut decisions, appends, releases, close); the
   * appends themselves overlap in the backend (group commit). */
  private queue: Promise<void> = Promise.resolve();
  private prepared: { seq: number; path: string; ready: Promise<void> } | null = null;
  private failure: Error | null = null;
  private closed = false;
  private dirSyncUsable: boolean;
  private dirSyncErrno: string | null;
  /** Probed on the first status() call: opening stays cheap. */
  private probes: { directIo: { usable: boolean; reason: string }; filesystemType: string } | null = null;

  private constructor(init: {
    dir: string;
    opts: ResolvedOptions;
    lock: DirLock;
    metadata: WalMetadata;
    segments: SegmentInfo[];
    current: SegmentFile;
    endOffset: number;
    lastCrc: number;
    lastIndex: number;
    lastHardState: HardState | null;
    latestSnapshotIndex: number;
    dirSync: { supported: boolean; errno: string | null };
  }) {
    this.dir = init.dir;
    this.opts = init.opts;
    this.lock = init.lock;
    this.metadata = init.metadata;
    this.segments = init.segments;
    this.current = init.current;
    this.currentEnd = init.endOffset;
    this.currentInitialEnd = init.endOffset;
    this.lastCrc = init.lastCrc;
    this.lastIndex = init.lastIndex;
    this.lastIssuedHardState = init.lastHardState;
    this.latestSnapshotIndex = init.latestSnapshotIndex;
    this.dirSyncUsable = init.dirSync.supported;
    this.dirSyncErrno = init.dirSync.errno;
  }

  /** true when `dir` holds WAL segments (then open it; else create it). */
  static exists(dir: string, fs: FileSystem = nodeFileSystem): boolean {
    try {
      return listSegments(fs, path.resolve(dir)).length > 0;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
      throw err;
    }
  }

  /**
   * Create a new WAL in `dir` (which must not exist, or be empty), atomically: everything is
   * built and synced in `<dir>.tmp`, renamed into place, and the parent directory synced. The
   * first segment holds the metadata and a {0, 0} snapshot marker.
   */
  static async create(dir: string, options: WalCreateOptions): Promise<Wal> {
    const opts = resolveOptions(options);
    const finalDir = path.resolve(dir);
    // Validates the metadata before anything touches the disk.
    const metadataRec = metadataRecord(options.metadata);
    const { fs } = opts;
    let dirExists = false;
    try {
      const names = fs.readdirSync(finalDir);
      dirExists = true;
      if (names.length > 0) {
        const hasSegments = names.some((n) => parseSegmentFileName(n) !== null);
        throw new WalExistsError(
          finalDir,
          hasSegments ? 'it already holds a WAL (open it instead)' : `the directory is not empty (${names.slice(0, 3).join(', ')}…)`,
        );
      }
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }

    const tmpDir = `${finalDir}.tmp`;
    mkdirDurable(path.dirname(finalDir), { ...opts, policy: opts.dirSync });
    fs.mkdirSync(tmpDir, { recursive: true });
    // Locking the temp dir keeps two concurrent creators apart; the lock moves with the rename.
    const lock = lockDirectory(tmpDir, { backend: opts.backend, method: opts.lockMethod, warn: (m) => opts.logger.warn(m) });
    try {
      for (const name of fs.readdirSync(tmpDir)) {
        if (name !== LOCK_FILE_NAME) fs.rmSync(path.join(tmpDir, name), { recursive: true, force: true }); // leftover of a crashed create
      }
      const segPath = path.join(tmpDir, segmentFileName(0, 0));
      await opts.backend.createSegmentFile(segPath, opts.segmentBytes, opts.preallocate);
      const salt = randomSalt();
      const seg = await opts.backend.openSegment(segPath, { mode: opts.mode, offset: 0, prevCrc: 0, salt });
      try {
        await seg.append(
          [
            headerRecord({ blockSize: seg.blockSize, seq: 0, firstIndex: 0, salt, prevCrc: 0 }),
            metadataRec,
            snapshotRecord({ index: 0, term: 0 }),
          ],
          true,
        );
      } finally {
        await seg.close();
      }
      syncDirectory(tmpDir, { ...opts, policy: opts.dirSync, reportAs: finalDir });
      if (dirExists) fs.rmdirSync(finalDir); // empty (checked above); rename cannot replace it
      fs.renameSync(tmpDir, finalDir);
      lock.relocate(finalDir);
      syncDirectory(path.dirname(finalDir), { ...opts, policy: opts.dirSync });
      const opened = await Wal.openLocked(finalDir, lock, opts, { index: 0, term: 0 });
      return opened.wal;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /**
   * Open an existing WAL: lock it, check and replay it from `snapshot`, repair a torn tail of
   * the last segment, and get ready to append.
   */
  static async open(dir: string, options: WalOpenOptions = {}): Promise<OpenedWal> {
    const opts = resolveOptions(options);
    const resolved = path.resolve(dir);
    let st: FileStat;
    try {
      st = opts.fs.statSync(resolved);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new Error(`no WAL at ${resolved}: the directory does not exist (use Wal.create)`);
      throw err;
    }
    if (!st.isDirectory()) throw new Error(`no WAL at ${resolved}: not a directory`);
    const snapshot = options.snapshot ?? { index: 0, term: 0 };
    if (!Number.isSafeInteger(snapshot.index) || snapshot.index < 0 || !Number.isSafeInteger(snapshot.term) || snapshot.term < 0) {
      throw new RangeError(`snapshot index/term must be non-negative safe integers, got ${snapshot.index}/${snapshot.term}`);
    }
    const lock = lockDirectory(resolved, { backend: opts.backend, method: opts.lockMethod, warn: (m) => opts.logger.warn(m) });
    try {
      // The WAL directory's own entry may not be durable yet: a create killed between its
      // rename and the parent fsync leaves it in the page cache only, and a later power loss
      // would take the whole log (with every save acknowledged meanwhile).
      syncDirectory(path.dirname(resolved), { ...opts, policy: opts.dirSync });
      return await Wal.openLocked(resolved, lock, opts, snapshot);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private static async openLocked(dir: string, lock: DirLock, opts: ResolvedOptions, snapshot: SnapshotMarker): Promise<OpenedWal> {
    const { backend, fs } = opts;
    // Prepared-but-never-cut segments from an earlier run: never part of the log.
    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.wal.tmp')) fs.rmSync(path.join(dir, name), { force: true });
    }
    const segments = listSegments(fs, dir);
    if (segments.length === 0) throw new Error(`no WAL at ${dir}: the directory holds no segment files`);
    for (let i = 1; i < segments.length; i++) {
      if (segments[i]!.seq !== segments[i - 1]!.seq + 1) {
        throw new WalCorruptionError(
          segments[i]!.path,
          0,
          `segment sequence gap: seq ${segments[i]!.seq} follows seq ${segments[i - 1]!.seq} (${path.basename(segments[i - 1]!.path)}); a segment is missing`,
        );
      }
    }
    // Make the directory entries we are about to trust durable, and learn whether we can.
    const dirSync = syncDirectory(dir, { ...opts, policy: opts.dirSync });

    // Start at the last segment that begins at or before the snapshot (etcd selectWALFiles):
    // every entry after the snapshot is in it or later ones.
    let start = -1;
    for (let i = 0; i < segments.length; i++) if (segments[i]!.firstIndex <= snapshot.index) start = i;
    if (start < 0) {
      throw new WalSnapshotNotFoundError(
        dir,
        `cannot replay from snapshot index ${snapshot.index}: the oldest kept segment ${path.basename(segments[0]!.path)} starts after it (released)`,
      );
    }
    const selected = segments.slice(start);
    const seed = await readOwnHeader(fs, selected[0]!.path);

    let prevCrc = seed.prevCrc;
    let metadata: WalMetadata | null = null;
    let metadataBytes: Uint8Array | null = null;
    let hardState: HardState | null = null;
    const entries: Entry[] = [];
    const snapshots: SnapshotMarker[] = [];
    let snapshotFound = false;
    let latestSnapshotIndex = snapshot.index;
    let lastScan: ScanResult | null = null;
    let lastHeader: SegmentHeader | null = null;

    for (let i = 0; i < selected.length; i++) {
      const seg = selected[i]!;
      const isLast = i === selected.length - 1;
      const scan = await backend.scanSegment(seg.path, { prevCrc });
      const first = scan.records[0];
      if (first === undefined || first.type !== RecordType.SegmentHeader || first.offset !== 0) {
        // Its first batch (header, metadata) was synced before the segment got its name.
        throw new WalCorruptionError(
          seg.path,
          scan.stop.offset,
          `the segment's first batch (its header) does not validate (${scan.stop.reason}: ${scan.stop.detail})` +
            (i > 0 ? '; the crc chain from the previous segment is broken or the header is damaged' : ''),
        );
      }
      let header: SegmentHeader;
      try {
        header = decodeSegmentHeader(first.payload);
      } catch (err) {
        throw new WalCorruptionError(seg.path, 0, (err as Error).message);
      }
      if (header.seq !== seg.seq || header.firstIndex !== seg.firstIndex) {
        throw new WalCorruptionError(
          seg.path,
          0,
          `segment header says seq ${header.seq} firstIndex ${header.firstIndex}, the file name says seq ${seg.seq} firstIndex ${seg.firstIndex}`,
        );
      }
      if (!endsCleanly(scan)) {
        const stop = describeStop(scan);
        if (!isLast) {
          throw new WalCorruptionError(
            seg.path,
            stop.offset,
            `${stop.text} in a segment that is not the last; only the final batch of the last segment may be torn`,
          );
        }
        const later = scan.stop.laterCommit;
        if (later !== null) {
          throw new WalCorruptionError(
            seg.path,
            stop.offset,
            `${stop.text}, but the batch committed at offset ${later.offset} states the segment was durable through ` +
              `offset ${later.durableOffset} when it was written: the damaged bytes had been synced, so this is damage, not a torn final batch`,
          );
        }
      }

      for (const rec of scan.records) {
        try {
          switch (rec.type) {
            case RecordType.SegmentHeader:
              if (rec.offset !== 0) throw new RecordDecodeError('segment header in the middle of a segment');
              break;
            case RecordType.Pad:
            case RecordType.Commit:
              break;
            case RecordType.Metadata: {
              const m = decodeMetadata(rec.payload);
              if (metadataBytes === null) {
                metadata = m;
                metadataBytes = rec.payload;
              } else if (!sameBytes(metadataBytes, rec.payload)) {
                throw new RecordDecodeError(
                  `metadata conflict: ${JSON.stringify(m)} differs from the earlier ${JSON.stringify(metadata)}`,
                );
              }
              break;
            }
            case RecordType.Entry: {
              const e = decodeEntry(rec.payload);
              if (e.index <= snapshot.index) {
                // Covered by the snapshot, so not replayed; but written after what we hold (all
                // above the snapshot), it is a rewrite that truncates all of it: those entries
                // are of a superseded term. Skipping it kept them (terms going down).
                entries.length = 0;
                break;
              }
              const position = e.index - snapshot.index - 1;
              if (position > entries.length) {
                const expected = snapshot.index + entries.length + 1;
                const marker = snapshots.find((s) => s.index >= expected && s.index < e.index);
                if (marker !== undefined) {
                  throw new WalSnapshotNotFoundError(
                    dir,
                    `entries jump from index ${expected - 1} to ${e.index} across snapshot marker ${marker.index}/${marker.term}: open from that (or a later) snapshot`,
                  );
                }
                throw new RecordDecodeError(`entry index ${e.index} leaves a gap: the next index expected is at most ${expected}`);
              }
              entries.length = position; // a rewrite of an index truncates the suffix (new leader wins)
              entries.push(e);
              break;
            }
            case RecordType.HardState:
              hardState = decodeHardState(rec.payload);
              break;
            case RecordType.Snapshot: {
              const s = decodeSnapshotMarker(rec.payload);
              snapshots.push(s);
              if (s.index === snapshot.index) {
                if (s.term !== snapshot.term) {
                  throw new WalSnapshotNotFoundError(
                    dir,
                    `snapshot marker at index ${s.index} has term ${s.term}, but the snapshot to open from has term ${snapshot.term}`,
                  );
                }
                snapshotFound = true;
              }
              latestSnapshotIndex = Math.max(latestSnapshotIndex, s.index);
              break;
            }
            default:
              throw new RecordDecodeError(`unknown record type ${String(rec.type)}`);
          }
        } catch (err) {
          if (err instanceof RecordDecodeError) throw new WalCorruptionError(seg.path, rec.offset, err.message);
          throw err;
        }
      }
      prevCrc = scan.lastCrc;
      lastScan = scan;
      lastHeader = header;
    }

    if (metadata === null) throw new WalCorruptionError(selected[0]!.path, 0, 'no metadata record in the replayed segments');
    if (!snapshotFound) {
      throw new WalSnapshotNotFoundError(
        dir,
        `no snapshot marker ${snapshot.index}/${snapshot.term} in the log: the WAL does not know that snapshot`,
      );
    }
    const last = selected[selected.length - 1]!;
    const scan = lastScan!;
    const header = lastHeader!;

    // Whatever follows the last committed batch is one torn final write (checked above: nothing
    // after it proves it was synced): drop it whole.
    let repair: TailRepair | null = null;
    if (!endsCleanly(scan)) repair = await repairTornTail(last.path, scan, opts);

    let endOffset = scan.validEndOffset;
    let endCrc = scan.lastCrc;
    let current = await backend.openSegment(last.path, { mode: opts.mode, offset: endOffset, prevCrc: endCrc, salt: header.salt });
    try {
      if (current.blockSize > 0 && endOffset % current.blockSize !== 0) {
        // Direct mode continues only at a block boundary. The log ends mid-block when a torn
        // direct batch lost its PAD frame, or when the last run wrote in another mode: close
        // the gap with a PAD frame written in buffered mode, then continue in direct mode.
        const blockSize = current.blockSize;
        await current.close();
        const padded = await padToBlockBoundary(backend, last.path, endOffset, endCrc, header.salt, blockSize);
        endOffset = padded.endOffset;
        endCrc = padded.lastCrc;
        current = await backend.openSegment(last.path, { mode: opts.mode, offset: endOffset, prevCrc: endCrc, salt: header.salt });
      }
      // What we replayed may still sit only in the page cache of a predecessor that was
      // killed: make it durable before anyone acts on it.
      await current.sync();
    } catch (err) {
      await current.close().catch(() => undefined);
      throw err;
    }

    const lastIndex = Math.max(entries.length > 0 ? entries[entries.length - 1]!.index : snapshot.index, latestSnapshotIndex);
    const wal = new Wal({
      dir,
      opts,
      lock,
      metadata,
      segments,
      current,
      endOffset,
      lastCrc: endCrc,
      lastIndex,
      lastHardState: hardState,
      latestSnapshotIndex,
      dirSync,
    });
    wal.maybePrepareNextSegment();
    return { wal, metadata, hardState: hardState ?? { ...EMPTY_HARD_STATE }, entries, snapshots, repair };
  }

  /**
   * Append entries and/or a hard state (entries first, as etcd). Resolves once written, and
   * synced when `sync` (pass Ready.mustSync). Calls may overlap: they are written in call order
   * and concurrent ones share a sync (group commit).
   */
  save(hardState: HardState | null, entries: readonly Entry[], options: SaveOptions = {}): Promise<void> {
    try {
      this.assertUsable();
      const records: RecordInput[] = [];
      let expected = -1;
      for (const e of entries) {
        if (expected === -1) {
          if (!Number.isSafeInteger(e.index) || e.index < 1 || e.index > this.lastIndex + 1) {
            throw new RangeError(`entry index ${e.index} would leave a gap: the log ends at ${this.lastIndex}`);
          }
        } else if (e.index !== expected) {
          throw new RangeError(`entries must have consecutive indexes: got ${e.index} after ${expected - 1}`);
        }
        expected = e.index + 1;
        records.push(entryRecord(e));
      }
      if (hardState !== null) records.push(hardStateRecord(hardState));
      if (records.length === 0) return Promise.resolve();
      const nameIndex = entries.length > 0 ? entries[0]!.index : this.lastIndex + 1;
      if (entries.length > 0) this.lastIndex = entries[entries.length - 1]!.index;
      const issuedHardState = hardState === null ? null : { term: hardState.term, vote: hardState.vote, commit: hardState.commit };
      // Mutation (test/simnode only): the pre-fcca012 bug, the hard state recorded at call time.
      if (mutations.walCutHardStateAhead && issuedHardState !== null) this.lastIssuedHardState = issuedHardState;
      return this.append(records, options.sync ?? true, nameIndex, issuedHardState);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Record that a snapshot at (index, term) was saved; always synced. Save the snapshot file
   * first: the marker tells a restart that the snapshot exists. */
  saveSnapshot(marker: SnapshotMarker): Promise<void> {
    try {
      this.assertUsable();
      const record = snapshotRecord(marker);
      this.latestSnapshotIndex = Math.max(this.latestSnapshotIndex, marker.index);
      // After installing a snapshot the log continues at index + 1.
      this.lastIndex = Math.max(this.lastIndex, marker.index);
      return this.append([record], true, this.lastIndex + 1);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Delete segments wholly before the segment that contains `index` — never more than a
   * restart from the latest snapshot marker needs (index is capped at that marker).
   */
  releaseTo(index: number): Promise<void> {
    try {
      this.assertUsable();
      if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`releaseTo index must be a non-negative safe integer, got ${index}`);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.enqueue(async () => {
      const limit = Math.min(index, this.latestSnapshotIndex);
      let keepFrom = 0;
      for (let i = 0; i < this.segments.length; i++) if (this.segments[i]!.firstIndex <= limit) keepFrom = i;
      keepFrom = Math.min(keepFrom, this.segments.length - 1); // never the current segment
      if (keepFrom === 0) return;
      const doomed = this.segments.slice(0, keepFrom);
      // Oldest first, each unlink made durable before the next: a crash midway leaves a
      // contiguous suffix (open refuses a sequence gap). One directory fsync at the end is not
      // enough: the filesystem may persist unsynced unlinks in any order (POSIX does not order
      // them), and a newer one surviving an older one is a gap.
      for (const seg of doomed) {
        await this.opts.fs.rm(seg.path, { force: true });
        this.segments = this.segments.filter((s) => s !== seg);
        this.syncDir();
      }
      this.opts.logger.info(`released ${doomed.length} WAL segment(s) before ${path.basename(this.segments[0]!.path)}`);
    });
  }

  /** Wait for everything issued, close the segment, release the lock. Resolves even on a
   * failed WAL (so a caller can clean up and reopen); later calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    if (this.lastAppend !== null) await this.lastAppend.catch(() => undefined);
    try {
      await this.current.close();
    } catch (err) {
      if (this.failure === null) throw err;
    } finally {
      const prepared = this.prepared;
      this.prepared = null;
      if (prepared !== null) {
        await prepared.ready.catch(() => undefined);
        await this.opts.fs.rm(prepared.path, { force: true }).catch(() => undefined);
      }
      this.lock.release();
    }
  }

  status(): WalStatus {
    this.probes ??= probeCapabilities(this.opts.backend, this.dir);
    const { directIo, filesystemType } = this.probes;
    return {
      dir: this.dir,
      backend: this.opts.backend.name,
      backendReason: this.opts.backend.reason,
      mode: this.current.mode,
      modeReason: this.current.modeReason,
      blockSize: this.current.blockSize,
      directIoUsable: directIo.usable,
      directIoReason: directIo.reason,
      dirSyncPolicy: this.opts.dirSync,
      dirSyncUsable: this.dirSyncUsable,
      dirSyncErrno: this.dirSyncErrno,
      filesystemType,
      lock: { kind: this.lock.method, path: this.lock.path, reason: this.lock.reason },
      segments: this.segments.length,
      currentSegment: this.current.path,
      lastIndex: this.lastIndex,
      failed: this.failure === null ? null : this.failure.message,
      closed: this.closed,
    };
  }

  /** The first error that failed this WAL, or null. */
  get failed(): Error | null {
    return this.failure;
  }

  // -------------------------------------------------------------------------------------------

  private assertUsable(): void {
    if (this.failure !== null) throw this.failure;
    if (this.closed) throw new WalClosedError(this.dir);
  }

  private fail(err: Error): Error {
    if (this.failure === null) {
      this.failure = err;
      this.opts.logger.warn(`WAL ${this.dir} has failed and accepts no more writes: ${err.message}`);
    }
    return this.failure;
  }

  /** Run `step` after every earlier step was issued. A step that throws fails the WAL. */
  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.failure !== null) throw this.failure;
      try {
        return await step();
      } catch (err) {
        throw this.fail(err as Error);
      }
    });
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private append(records: RecordInput[], sync: boolean, nameIndex: number, hardState: HardState | null = null): Promise<void> {
    // The queue only orders the issuing; the append itself is left running (boxed so the queue
    // does not wait for it), so concurrent saves reach the backend together.
    const issued = this.enqueue(async () => {
      const bytes = batchBytesUpperBound(records, this.current.blockSize);
      let pending: Promise<AppendResult>;
      if (this.currentEnd > this.currentInitialEnd && this.currentEnd + bytes > this.opts.segmentBytes) {
        // The batch is written (and synced) by the cut, before the new segment gets its name.
        pending = Promise.resolve(await this.cut(nameIndex, records));
      } else {
        this.currentEnd += bytes;
        pending = this.track(this.current.append(records, sync));
      }
      if (hardState !== null) this.lastIssuedHardState = hardState;
      this.maybePrepareNextSegment();
      return { pending };
    });
    return issued.then(({ pending }) => pending).then(() => undefined);
  }

  private track(append: Promise<AppendResult>): Promise<AppendResult> {
    const generation = this.generation;
    this.inFlight++;
    this.lastAppend = append;
    return append.then(
      (result) => {
        this.inFlight--;
        if (generation === this.generation) {
          this.lastCrc = result.lastCrc;
          if (this.inFlight === 0) this.currentEnd = result.endOffset; // exact again
        }
        return result;
      },
      (err: unknown) => {
        this.inFlight--;
        throw this.fail(err as Error);
      },
    );
  }

  private syncDir(): void {
    const result = syncDirectory(this.dir, { ...this.opts, policy: this.opts.dirSync });
    this.dirSyncUsable = result.supported;
    this.dirSyncErrno = result.errno;
  }

  /** Once the current segment is half full, create + preallocate the next one in the
   * background, so the cut does not wait for it (and an open/close alone costs nothing). */
  private maybePrepareNextSegment(): void {
    if (this.prepared === null && this.currentEnd >= this.opts.segmentBytes / 2) this.prepareNextSegment();
  }

  private prepareNextSegment(): void {
    const seq = this.segments[this.segments.length - 1]!.seq + 1;
    const file = path.join(this.dir, preparedSegmentFileName(seq));
    const ready = (async () => {
      await this.opts.fs.rm(file, { force: true });
      await this.opts.backend.createSegmentFile(file, this.opts.segmentBytes, this.opts.preallocate);
    })();
    ready.catch(() => undefined); // surfaced at the cut that needs it
    this.prepared = { seq, path: file, ready };
  }

  /**
   * Seal the current segment and continue in the prepared one, named after `firstIndex` (the
   * first entry of `batch`, the batch that did not fit, or the index after the log when it has
   * none). Writes and syncs `batch` into the new segment and resolves with where it ends. Runs
   * inside the queue: no other step is issued meanwhile.
   *
   * The name is a promise release relies on: every live entry at or above `firstIndex` is in
   * this segment or a later one (releaseTo deletes the segments before the one whose name is at
   * or below the snapshot). A rewrite (a new leader's batch from an index the old segment
   * already holds) keeps that promise only once it is written. So the batch is synced before the
   * rename makes the name real: a crash can never leave the name without the batch (the old
   * code renamed first; when the batch was then lost, recovery appended after the old segment's
   * entries into the segment named for the rewrite, and a release deleted entries still needed).
   * Repairing at open instead (cutting a fresh segment) would leave the empty, misnamed
   * segment in the list, still wrong for release.
   */
  private async cut(firstIndex: number, batch: RecordInput[]): Promise<AppendResult> {
    const old = this.current;
    const oldInfo = this.segments[this.segments.length - 1]!;
    // The old segment must end cleanly before the next one exists: everything written and
    // synced (a commit-only hard state may have been written without sync).
    if (this.lastAppend !== null) await this.lastAppend;
    await old.sync();
    const prevCrc = this.lastCrc;

    if (this.prepared === null) this.prepareNextSegment(); // one batch jumped past the half
    const prepared = this.prepared!;
    if (prepared.seq !== oldInfo.seq + 1) throw new Error(`internal: segment prepared for seq ${prepared.seq}, cutting after seq ${oldInfo.seq}`);
    this.prepared = null;
    await prepared.ready;

    const seq = oldInfo.seq + 1;
    const salt = randomSalt();
    const fresh = await this.opts.backend.openSegment(prepared.path, { mode: this.opts.mode, offset: 0, prevCrc, salt });
    const initial: RecordInput[] = [
      headerRecord({ blockSize: fresh.blockSize, seq, firstIndex, salt, prevCrc }),
      metadataRecord(this.metadata),
    ];
    // A restart that starts replay at this segment still learns the hard state: the last one
    // in the old segment, which is synced above. Never a newer one (e.g. of the save that
    // triggered this cut): its commit may cover entries that are not durable yet.
    if (this.lastIssuedHardState !== null) initial.push(hardStateRecord(this.lastIssuedHardState));
    let initialWritten: AppendResult;
    let written: AppendResult;
    try {
      // Two batches (the initial records are a batch of their own), one write and one sync.
      [initialWritten, written] = await Promise.all([fresh.append(initial, false), fresh.append(batch, true)]);
    } finally {
      await fresh.close();
    }
    // Only a fully written, synced segment — its naming batch included — gets a real name: a
    // crash before this leaves a *.wal.tmp that open() deletes.
    const finalPath = path.join(this.dir, segmentFileName(seq, firstIndex));
    await this.opts.fs.rename(prepared.path, finalPath);
    this.syncDir();
    const reopened = await this.opts.backend.openSegment(finalPath, {
      mode: this.opts.mode,
      offset: written.endOffset,
      prevCrc: written.lastCrc,
      salt,
    });

    this.generation++;
    this.current = reopened;
    this.currentEnd = written.endOffset;
    this.currentInitialEnd = initialWritten.endOffset;
    this.lastCrc = written.lastCrc;
    this.lastAppend = null;
    this.segments.push({ seq, firstIndex, path: finalPath });
    await old.close();
    this.opts.logger.info(`WAL cut to ${path.basename(finalPath)}`);
    return written;
  }
}

function probeCapabilities(backend: WalBackend, dir: string): NonNullable<Wal['probes']> {
  let directIo: { usable: boolean; reason: string };
  try {
    const p = backend.probeDirectIo(dir);
    directIo = { usable: p.usable, reason: p.reason };
  } catch (err) {
    directIo = { usable: false, reason: `probe failed: ${(err as Error).message}` };
  }
  let filesystemType: string;
  try {
    filesystemType = backend.filesystemType(dir);
  } catch (err) {
    filesystemType = `unknown (${(err as Error).message})`;
  }
  return { directIo, filesystemType };
}

/** A scan that ended at a clean end (eof or zero tail) right after a committed batch. */
function endsCleanly(scan: ScanResult): boolean {
  return (scan.stop.reason === 'eof' || scan.stop.reason === 'zero') && scan.stop.offset === scan.validEndOffset;
}

/** Where a scan that did not end cleanly went wrong, for error messages. */
function describeStop(scan: ScanResult): { offset: number; text: string } {
  if (scan.stop.reason === 'eof' || scan.stop.reason === 'zero') {
    return {
      offset: scan.validEndOffset,
      text: `the batch from offset ${scan.validEndOffset} has no COMMIT frame (${scan.stop.reason}: ${scan.stop.detail})`,
    };
  }
  return { offset: scan.stop.offset, text: `${scan.stop.reason} stop (${scan.stop.detail})` };
}

/** Append one batch holding a PAD frame (buffered) so the segment continues at the next block
 * boundary: PAD and COMMIT frame together fill the gap. */
async function padToBlockBoundary(
  backend: WalBackend,
  file: string,
  offset: number,
  prevCrc: number,
  salt: number,
  blockSize: number,
): Promise<AppendResult> {
  let gap = Math.ceil(offset / blockSize) * blockSize - offset;
  // A PAD frame needs a header and ≥ 1 byte; the COMMIT frame closing the batch follows it.
  if (gap < FRAME_HEADER_BYTES + 8 + COMMIT_FRAME_BYTES) gap += blockSize;
  const seg = await backend.openSegment(file, { mode: 'buffered', offset, prevCrc, salt });
  try {
    const padPayload = new Uint8Array(gap - FRAME_HEADER_BYTES - COMMIT_FRAME_BYTES);
    const result = await seg.append([{ type: RecordType.Pad, payload: padPayload }], true);
    if (result.endOffset % blockSize !== 0) {
      throw new Error(`internal: PAD frame from offset ${offset} ended at ${result.endOffset}, not a multiple of ${blockSize}`);
    }
    return result;
  } finally {
    await seg.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The header of a segment, validated against the prevCrc it carries itself (the chain seed of
 * the first segment replayed, whose predecessor may be released). */
async function readOwnHeader(fs: FileSystem, file: string): Promise<SegmentHeader> {
  const fd = await fs.open(file, 'r');
  try {
    const bytes = new Uint8Array(frameBytes(SEGMENT_HEADER_PAYLOAD_BYTES));
    const bytesRead = await readAt(fs, fd, bytes, bytes.length, 0);
    try {
      return readSegmentHeaderFrame(bytes.subarray(0, bytesRead));
    } catch (err) {
      if (err instanceof UnsupportedWalVersionError) throw new Error(`WAL segment ${file}: ${err.message}`, { cause: err });
      throw new WalCorruptionError(file, 0, (err as Error).message);
    }
  } finally {
    await fs.close(fd);
  }
}

function brokenFileName(fs: FileSystem, file: string, offset: number): string {
  let candidate = `${file}.${offset.toString(16)}.broken`;
  for (let n = 1; fs.existsSync(candidate); n++) candidate = `${file}.${offset.toString(16)}.${n}.broken`;
  return candidate;
}

/**
 * Cut the torn final batch of the last segment (everything after its last committed batch):
 * keep a copy of the dropped bytes, zero them in place (so stale garbage can never be
 * half-overwritten into something that looks like data later), sync. Only bytes up to the last
 * non-zero one are copied and zeroed: everything after is zero already.
 */
async function repairTornTail(file: string, scan: ScanResult, opts: ResolvedOptions): Promise<TailRepair> {
  const cut = scan.validEndOffset;
  if (cut < HEADER_FRAME_BYTES) throw new WalCorruptionError(file, cut, 'torn tail would cut into the segment header');
  const { fs } = opts;
  const fd = await fs.open(file, 'r+');
  try {
    const size = (await fs.fstat(fd)).size;
    // Find the last non-zero byte, reading backwards in chunks.
    let lastNonZero = -1;
    const chunk = Buffer.alloc(ZERO_CHUNK_BYTES);
    for (let end = size; end > cut && lastNonZero < 0; ) {
      const begin = Math.max(cut, end - ZERO_CHUNK_BYTES);
      const bytesRead = await readAt(fs, fd, chunk, end - begin, begin);
      for (let i = bytesRead - 1; i >= 0; i--) {
        if (chunk[i] !== 0) {
          lastNonZero = begin + i;
          break;
        }
      }
      end = begin;
    }
    const dropped = lastNonZero < 0 ? 0 : lastNonZero + 1 - cut;
    let brokenFile: string | null = null;
    if (dropped > 0) {
      brokenFile = brokenFileName(fs, file, cut);
      const copy = Buffer.alloc(dropped);
      await readAt(fs, fd, copy, dropped, cut);
      const out = await fs.open(brokenFile, 'wx');
      try {
        await writeAllAt(fs, out, [copy], 0);
        await fs.fsync(out);
      } finally {
        await fs.close(out);
      }
      const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, dropped));
      for (let at = cut; at < cut + dropped; at += zeros.length) {
        const n = Math.min(zeros.length, cut + dropped - at);
        await writeAllAt(fs, fd, [zeros.subarray(0, n)], at);
      }
      await fdatasyncAsync(fs, fd);
      syncDirectory(path.dirname(file), { ...opts, policy: opts.dirSync });
    }
    const repair: TailRepair = {
      file,
      offset: cut,
      droppedBytes: dropped,
      brokenFile,
      reason: describeStop(scan).text,
    };
    opts.logger.warn(
      `repaired torn tail of WAL segment ${file}: dropped the unsynced final batch, ${dropped} byte(s) from offset ${cut} ` +
        `(${repair.reason})${brokenFile !== null ? `; the dropped bytes are kept in ${brokenFile}` : ''}`,
    );
    return repair;
  } finally {
    await fs.close(fd);
  }
}
