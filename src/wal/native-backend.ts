/**
 * The native WAL backend: the C++ addon (native/, built by binding.gyp or shipped as
 * prebuilds/linux-x64/raftkv.napi.node) wrapped into the WalBackend contract of ./backend.ts.
 *
 * The addon is located with node-gyp-build from the package root, found by walking up from this
 * module's own file: that works from src/wal/ (tsx), from dist/src/wal/ (tsc output) and from an
 * installed copy in node_modules/raftkv.
 */

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FORMAT_CONSTANTS,
  FRAME_HEADER_BYTES,
  SegmentFailedError,
  type LaterCommit,
  type AppendResult,
  type DirSyncResult,
  type DirectIoProbe,
  type OpenSegmentOptions,
  type PreallocateStrategy,
  type RecordType,
  type RecordInput,
  type ScanOptions,
  type ScanResult,
  type ScanStopReason,
  type ScannedRecord,
  type SegmentFile,
  type WalBackend,
  type WalMode,
  type WalModeOption,
} from './backend.js';
import { nodeFileSystem } from './file-system.js';
import { batchByteLength, layOutCommit, layOutFrame } from './frame.js';

/** Counters of the syscalls a segment's writer issued (for tests and benchmarks). */
export interface NativeSegmentStats {
  /** write syscalls (one pwritev/pwrite per batch group). */
  writes: number;
  /** fdatasync calls. */
  syncs: number;
  /** batch groups the writer took from its queue (group commit merges batches into one). */
  groups: number;
}

export type NativeFaultOp = 'write' | 'fdatasync';

/** Native memory frames are laid out in (aligned for O_DIRECT); `bytes` views all of it. */
interface NativeFrameBuffer {
  bytes: Uint8Array;
  /** What append() takes: keeps the memory alive while a batch in it is queued. */
  handle: object;
}

/**
 * Called once per writer group: `batches` queued batches completed, in queue order. `results`
 * holds [endOffset, lastCrc] for every mark of the group's append batches (empty when the group
 * failed); `failure` is the segment's first write/sync error (the same object every time) or
 * null; `closeError` is undefined unless the group closed the file (then null or the error).
 */
type NativeCompletion = (
  batches: number,
  results: Float64Array,
  failure: Error | null,
  closeError: Error | null | undefined,
) => void;

/** One open segment inside the addon (class NativeSegment in native/addon.cc). */
interface NativeSegmentHandle {
  readonly path: string;
  readonly mode: WalMode;
  readonly modeReason: string;
  readonly blockSize: number;
  /** Starts the writer thread; completions arrive through `onComplete`. */
  start(onComplete: NativeCompletion): void;
  /** Queues frames [0, size) of the buffer (laid out, crc fields 0) as one batch; `marks[0..markCount)`
   * are the ends of the appends merged into it. Throws on malformed frames; queues nothing then. */
  append(buffer: object, size: number, marks: Float64Array, markCount: number, sync: boolean): void;
  sync(): void;
  close(): void;
  testSetFault(op: NativeFaultOp, errnoName: string | null): void;
  testHold(hold: boolean): void;
  testStats(): NativeSegmentStats;
}

interface NativeScan {
  fileBytes: number;
  /** The whole file; payloads are views into it. */
  buffer: ArrayBuffer;
  offsets: Float64Array;
  types: Uint8Array;
  lengths: Uint32Array;
  crcs: Uint32Array;
  validEndOffset: number;
  lastCrc: number;
  reason: ScanStopReason;
  stopOffset: number;
  detail: string;
  laterCommit: LaterCommit | null;
  /** Set when the header frame is crc-valid but has the wrong magic or version. */
  headerError: string | null;
}

export interface RawWriteSyncResult {
  seconds: number;
  latenciesUs: Float64Array;
}

/** The addon's exports (native/addon.cc Init). */
interface NativeAddon {
  crc32c(data: Uint8Array, seed: number): number;
  /** sched_yield(2): lets another runnable thread have this CPU (see node/loop-spin.ts). */
  schedYield(): void;
  crc32cImplementation(): string;
  createSegmentFile(path: string, sizeBytes: number, strategy: PreallocateStrategy): Promise<string>;
  openSegment(
    path: string,
    mode: WalModeOption,
    offset: number,
    prevCrc: number,
    salt: number,
  ): Promise<NativeSegmentHandle>;
  scanSegment(path: string, prevCrc: number): Promise<NativeScan>;
  syncDirectory(path: string): DirSyncResult;
  probeDirectIo(dir: string): DirectIoProbe;
  filesystemType(path: string): string;
  flock(path: string): number;
  funlock(fd: number): void;
  rawWriteSyncLoop(
    path: string,
    writeBytes: number,
    iterations: number,
    mode: 'buffered' | 'direct',
  ): Promise<RawWriteSyncResult>;
  /** `huge`: whole transparent huge pages (physically contiguous: far fewer O_DIRECT segments). */
  allocateFrameBuffer(bytes: number, huge: boolean): NativeFrameBuffer;
  /** The frame-format constants the addon was built with (native/format.h). */
  formatConstants: Record<string, unknown>;
}

const ADDON_FUNCTIONS: readonly (keyof NativeAddon)[] = [
  'crc32c',
  'crc32cImplementation',
  'createSegmentFile',
  'openSegment',
  'scanSegment',
  'syncDirectory',
  'probeDirectIo',
  'filesystemType',
  'flock',
  'funlock',
  'rawWriteSyncLoop',
  'allocateFrameBuffer',
  'schedYield',
];

interface NodeGypBuild {
  (dir: string): unknown;
  resolve(dir: string): string;
}

/** The directory holding raftkv's package.json, above this module's file. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      const parsed: unknown = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && (parsed as { name?: unknown }).name === 'raftkv') {
        return dir;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`raftkv package root not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function assertAddonShape(value: unknown, file: string): asserts value is NativeAddon {
  if (typeof value !== 'object' || value === null) throw new Error(`${file} exports no object`);
  for (const name of ADDON_FUNCTIONS) {
    if (typeof (value as Record<string, unknown>)[name] !== 'function') {
      throw new Error(`${file} is not a compatible raftkv addon: ${name}() is missing`);
    }
  }
  assertAddonFormat((value as Record<string, unknown>).formatConstants, file);
}

/**
 * Throws unless `constants` (an addon's formatConstants export) equal src/wal/backend.ts
 * FORMAT_CONSTANTS: an addon built from other sources (a stale build/ or prebuild) would write
 * and read frames this package's TypeScript side does not, so it is refused, with the
 * differences named.
 */
export function assertAddonFormat(constants: unknown, file: string): void {
  if (typeof constants !== 'object' || constants === null) {
    throw new Error(
      `${file} is not a compatible raftkv addon: it exports no formatConstants (built from older sources? rebuild it: npm run build:native)`,
    );
  }
  const theirs = constants as Record<string, unknown>;
  const differences: string[] = [];
  for (const [name, ours] of Object.entries(FORMAT_CONSTANTS)) {
    if (theirs[name] !== ours) differences.push(`${name} ${JSON.stringify(theirs[name])} (expected ${JSON.stringify(ours)})`);
  }
  for (const name of Object.keys(theirs)) {
    if (!(name in FORMAT_CONSTANTS)) differences.push(`${name} (unknown to this package)`);
  }
  if (differences.length > 0) {
    throw new Error(
      `${file} frames the WAL differently from this package (src/wal/backend.ts): ${differences.join(', ')}; rebuild it: npm run build:native`,
    );
  }
}

let loaded: { addon: NativeAddon; file: string } | null = null;

/** Loads the addon once; throws (every time) with the reason when it cannot. */
function loadAddon(): { addon: NativeAddon; file: string } {
  if (loaded !== null) return loaded;
  const require = createRequire(import.meta.url);
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  const root = packageRoot();
  const file = nodeGypBuild.resolve(root);
  const addon: unknown = require(file);
  assertAddonShape(addon, file);
  loaded = { addon, file };
  return loaded;
}

interface Settle<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** What one queued native batch will settle. An append batch has one settle per mark (append()
 * call merged into it) and gives its staging buffer back to the pool when it completes. */
type QueuedBatch =
  | { kind: 'append'; settles: Settle<AppendResult>[]; staging: NativeFrameBuffer; syncs: boolean[] }
  | { kind: 'sync'; settle: Settle<void> }
  | { kind: 'close'; settle: Settle<void> };

/** Room a direct-mode PAD frame may take after the frames (it is written in place; a block
 * size beyond this makes the writer copy instead). */
const PAD_SLACK_BYTES = 64 * 1024;
const STAGING_MIN_BYTES = 64 * 1024;
const STAGING_POOL_MAX = 8;
/** A pool keeps at most this much (a buffer larger than it is never kept). */
const STAGING_POOL_BYTES_MAX = 32 * 1024 * 1024;

/**
 * Frame buffers not in use, shared by every segment of this process (a WAL opens a new segment
 * every 64 MiB): memory the process has not touched before is expensive to fault in (on this
 * VM a fresh 1 MiB buffer cost ~5 ms on its first append), so buffers are kept and reused.
 * Direct mode uses huge-page buffers, the other modes small-page ones: two pools.
 */
class StagingPool {
  readonly #free: NativeFrameBuffer[] = [];
  #bytes = 0;

  constructor(private readonly allocate: (bytes: number) => NativeFrameBuffer) {}

  /** The smallest free buffer of at least `bytes`, or a new one. */
  take(bytes: number): NativeFrameBuffer {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const length = this.#free[i]!.bytes.length;
      if (length >= bytes && (best === -1 || length < this.#free[best]!.bytes.length)) best = i;
    }
    if (best !== -1) {
      const staging = this.#free.splice(best, 1)[0]!;
      this.#bytes -= staging.bytes.length;
      return staging;
    }
    return this.allocate(Math.max(STAGING_MIN_BYTES, Math.ceil(bytes / STAGING_MIN_BYTES) * STAGING_MIN_BYTES));
  }

  /** Back for reuse (once its batch completed). When full, the smallest ones make room. */
  give(staging: NativeFrameBuffer): void {
    const length = staging.bytes.length;
    if (length > STAGING_POOL_BYTES_MAX) return;
    this.#free.push(staging);
    this.#bytes += length;
    while (this.#free.length > STAGING_POOL_MAX || this.#bytes > STAGING_POOL_BYTES_MAX) {
      let smallest = 0;
      for (let i = 1; i < this.#free.length; i++) {
        if (this.#free[i]!.bytes.length < this.#free[smallest]!.bytes.length) smallest = i;
      }
      this.#bytes -= this.#free[smallest]!.bytes.length;
      this.#free.splice(smallest, 1);
    }
  }
}

let stagingPools: { small: StagingPool; huge: StagingPool } | null = null;

function stagingPool(addon: NativeAddon, mode: WalMode): StagingPool {
  stagingPools ??= {
    small: new StagingPool((bytes) => addon.allocateFrameBuffer(bytes, false)),
    // Direct writes go straight from this memory: huge pages make them ~3x faster at 1 MiB.
    huge: new StagingPool((bytes) => addon.allocateFrameBuffer(bytes, true)),
  };
  return mode === 'direct' ? stagingPools.huge : stagingPools.small;
}

function closedError(file: string): Error {
  return Object.assign(new Error(`WAL segment ${file} is closed`), { code: 'ECLOSED' });
}

/**
 * A native segment. append() lays the records out as frames (header, payload, zero padding;
 * crc left 0) straight into a native frame buffer, on the JS thread, so the caller may reuse its
 * payloads as soon as append() returns; appends made in the same tick share one buffer and go
 * to the writer as one batch at the end of the tick (a microtask). The writer thread seals the
 * frames (chained crc), writes them and syncs; the group's results come back in one call.
 */
class NativeSegmentFile implements SegmentFile {
  readonly path: string;
  readonly mode: WalMode;
  readonly modeReason: string;
  readonly blockSize: number;
  #failure: Error | null = null;
  #closing: Promise<void> | null = null;
  /** Batches handed to the writer, oldest first (#queueHead is the next to complete). */
  #queue: QueuedBatch[] = [];
  #queueHead = 0;
  /** The batch being filled this tick. */
  #staging: NativeFrameBuffer | null = null;
  #stagingSize = 0;
  #stagingSync = false;
  #stagingSettles: Settle<AppendResult>[] = [];
  /** Each staged append's own sync flag (the batch is synced if any is). */
  #stagingSyncs: boolean[] = [];
  #marks = new Float64Array(64);
  #flushScheduled = false;
  readonly #pool: StagingPool;
  /** Room after the frames: a direct-mode PAD frame is written there, in place. */
  readonly #slack: number;
  /** End of everything the writer has reported written (the open offset at first). */
  #writtenEnd: number;
  /** The file is known durable through here (what COMMIT frames state): the end of the last
   * append that resolved synced (sync=true, sync(), or any append in dsync mode). 0 until then.
   * The same rule as the js backend's, so both write the same bytes for the same calls. */
  #durableOffset = 0;

  constructor(
    readonly handle: NativeSegmentHandle,
    addon: NativeAddon,
    openOffset: number,
  ) {
    this.#writtenEnd = openOffset;
    this.path = handle.path;
    this.mode = handle.mode;
    this.modeReason = handle.modeReason;
    this.blockSize = handle.blockSize;
    this.#slack = handle.mode === 'direct' ? PAD_SLACK_BYTES : 0;
    this.#pool = stagingPool(addon, handle.mode);
    handle.start((batches, results, failure, closeError) => this.#complete(batches, results, failure, closeError));
  }

  get failure(): Error | null {
    return this.#failure;
  }

  append(records: readonly RecordInput[], sync: boolean): Promise<AppendResult> {
    if (this.#failure !== null) return Promise.reject(new SegmentFailedError(this.path, this.#failure));
    if (this.#closing !== null) return Promise.reject(closedError(this.path));
    if (!Array.isArray(records)) {
      return Promise.reject(new TypeError('append(records: RecordInput[], sync: boolean)'));
    }
    let bytes: number;
    try {
      // Validates every record as the js backend does (TypeError/RangeError for bad input).
      bytes = batchByteLength(records);
      if (this.#staging !== null && this.#stagingSize + bytes + this.#slack > this.#staging.bytes.length) {
        this.#flush();
      }
      this.#staging ??= this.#pool.take(bytes + this.#slack);
    } catch (error) {
      return Promise.reject(error);
    }
    const staging = this.#staging;
    let at = this.#stagingSize;
    const bytesView = staging.bytes;
    // The crc fields stay zero: the writer thread seals them, chained, when it writes. The
    // COMMIT frame closing this append states what is durable as of this call (never more than
    // when it is written); the writer fills in its offset and the crc it continues.
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      at = layOutFrame(bytesView, at, record.type, record.payload);
    }
    if (records.length > 0) at = layOutCommit(bytesView, at, this.#durableOffset);
    this.#stagingSize = at;
    this.#stagingSync ||= Boolean(sync);
    this.#stagingSyncs.push(Boolean(sync));
    const count = this.#stagingSettles.length;
    if (count === this.#marks.length) {
      const grown = new Float64Array(count * 2);
      grown.set(this.#marks);
      this.#marks = grown;
    }
    this.#marks[count] = at;
    const promise = new Promise<AppendResult>((resolve, reject) => {
      this.#stagingSettles.push({ resolve, reject });
    });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
    return promise;
  }

  sync(): Promise<void> {
    if (this.#failure !== null) return Promise.reject(new SegmentFailedError(this.path, this.#failure));
    if (this.#closing !== null) return Promise.reject(closedError(this.path));
    this.#flush();
    return new Promise<void>((resolve, reject) => {
      this.handle.sync();
      this.#queue.push({ kind: 'sync', settle: { resolve, reject } });
    });
  }

  close(): Promise<void> {
    if (this.#closing !== null) return this.#closing;
    this.#flush();
    this.#closing = new Promise<void>((resolve, reject) => {
      this.handle.close();
      this.#queue.push({ kind: 'close', settle: { resolve, reject } });
    });
    return this.#closing;
  }

  /** Hands this tick's appends to the writer as one batch. */
  #flush(): void {
    const staging = this.#staging;
    if (staging === null) return;
    const settles = this.#stagingSettles;
    const syncs = this.#stagingSyncs;
    const size = this.#stagingSize;
    const sync = this.#stagingSync;
    this.#staging = null;
    this.#stagingSize = 0;
    this.#stagingSync = false;
    this.#stagingSettles = [];
    this.#stagingSyncs = [];
    if (this.#failure !== null) {
      // Failed meanwhile: nothing more reaches the file.
      this.#pool.give(staging);
      for (const settle of settles) settle.reject(new SegmentFailedError(this.path, this.#failure));
      return;
    }
    try {
      this.handle.append(staging.handle, size, this.#marks, settles.length, sync);
    } catch (error) {
      // Only a bug in the framing above gets here: fail these appends, not the process.
      this.#pool.give(staging);
      for (const settle of settles) settle.reject(error);
      return;
    }
    this.#queue.push({ kind: 'append', settles, staging, syncs });
  }

  #complete(batches: number, results: Float64Array, failure: Error | null, closeError: Error | null | undefined): void {
    if (failure !== null) this.#failure ??= failure;
    const dsync = this.mode === 'dsync';
    let r = 0;
    for (let i = 0; i < batches; i++) {
      const batch = this.#queue[this.#queueHead];
      if (batch === undefined) throw new Error(`${this.path}: native completion without a queued batch`);
      this.#queue[this.#queueHead++] = undefined as unknown as QueuedBatch;
      if (batch.kind === 'append') this.#pool.give(batch.staging);
      if (batch.kind === 'close') {
        if (closeError === null || closeError === undefined) batch.settle.resolve();
        else batch.settle.reject(closeError);
      } else if (failure !== null) {
        if (batch.kind === 'sync') batch.settle.reject(new SegmentFailedError(this.path, this.#failure!));
        else for (const settle of batch.settles) settle.reject(new SegmentFailedError(this.path, this.#failure!));
      } else if (batch.kind === 'sync') {
        this.#durableOffset = Math.max(this.#durableOffset, this.#writtenEnd);
        batch.settle.resolve();
      } else {
        batch.settles.forEach((settle, j) => {
          const endOffset = results[r]!;
          this.#writtenEnd = endOffset;
          if (batch.syncs[j]! || dsync) this.#durableOffset = Math.max(this.#durableOffset, endOffset);
          settle.resolve({ endOffset, lastCrc: results[r + 1]! });
          r += 2;
        });
      }
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024) {
      this.#queue.splice(0, this.#queueHead);
      this.#queueHead = 0;
    }
  }
}

async function scanSegment(addon: NativeAddon, file: string, options: ScanOptions): Promise<ScanResult> {
  const raw = await addon.scanSegment(file, options.prevCrc);
  if (raw.headerError !== null) throw new Error(`${file}: ${raw.headerError}`);
  const bytes = new Uint8Array(raw.buffer);
  const records: ScannedRecord[] = new Array<ScannedRecord>(raw.offsets.length);
  for (let i = 0; i < raw.offsets.length; i++) {
    const offset = raw.offsets[i]!;
    const start = offset + FRAME_HEADER_BYTES;
    records[i] = {
      offset,
      type: raw.types[i]! as RecordType,
      payload: bytes.subarray(start, start + raw.lengths[i]!),
      crc: raw.crcs[i]!,
    };
  }
  return {
    path: file,
    fileBytes: raw.fileBytes,
    records,
    validEndOffset: raw.validEndOffset,
    lastCrc: raw.lastCrc,
    stop: {
      reason: raw.reason,
      offset: raw.stopOffset,
      detail: raw.detail,
      laterCommit: raw.laterCommit,
    },
  };
}

function createBackend(addon: NativeAddon, file: string): WalBackend {
  return {
    name: 'native',
    reason: `native addon ${file} (crc32c: ${addon.crc32cImplementation()})`,
    // Its syscalls act on real files only.
    fileSystem: nodeFileSystem,
    crc32c: (data, seed) => addon.crc32c(data, seed),
    createSegmentFile: async (file, sizeBytes, strategy) => {
      await addon.createSegmentFile(file, sizeBytes, strategy);
    },
    openSegment: async (file: string, options: OpenSegmentOptions) =>
      new NativeSegmentFile(
        await addon.openSegment(file, options.mode, options.offset, options.prevCrc, options.salt),
        addon,
        options.offset,
      ),
    scanSegment: (file, options) => scanSegment(addon, file, options),
    syncDirectory: (dir) => addon.syncDirectory(dir),
    probeDirectIo: (dir) => addon.probeDirectIo(dir),
    filesystemType: (file) => addon.filesystemType(file),
    flock: (file) => {
      const fd = addon.flock(file);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        addon.funlock(fd);
      };
    },
  };
}

let backend: WalBackend | null = null;

/** The native WalBackend. Throws with the reason when the addon cannot be loaded. */
export function loadNativeBackend(): WalBackend {
  if (backend !== null) return backend;
  const { addon, file } = loadAddon();
  backend = createBackend(addon, file);
  return backend;
}

/** Which CRC32C implementation the addon uses: 'sse4.2', 'armv8-crc' or 'software'. */
export function nativeCrc32cImplementation(): string {
  return loadAddon().addon.crc32cImplementation();
}

/**
 * The raw ceiling for the benchmark, off the JS thread: creates `path` pre-zeroed to
 * writeBytes × iterations bytes (fsynced), then times `iterations` rounds of one pwrite of
 * writeBytes at successive offsets + fdatasync. `direct` opens it with O_DIRECT.
 */
export function rawWriteSyncLoop(
  file: string,
  writeBytes: number,
  iterations: number,
  mode: 'buffered' | 'direct' = 'buffered',
): Promise<RawWriteSyncResult> {
  try {
    return loadAddon().addon.rawWriteSyncLoop(file, writeBytes, iterations, mode);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * TEST ONLY. Hooks into a native segment's writer: inject a one-shot failure of the next
 * write or fdatasync (the fdatasync really runs first, then reports the error — like a lost
 * writeback), hold the writer so queued batches merge deterministically, and read its syscall
 * counters. Not part of the public API; throws for segments of other backends.
 */
export function nativeSegmentTestHooks(segment: SegmentFile): {
  setFault(op: NativeFaultOp, errnoName: string | null): void;
  hold(hold: boolean): void;
  stats(): NativeSegmentStats;
} {
  if (!(segment instanceof NativeSegmentFile)) throw new TypeError('not a native WAL segment');
  const handle = segment.handle;
  return {
    setFault: (op, errnoName) => handle.testSetFault(op, errnoName),
    hold: (hold) => handle.testHold(hold),
    stats: () => handle.testStats(),
  };
}

/** sched_yield(2) through the addon, or null where the addon does not load. */
export function nativeSchedYield(): (() => void) | null {
  try {
    const { addon } = loadAddon();
    return () => addon.schedYield();
  } catch {
    return null;
  }
}
