/**
 * The pure-TypeScript WAL backend: frames with src/wal/frame.ts (CRC-32C in JS), writes with
 * fs.writev at explicit positions and syncs with fs.fdatasync — both through the callback API,
 * so the work runs on libuv's thread pool and never blocks the event loop.
 *
 * Used where the native addon does not load. Its `buffered` files are byte-identical to the
 * native backend's. It has no O_DIRECT (Node's fs cannot allocate aligned buffers), no
 * fallocate and no flock.
 */

import fs from 'node:fs';
import { promisify } from 'node:util';
import {
  SegmentFailedError,
  type AppendResult,
  type DirSyncResult,
  type DirectIoProbe,
  type OpenSegmentOptions,
  type PreallocateStrategy,
  type RecordInput,
  type ScanOptions,
  type ScanResult,
  type SegmentFile,
  type WalBackend,
  type WalMode,
} from './backend.js';
import { crc32c } from './crc32c.js';
import { encodeBatch, scanBuffer } from './frame.js';

/**
 * The fs calls on the append path. Tests inject failing versions to prove that a failed
 * write/sync fails the segment with the original error and is never retried.
 */
export interface JsBackendFs {
  writev(
    fd: number,
    buffers: readonly NodeJS.ArrayBufferView[],
    position: number,
    callback: (error: NodeJS.ErrnoException | null, bytesWritten: number) => void,
  ): void;
  fdatasync(fd: number, callback: (error: NodeJS.ErrnoException | null) => void): void;
}

export interface JsBackendOptions {
  /** Replace some fs calls of the append path (test hook for fault injection). */
  fs?: Partial<JsBackendFs>;
}

const ZERO_CHUNK_BYTES = 1024 * 1024;

/** statfs f_type magic numbers → filesystem names. */
const FILESYSTEM_MAGIC: ReadonlyMap<number, string> = new Map([
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x786f4256, 'vboxsf'],
  [0x01021997, '9p'],
  [0x65735546, 'fuse'],
  [0x6969, 'nfs'],
  [0xff534d42, 'cifs'],
  [0xfe534d42, 'smb2'],
  [0x794c7630, 'overlay'],
  [0x2fc12fc1, 'zfs'],
  [0xf2f52010, 'f2fs'],
]);

/** errno codes of fsync(directory) that mean "this filesystem cannot sync directories". */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

let fallocateWarned = false;

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function assertUint32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`${name} must be a uint32, got ${value}`);
  }
}

export function filesystemTypeName(magic: number): string {
  const normalized = magic >>> 0;
  return FILESYSTEM_MAGIC.get(normalized) ?? `0x${normalized.toString(16)}`;
}

interface PendingBatch {
  /** Encoded frames; empty for a pure sync request. */
  bytes: Uint8Array;
  /** File offset the frames go to. */
  position: number;
  sync: boolean;
  result: AppendResult;
  resolve: (result: AppendResult) => void;
  reject: (error: Error) => void;
}

class JsSegmentFile implements SegmentFile {
  readonly blockSize = 0;
  private nextOffset: number;
  private chainCrc: number;
  /** The file is known durable through here (what COMMIT frames state): the end of the last
   * append that resolved synced (sync=true, sync(), or any append in dsync mode). 0 until then:
   * what an earlier handle wrote may not be synced. The native backend keeps the same rule, so
   * both write the same bytes for the same calls. */
  private durableOffset = 0;
  private readonly queue: PendingBatch[] = [];
  private inFlight = false;
  private firstError: Error | null = null;
  private closing: Promise<void> | null = null;
  private drainWaiters: Array<() => void> = [];

  constructor(
    readonly path: string,
    private readonly fd: number,
    readonly mode: WalMode,
    readonly modeReason: string,
    offset: number,
    prevCrc: number,
    private readonly salt: number,
    private readonly io: JsBackendFs,
  ) {
    this.nextOffset = offset;
    this.chainCrc = prevCrc;
  }

  get failure(): Error | null {
    return this.firstError;
  }

  append(records: readonly RecordInput[], sync: boolean): Promise<AppendResult> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    if (!Array.isArray(records)) {
      return Promise.reject(new TypeError('append(records, sync): records must be an array'));
    }
    let encoded;
    try {
      // Encode now, while an earlier batch's I/O may be in flight; the chain state advances
      // here, so batches are framed in call order. The COMMIT frame states what is durable as
      // of this call: never more than when the batch is written.
      encoded = encodeBatch(records, {
        prevCrc: this.chainCrc,
        salt: this.salt,
        fileOffset: this.nextOffset,
        durableOffset: this.durableOffset,
      });
    } catch (error) {
      // Bad input rejects this call only; the segment is untouched.
      return Promise.reject(toError(error));
    }
    return this.enqueue(encoded.bytes, encoded.lastCrc, sync === true);
  }

  sync(): Promise<void> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    return this.enqueue(new Uint8Array(0), this.chainCrc, true).then(() => undefined);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = this.drained().then(
      () =>
        new Promise<void>((resolve, reject) => {
          fs.close(this.fd, (error) => (error ? reject(error) : resolve()));
        }),
    );
    return this.closing;
  }

  private refusal(): Error | null {
    if (this.firstError) return new SegmentFailedError(this.path, this.firstError);
    if (this.closing) return new Error(`WAL segment ${this.path} is closed`);
    return null;
  }

  private enqueue(bytes: Uint8Array, lastCrc: number, sync: boolean): Promise<AppendResult> {
    const position = this.nextOffset;
    const result: AppendResult = { endOffset: position + bytes.length, lastCrc };
    this.nextOffset = result.endOffset;
    this.chainCrc = lastCrc;
    return new Promise<AppendResult>((resolve, reject) => {
      this.queue.push({ bytes, position, sync, result, resolve, reject });
      if (!this.inFlight) this.flush();
    });
  }

  private drained(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Write every queued batch with one writev, then one fdatasync if any of them asked. */
  private flush(): void {
    const group = this.queue.splice(0, this.queue.length);
    this.inFlight = true;
    const buffers = group.filter((batch) => batch.bytes.length > 0).map((batch) => batch.bytes);
    const wantsSync = group.some((batch) => batch.sync);
    // With O_DSYNC each write is durable when it returns; a bare sync() still calls fdatasync.
    const needsSync = wantsSync && (this.mode !== 'dsync' || buffers.length === 0);
    const afterWrite = (): void => {
      if (!needsSync) {
        this.complete(group);
        return;
      }
      this.io.fdatasync(this.fd, (error) => {
        if (error) this.fail(toError(error), group);
        else this.complete(group);
      });
    };
    if (buffers.length === 0) afterWrite();
    else this.writeAll(buffers, group[0]!.position, afterWrite, group);
  }

  private writeAll(
    buffers: Uint8Array[],
    position: number,
    done: () => void,
    group: PendingBatch[],
  ): void {
    let total = 0;
    for (const buffer of buffers) total += buffer.length;
    this.io.writev(this.fd, buffers, position, (error, written) => {
      if (error) {
        this.fail(toError(error), group);
        return;
      }
      if (written === total) {
        done();
        return;
      }
      if (!(written > 0 && written < total)) {
        this.fail(new Error(`writev wrote ${written} of ${total} bytes at offset ${position}`), group);
        return;
      }
      // Short write (rare for regular files): continue with what is left.
      const rest: Uint8Array[] = [];
      let skip = written;
      for (const buffer of buffers) {
        if (skip >= buffer.length) {
          skip -= buffer.length;
          continue;
        }
        rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
      this.writeAll(rest, position + written, done, group);
    });
  }

  private complete(group: PendingBatch[]): void {
    for (const batch of group) {
      if (batch.sync || this.mode === 'dsync') this.durableOffset = Math.max(this.durableOffset, batch.result.endOffset);
      batch.resolve(batch.result);
    }
    this.next();
  }

  /** The first I/O error fails the segment for good: no retry (fsyncgate). */
  private fail(error: Error, group: PendingBatch[]): void {
    if (!this.firstError) this.firstError = error;
    const failed = new SegmentFailedError(this.path, this.firstError);
    for (const batch of group) batch.reject(failed);
    for (const batch of this.queue.splice(0, this.queue.length)) batch.reject(failed);
    this.next();
  }

  private next(): void {
    if (this.queue.length > 0 && !this.firstError) {
      this.flush();
      return;
    }
    this.inFlight = false;
    for (const waiter of this.drainWaiters.splice(0, this.drainWaiters.length)) waiter();
  }
}

const openAsync = promisify(fs.open);
const fstatAsync = promisify(fs.fstat);
const closeAsync = promisify(fs.close);

async function openSegment(
  path: string,
  options: OpenSegmentOptions,
  io: JsBackendFs,
): Promise<SegmentFile> {
  const { offset, prevCrc, salt } = options;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 8 !== 0) {
    throw new RangeError(`openSegment ${path}: offset must be a non-negative multiple of 8, got ${offset}`);
  }
  assertUint32('prevCrc', prevCrc);
  assertUint32('salt', salt);
  let mode: WalMode;
  let modeReason: string;
  switch (options.mode) {
    case 'auto':
      mode = 'buffered';
      modeReason = 'auto: the JS backend has no O_DIRECT, so buffered (pwrite + fdatasync)';
      break;
    case 'buffered':
      mode = 'buffered';
      modeReason = 'buffered requested';
      break;
    case 'dsync':
      mode = 'dsync';
      modeReason = 'dsync requested (O_DSYNC)';
      break;
    case 'direct':
      throw new Error(
        `openSegment ${path}: mode 'direct' needs O_DIRECT, which the JS backend cannot do; ` +
          `use 'auto' or 'buffered', or the native backend`,
      );
    default:
      throw new Error(`openSegment ${path}: unknown mode ${String(options.mode)}`);
  }
  const flags = fs.constants.O_RDWR | (mode === 'dsync' ? fs.constants.O_DSYNC : 0);
  const fd = await openAsync(path, flags);
  try {
    const stat = await fstatAsync(fd);
    if (offset > stat.size) {
      throw new RangeError(
        `openSegment ${path}: offset ${offset} is past the end of the file (${stat.size} bytes)`,
      );
    }
  } catch (error) {
    await closeAsync(fd).catch(() => undefined);
    throw error;
  }
  return new JsSegmentFile(path, fd, mode, modeReason, offset, prevCrc, salt, io);
}

async function createSegmentFile(
  path: string,
  sizeBytes: number,
  strategy: PreallocateStrategy,
): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw new RangeError(`createSegmentFile ${path}: size must be a non-negative integer, got ${sizeBytes}`);
  }
  if (strategy !== 'zero' && strategy !== 'fallocate' && strategy !== 'none') {
    throw new Error(`createSegmentFile ${path}: unknown preallocation strategy ${String(strategy)}`);
  }
  if (strategy === 'fallocate' && !fallocateWarned) {
    fallocateWarned = true;
    process.emitWarning(
      'the JS WAL backend has no fallocate (Node fs has none); preallocating segments by writing zeros instead',
      { code: 'RAFTKV_NO_FALLOCATE' },
    );
  }
  const handle = await fs.promises.open(path, 'wx', 0o644);
  try {
    if (strategy === 'none') {
      await handle.truncate(sizeBytes);
    } else {
      const zeros = new Uint8Array(Math.min(ZERO_CHUNK_BYTES, Math.max(sizeBytes, 1)));
      for (let at = 0; at < sizeBytes; ) {
        const { bytesWritten } = await handle.write(zeros, 0, Math.min(zeros.length, sizeBytes - at), at);
        if (bytesWritten <= 0) throw new Error(`createSegmentFile ${path}: write returned ${bytesWritten}`);
        at += bytesWritten;
      }
    }
    // fsync, not fdatasync: the file size changed.
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.promises.unlink(path).catch(() => undefined);
    throw error;
  }
}

async function scanSegment(path: string, options: ScanOptions): Promise<ScanResult> {
  const bytes = await fs.promises.readFile(path);
  return scanBuffer(bytes, { prevCrc: options.prevCrc, path });
}

function syncDirectory(path: string): DirSyncResult {
  // O_NONBLOCK: opening a FIFO (the kernel-EINVAL test) must not wait for a writer.
  const fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    fs.fsyncSync(fd);
    return { supported: true, errno: null };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && DIR_SYNC_UNSUPPORTED.has(code)) return { supported: false, errno: code };
    throw error;
  } finally {
    fs.closeSync(fd);
  }
}

function probeDirectIo(): DirectIoProbe {
  return { usable: false, blockSize: 0, reason: 'JS backend has no O_DIRECT' };
}

function filesystemType(path: string): string {
  return filesystemTypeName(fs.statfsSync(path).type);
}

export function createJsBackend(reason: string, options: JsBackendOptions = {}): WalBackend {
  const io: JsBackendFs = {
    writev: options.fs?.writev ?? fs.writev,
    fdatasync: options.fs?.fdatasync ?? fs.fdatasync,
  };
  return {
    name: 'js',
    reason,
    crc32c: (data, seed) => crc32c(data, seed),
    createSegmentFile,
    openSegment: (path, openOptions) => openSegment(path, openOptions, io),
    scanSegment,
    syncDirectory,
    probeDirectIo,
    filesystemType,
    flock: null,
  };
}
