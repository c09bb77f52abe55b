/**
 * The pure-TypeScript WAL backend: frames with src/wal/frame.ts (CRC-32C in JS), writes with
 * writev at explicit positions and syncs with fdatasync — both through the callback API of a
 * FileSystem (src/wal/file-system.ts). Over node:fs the work runs on libuv's thread pool and
 * never blocks the event loop; over a simulated disk the simulator decides when each completes.
 *
 * Used where the native addon does not load, and always over a simulated FileSystem. Its
 * `buffered` files are byte-identical to the native backend's. It has no O_DIRECT (Node's fs
 * cannot allocate aligned buffers), no fallocate and no flock.
 */

import { constants as fsConstants } from 'node:fs';
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
import { nodeFileSystem, type FileSystem } from './file-system.js';
import { encodeBatch, scanBuffer } from './frame.js';

export { filesystemTypeName } from './file-system.js';

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
  /** Where every file operation goes. Default node:fs. */
  fileSystem?: FileSystem;
  /** Replace some calls of the append path on top of `fileSystem` (test hook for fault
   * injection). */
  fs?: Partial<JsBackendFs>;
}

const ZERO_CHUNK_BYTES = 1024 * 1024;

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
    private readonly files: FileSystem,
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
    this.closing = this.drained().then(() => this.files.close(this.fd));
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
      this.callIo(group, (callback) => this.io.fdatasync(this.fd, callback), (error) => {
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
    this.callIo<[number]>(group, (callback) => this.io.writev(this.fd, buffers, position, callback), (error, written) => {
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

  /**
   * Issue a callback-style call of the append path. One that throws instead of calling back
   * (a bad argument, a FileSystem that throws) fails the segment with that error like an I/O
   * error: its callback never runs, and without this `inFlight` stayed set and close() hung.
   * A throw from the callback itself (run synchronously by some FileSystem) is not the call's.
   */
  private callIo<A extends unknown[] = []>(
    group: PendingBatch[],
    issue: (callback: (error: NodeJS.ErrnoException | null, ...rest: A) => void) => void,
    callback: (error: NodeJS.ErrnoException | null, ...rest: A) => void,
  ): void {
    let calledBack = false;
    try {
      issue((error, ...rest) => {
        calledBack = true;
        callback(error, ...rest);
      });
    } catch (error) {
      if (calledBack) throw error;
      this.fail(toError(error), group);
    }
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

async function openSegment(
  path: string,
  options: OpenSegmentOptions,
  io: JsBackendFs,
  files: FileSystem,
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
  const flags = fsConstants.O_RDWR | (mode === 'dsync' ? fsConstants.O_DSYNC : 0);
  const fd = await files.open(path, flags);
  try {
    const stat = await files.fstat(fd);
    if (offset > stat.size) {
      throw new RangeError(
        `openSegment ${path}: offset ${offset} is past the end of the file (${stat.size} bytes)`,
      );
    }
  } catch (error) {
    await files.close(fd).catch(() => undefined);
    throw error;
  }
  return new JsSegmentFile(path, fd, mode, modeReason, offset, prevCrc, salt, io, files);
}

async function createSegmentFile(
  files: FileSystem,
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
  const fd = await files.open(path, 'wx', 0o644);
  try {
    if (strategy === 'none') {
      await files.ftruncate(fd, sizeBytes);
    } else {
      const zeros = new Uint8Array(Math.min(ZERO_CHUNK_BYTES, Math.max(sizeBytes, 1)));
      for (let at = 0; at < sizeBytes; ) {
        const bytesWritten = await files.write(fd, zeros, 0, Math.min(zeros.length, sizeBytes - at), at);
        if (bytesWritten <= 0) throw new Error(`createSegmentFile ${path}: write returned ${bytesWritten}`);
        at += bytesWritten;
      }
    }
    // fsync, not fdatasync: the file size changed.
    await files.fsync(fd);
    await files.close(fd);
  } catch (error) {
    await files.close(fd).catch(() => undefined);
    await files.rm(path, { force: true }).catch(() => undefined);
    throw error;
  }
}

async function scanSegment(files: FileSystem, path: string, options: ScanOptions): Promise<ScanResult> {
  const bytes = await files.readFile(path);
  return scanBuffer(bytes, { prevCrc: options.prevCrc, path });
}

function syncDirectory(files: FileSystem, path: string): DirSyncResult {
  // O_NONBLOCK: opening a FIFO (the kernel-EINVAL test) must not wait for a writer.
  const fd = files.openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    files.fsyncSync(fd);
    return { supported: true, errno: null };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== undefined && DIR_SYNC_UNSUPPORTED.has(code)) return { supported: false, errno: code };
    throw error;
  } finally {
    files.closeSync(fd);
  }
}

function probeDirectIo(): DirectIoProbe {
  return { usable: false, blockSize: 0, reason: 'JS backend has no O_DIRECT' };
}

export function createJsBackend(reason: string, options: JsBackendOptions = {}): WalBackend {
  const files = options.fileSystem ?? nodeFileSystem;
  // Over node:fs these are fs.writev / fs.fdatasync themselves: no layer per write.
  // (Bound: a FileSystem other than node:fs, e.g. a SimMount, has methods that use `this`.)
  const io: JsBackendFs = {
    writev: options.fs?.writev ?? (files === nodeFileSystem ? files.writev : files.writev.bind(files)),
    fdatasync: options.fs?.fdatasync ?? (files === nodeFileSystem ? files.fdatasync : files.fdatasync.bind(files)),
  };
  return {
    name: 'js',
    reason,
    fileSystem: files,
    crc32c: (data, seed) => crc32c(data, seed),
    createSegmentFile: (path, sizeBytes, strategy) => createSegmentFile(files, path, sizeBytes, strategy),
    openSegment: (path, openOptions) => openSegment(path, openOptions, io, files),
    scanSegment: (path, scanOptions) => scanSegment(files, path, scanOptions),
    syncDirectory: (path) => syncDirectory(files, path),
    probeDirectIo,
    filesystemType: (path) => files.filesystemType(path),
    flock: null,
  };
}
