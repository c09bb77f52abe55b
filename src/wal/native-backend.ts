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
  FRAME_HEADER_BYTES,
  SegmentFailedError,
  type AppendResult,
  type DirSyncResult,
  type DirectIoProbe,
  type OpenSegmentOptions,
  type PreallocateStrategy,
  type RecordInput,
  type RecordType,
  type ScanOptions,
  type ScanResult,
  type ScanStopReason,
  type ScannedRecord,
  type SegmentFile,
  type WalBackend,
  type WalMode,
  type WalModeOption,
} from './backend.js';

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

/** One open segment inside the addon (class NativeSegment in native/addon.cc). */
interface NativeSegmentHandle {
  readonly path: string;
  readonly mode: WalMode;
  readonly modeReason: string;
  readonly blockSize: number;
  append(records: readonly RecordInput[], sync: boolean): Promise<AppendResult>;
  sync(): Promise<void>;
  close(): Promise<void>;
  /** The first write/sync error, the same Error object every time, or null. */
  failure(): Error | null;
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
  followedByValid: boolean;
  detail: string;
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

class NativeSegmentFile implements SegmentFile {
  readonly path: string;
  readonly mode: WalMode;
  readonly modeReason: string;
  readonly blockSize: number;
  #failure: Error | null = null;

  constructor(readonly handle: NativeSegmentHandle) {
    this.path = handle.path;
    this.mode = handle.mode;
    this.modeReason = handle.modeReason;
    this.blockSize = handle.blockSize;
  }

  get failure(): Error | null {
    return this.#failure;
  }

  append(records: readonly RecordInput[], sync: boolean): Promise<AppendResult> {
    if (this.#failure !== null) return Promise.reject(new SegmentFailedError(this.path, this.#failure));
    try {
      return this.handle.append(records, sync).catch((error: unknown) => this.#rethrow(error));
    } catch (error) {
      return Promise.reject(error); // bad input, thrown synchronously by the addon
    }
  }

  sync(): Promise<void> {
    if (this.#failure !== null) return Promise.reject(new SegmentFailedError(this.path, this.#failure));
    return this.handle.sync().catch((error: unknown) => this.#rethrow(error));
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  /** A write/sync failure becomes SegmentFailedError(cause = the first error), every time. */
  #rethrow(error: unknown): never {
    const original = this.handle.failure();
    if (original !== null) {
      this.#failure ??= original;
      throw new SegmentFailedError(this.path, this.#failure);
    }
    throw error;
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
      followedByValid: raw.followedByValid,
      detail: raw.detail,
    },
  };
}

function createBackend(addon: NativeAddon, file: string): WalBackend {
  return {
    name: 'native',
    reason: `native addon ${file} (crc32c: ${addon.crc32cImplementation()})`,
    crc32c: (data, seed) => addon.crc32c(data, seed),
    createSegmentFile: async (file, sizeBytes, strategy) => {
      await addon.createSegmentFile(file, sizeBytes, strategy);
    },
    openSegment: async (file: string, options: OpenSegmentOptions) =>
      new NativeSegmentFile(
        await addon.openSegment(file, options.mode, options.offset, options.prevCrc, options.salt),
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
