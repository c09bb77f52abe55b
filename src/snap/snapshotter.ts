/**
 * Snapshot files (issue 3, "Snapshots"): `<dir>/<term:016x>-<index:016x>.snap`, one per saved
 * snapshot, written atomically (temp file, fsync, rename, directory fsync under the same dirSync
 * policy as the WAL) and checked on load with CRC-32C. The byte layout of both versions is in
 * docs/formats.md ("Snapshot file").
 *
 * Version 2 (written now) holds the snapshot metadata and a small `head` in one CRC-checked
 * block, then the `body` as a sequence of CRC-checked chunks of at most SNAPSHOT_CHUNK_BYTES,
 * then a trailer with the body's total length and CRC. It is written from a stream and read
 * back as one (`readBody`), so a snapshot of any size passes through a bounded amount of
 * memory. Version 1 files (one body CRC over a msgpack { metadata, data }) are still read: their
 * data is the head, their body is empty.
 *
 * A file that does not check out is renamed `<file>.broken`, reported (logger + return value),
 * and the next older snapshot is used, like etcd's snapshotter.
 */
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import type { ConfState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import type { WalBackend } from '../wal/backend.js';
import { syncDirectory, type DirSyncPolicy } from '../wal/dir-sync.js';
import { SnapshotCorruptionError } from '../wal/errors.js';
import { writeAllAt, type FileSystem } from '../wal/file-system.js';
import { stderrLogger, type WalLogger } from '../wal/logger.js';
import { hexPairFileName, parseHexPairFileName } from '../wal/segment-name.js';
import { backendFor } from '../wal/select-backend.js';

export const SNAPSHOT_MAGIC = 'RAFTKVSN';
/** The version written. Version 1 is still read. */
export const SNAPSHOT_FORMAT_VERSION = 2;
/** Largest body chunk in a version 2 file (and what the writer splits bigger pieces into). A
 * reader refuses a larger length field as corruption, so it never allocates more than this. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const V1_HEADER_BYTES = 24;
/** magic(8) version(4) metaCrc(4) metaLength(4) */
const V2_HEADER_BYTES = 20;
/** chunk frame: length(4) crc32c(4) */
const FRAME_HEADER_BYTES = 8;
/** end frame: 0(4) crc32c-of-trailer(4); trailer: bodyBytes(8) bodyCrc(4) */
const END_BYTES = 8 + 12;
const MAGIC_BYTES = Buffer.from(SNAPSHOT_MAGIC, 'latin1');

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export interface SnapshotterOptions {
  /** CRC-32C and directory fsync come from here (native: hardware CRC). Default
   * getWalBackend(); over a simulated `fs`, the js backend over it. */
  backend?: WalBackend;
  /** Advanced (the deterministic simulator): the filesystem every file operation goes through.
   * Default node:fs (or the backend's). */
  fs?: FileSystem;
  /** Same policy as the WAL's. Default 'auto'. */
  dirSync?: DirSyncPolicy;
  logger?: WalLogger;
  /** Testing hook: directory fsyncs go to this path (e.g. a FIFO → EINVAL). */
  dirSyncTarget?: string;
}

export interface BrokenSnapshot {
  file: string;
  renamedTo: string;
  reason: string;
}

/** What a snapshot file holds, checked end to end, without its body. */
export interface SnapshotFileInfo {
  file: string;
  version: number;
  metadata: SnapshotMetadata;
  /** Small bytes kept with the metadata (version 1: the whole snapshot data). */
  head: Uint8Array;
  /** Length and CRC-32C of the body (0 and 0 when there is none). */
  bodyBytes: number;
  bodyCrc: number;
}

export interface LoadedSnapshot {
  /** The newest valid snapshot (that `accept` accepted) as { metadata, data: head }, or null
   * when there is none. Its body, if any, is read with readBody(file). */
  snapshot: Snapshot | null;
  info: SnapshotFileInfo | null;
  file: string | null;
  /** Corrupt files found on the way, already renamed to *.broken. */
  broken: BrokenSnapshot[];
}

export interface LoadOptions {
  /** Only consider snapshots this accepts (e.g. those the WAL has a marker for). */
  accept?: (metadata: SnapshotMetadata) => boolean;
}

export interface SaveStreamOptions {
  /** The body must come out at exactly this length and CRC-32C (a snapshot received from a
   * peer); otherwise nothing is renamed into place and the save rejects. */
  expect?: { bytes: number; crc: number };
  /** Refuse (reject, nothing kept) once the body grows past this many bytes. */
  bytesMax?: number;
}

export interface SavedSnapshot {
  file: string;
  bodyBytes: number;
  bodyCrc: number;
}

/** A streamed body did not match what was expected of it (length, CRC or size limit). */
export class SnapshotBodyMismatchError extends Error {
  override name = 'SnapshotBodyMismatchError';
}

export function snapshotFileName(term: number, index: number): string {
  return hexPairFileName(term, index, 'snap');
}

export function parseSnapshotFileName(name: string): { term: number; index: number } | null {
  const pair = parseHexPairFileName(name, 'snap');
  return pair === null ? null : { term: pair[0], index: pair[1] };
}

function assertSafeUint(n: unknown, what: string): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${String(n)}`);
}

function checkConfState(c: unknown, what: string): ConfState {
  if (typeof c !== 'object' || c === null) throw new RangeError(`${what} must be an object`);
  const { voters, learners } = c as { voters?: unknown; learners?: unknown };
  if (!Array.isArray(voters) || !Array.isArray(learners)) throw new RangeError(`${what} needs voters and learners arrays`);
  for (const id of [...voters, ...learners]) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) throw new RangeError(`${what}: node ids must be positive safe integers, got ${String(id)}`);
  }
  return { voters: [...(voters as number[])], learners: [...(learners as number[])] };
}

function checkMetadata(m: unknown): SnapshotMetadata {
  if (typeof m !== 'object' || m === null) throw new RangeError('snapshot metadata must be an object');
  const { index, term, confState } = m as { index?: unknown; term?: unknown; confState?: unknown };
  assertSafeUint(index, 'snapshot index');
  assertSafeUint(term, 'snapshot term');
  return { index, term, confState: checkConfState(confState, 'snapshot confState') };
}

function asBytes(data: Uint8Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Positional reads of exactly `length` bytes; a short file is corruption, not an I/O error. */
async function readExactly(fs: FileSystem, fd: number, file: string, into: Buffer, length: number, position: number, what: string): Promise<Buffer> {
  let got = 0;
  while (got < length) {
    const bytesRead = await fs.read(fd, into, got, length - got, position + got);
    if (bytesRead === 0) {
      throw new SnapshotCorruptionError(file, `truncated at offset ${position + got}: ${what} needs ${length} bytes, only ${got} there (length mismatch)`);
    }
    got += bytesRead;
  }
  return into.subarray(0, length);
}

export class Snapshotter {
  readonly dir: string;
  private readonly backend: WalBackend;
  private readonly fs: FileSystem;
  private readonly dirSync: DirSyncPolicy;
  private readonly logger: WalLogger;
  private readonly dirSyncTarget: string | undefined;
  private prepared = false;
  /** Temp files get unique names: two saves of the same (term, index) may overlap (a
   * snapshot received twice). */
  private tmpCounter = 0;

  constructor(dir: string, options: SnapshotterOptions = {}) {
    this.dir = path.resolve(dir);
    this.backend = backendFor({ backend: options.backend, fs: options.fs });
    this.fs = this.backend.fileSystem;
    this.dirSync = options.dirSync ?? 'auto';
    this.logger = options.logger ?? stderrLogger;
    this.dirSyncTarget = options.dirSyncTarget;
  }

  /** The file a snapshot (term, index) is saved as. */
  fileFor(term: number, index: number): string {
    return path.join(this.dir, snapshotFileName(term, index));
  }

  /** Write the snapshot durably; resolves with its file once it is renamed into place and the
   * directory is synced. An existing file for the same (term, index) is replaced. The data is
   * kept as the file's head (it is in memory anyway); use saveStream for big state. */
  async save(snapshot: Snapshot): Promise<string> {
    if (!(snapshot.data instanceof Uint8Array)) throw new TypeError('snapshot data must be a Uint8Array');
    return (await this.saveStream(snapshot.metadata, snapshot.data, emptyBody())).file;
  }

  /**
   * Writes a version 2 file from `body`, chunk by chunk (memory: one chunk), and makes it
   * durable: fsync, rename into place, directory fsync. A failure of `body` (or a mismatch with
   * `options.expect`) removes the temp file and rejects; nothing is renamed into place.
   */
  async saveStream(
    rawMetadata: SnapshotMetadata,
    head: Uint8Array,
    body: AsyncIterable<Uint8Array>,
    options: SaveStreamOptions = {},
  ): Promise<SavedSnapshot> {
    const metadata = checkMetadata(rawMetadata);
    if (!(head instanceof Uint8Array)) throw new TypeError('snapshot head must be a Uint8Array');
    const meta = packr.pack({ metadata, head });
    const header = Buffer.alloc(V2_HEADER_BYTES);
    MAGIC_BYTES.copy(header, 0);
    header.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
    header.writeUInt32LE(this.backend.crc32c(meta, 0) >>> 0, 12);
    header.writeUInt32LE(meta.length, 16);

    await this.prepare();
    const file = this.fileFor(metadata.term, metadata.index);
    const tmp = `${file}.${process.pid}-${++this.tmpCounter}.tmp`;
    const fd = await this.fs.open(tmp, 'wx', 0o644);
    let bodyBytes = 0;
    let bodyCrc = 0;
    let at = 0;
    const append = async (buffers: Uint8Array[]): Promise<void> => {
      await writeAllAt(this.fs, fd, buffers, at);
      for (const b of buffers) at += b.byteLength;
    };
    try {
      await append([header, meta]);
      const frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
      for await (const piece of body) {
        if (!(piece instanceof Uint8Array)) throw new TypeError(`snapshot body chunks must be Uint8Arrays, got ${typeof piece}`);
        for (let off = 0; off < piece.byteLength; off += SNAPSHOT_CHUNK_BYTES) {
          const chunk = piece.subarray(off, Math.min(piece.byteLength, off + SNAPSHOT_CHUNK_BYTES));
          bodyBytes += chunk.byteLength;
          if (options.bytesMax !== undefined && bodyBytes > options.bytesMax) {
            throw new SnapshotBodyMismatchError(`snapshot body exceeds the limit of ${options.bytesMax} bytes`);
          }
          const crc = this.backend.crc32c(chunk, 0) >>> 0;
          bodyCrc = this.backend.crc32c(chunk, bodyCrc) >>> 0;
          frameHeader.writeUInt32LE(chunk.byteLength, 0);
          frameHeader.writeUInt32LE(crc, 4);
          await append([frameHeader, chunk]);
        }
      }
      const end = Buffer.alloc(END_BYTES);
      end.writeBigUInt64LE(BigInt(bodyBytes), 8);
      end.writeUInt32LE(bodyCrc, 16);
      end.writeUInt32LE(this.backend.crc32c(end.subarray(8), 0) >>> 0, 4);
      await append([end]);
      const expect = options.expect;
      if (expect !== undefined && (expect.bytes !== bodyBytes || expect.crc >>> 0 !== bodyCrc)) {
        throw new SnapshotBodyMismatchError(
          `snapshot body is ${bodyBytes} bytes with crc32c ${bodyCrc.toString(16)}, ` +
            `expected ${expect.bytes} bytes with crc32c ${(expect.crc >>> 0).toString(16)}`,
        );
      }
      await this.fs.fsync(fd);
    } catch (err) {
      await this.fs.close(fd).catch(() => undefined);
      await this.fs.rm(tmp, { force: true });
      throw err;
    }
    await this.fs.close(fd);
    await this.fs.rename(tmp, file);
    this.syncDir();
    return { file, bodyBytes, bodyCrc };
  }

  /** The snapshot directory's file names; none when it does not exist (yet). */
  private fileNames(): string[] {
    try {
      return this.fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Removes temp files a crash left behind (never one being written: call before any save). */
  async removeTempFiles(): Promise<string[]> {
    const doomed = this.fileNames().filter((n) => n.endsWith('.tmp') && n.includes('.snap')).map((n) => path.join(this.dir, n));
    for (const f of doomed) await this.fs.rm(f, { force: true });
    return doomed;
  }

  /** Snapshot files, newest first. */
  list(): string[] {
    return this.fileNames()
      .map((name) => ({ name, parsed: parseSnapshotFileName(name) }))
      .filter((x): x is { name: string; parsed: { term: number; index: number } } => x.parsed !== null)
      .sort((a, b) => b.parsed.index - a.parsed.index || b.parsed.term - a.parsed.term)
      .map((x) => path.join(this.dir, x.name));
  }

  /** Index of the oldest snapshot file present (by its name; it may not load), or null when
   * there is none. */
  oldestIndex(): number | null {
    const files = this.list();
    if (files.length === 0) return null;
    return parseSnapshotFileName(path.basename(files[files.length - 1]!))!.index;
  }

  /**
   * Reads one snapshot file whose state is all in its head (version 1 files, and those written
   * by save()); throws SnapshotCorruptionError when it does not check out. A file with a body
   * is read with inspect + readBody.
   */
  async load(file: string): Promise<Snapshot> {
    const info = await this.inspect(file);
    if (info.bodyBytes > 0) throw new Error(`snapshot ${file} has a ${info.bodyBytes}-byte body: read it with readBody`);
    return { metadata: info.metadata, data: info.head };
  }

  /** Checks a whole snapshot file (every chunk CRC, the trailer, the name) reading one chunk at
   * a time; throws SnapshotCorruptionError when it does not check out. */
  async inspect(file: string): Promise<SnapshotFileInfo> {
    const fd = await this.fs.open(file, 'r');
    try {
      const opened = await this.openFile(fd, file);
      if (opened.version === 2) {
        const scratch = Buffer.allocUnsafe(SNAPSHOT_CHUNK_BYTES);
        for await (const _chunk of this.frames(fd, file, opened.bodyOffset, opened.size, opened.info, scratch)) {
          // checked inside frames()
        }
      }
      return opened.info;
    } finally {
      await this.fs.close(fd);
    }
  }

  /**
   * The body of a snapshot file as chunks (each a fresh buffer of at most SNAPSHOT_CHUNK_BYTES),
   * each checked against its CRC before it is yielded, the total against the trailer at the
   * end: a consumer must treat the data as unusable until the iteration has completed without
   * throwing. Version 1 files have no body.
   */
  async *readBody(file: string): AsyncGenerator<Uint8Array> {
    const fd = await this.fs.open(file, 'r');
    try {
      const opened = await this.openFile(fd, file);
      if (opened.version === 1) return;
      yield* this.frames(fd, file, opened.bodyOffset, opened.size, null, null);
    } finally {
      await this.fs.close(fd);
    }
  }

  /**
   * The newest snapshot that loads and that `accept` accepts. Corrupt files on the way are
   * renamed to *.broken and reported; older ones are tried next.
   */
  async loadNewest(options: LoadOptions = {}): Promise<LoadedSnapshot> {
    const broken: BrokenSnapshot[] = [];
    for (const file of this.list()) {
      let info: SnapshotFileInfo;
      try {
        info = await this.inspect(file);
      } catch (err) {
        if (!(err instanceof SnapshotCorruptionError)) throw err; // I/O errors are not corruption
        const renamedTo = `${file}.broken`;
        await this.fs.rename(file, renamedTo);
        this.syncDir();
        broken.push({ file, renamedTo, reason: err.message });
        this.logger.warn(`${err.message}; renamed to ${renamedTo}, trying the next older snapshot`);
        continue;
      }
      if (options.accept !== undefined && !options.accept(info.metadata)) continue;
      return { snapshot: { metadata: info.metadata, data: info.head }, info, file, broken };
    }
    return { snapshot: null, info: null, file: null, broken };
  }

  /** Keep the newest `keep` snapshot files, delete the rest. Returns the deleted files. */
  async purge(keep: number): Promise<string[]> {
    if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`purge keeps at least one snapshot, got ${keep}`);
    const doomed = this.list().slice(keep);
    for (const file of doomed) await this.fs.rm(file, { force: true });
    if (doomed.length > 0) this.syncDir();
    return doomed;
  }

  private async prepare(): Promise<void> {
    if (this.prepared) return;
    // Create the directory durably, and learn before writing anything whether this
    // filesystem can sync directories ('strict' refuses here, with nothing written).
    await this.fs.mkdir(this.dir, { recursive: true });
    this.syncDir(path.dirname(this.dir));
    this.syncDir();
    this.prepared = true;
  }

  /** Reads and checks the header (and, for version 1, everything). */
  private async openFile(
    fd: number,
    file: string,
  ): Promise<{ version: 1 | 2; info: SnapshotFileInfo; bodyOffset: number; size: number }> {
    const size = (await this.fs.fstat(fd)).size;
    if (size < V2_HEADER_BYTES) throw new SnapshotCorruptionError(file, `${size} bytes, shorter than the header (length mismatch)`);
    const header = await readExactly(this.fs, fd, file, Buffer.alloc(V1_HEADER_BYTES), Math.min(V1_HEADER_BYTES, size), 0, 'the header');
    if (!header.subarray(0, 8).equals(MAGIC_BYTES)) throw new SnapshotCorruptionError(file, 'bad magic');
    const version = header.readUInt32LE(8);
    let metaBytes: Buffer;
    let bodyOffset: number;
    if (version === 1) {
      if (size < V1_HEADER_BYTES) throw new SnapshotCorruptionError(file, `${size} bytes, shorter than the ${V1_HEADER_BYTES}-byte header (length mismatch)`);
      const length = header.readBigUInt64LE(16);
      if (length !== BigInt(size - V1_HEADER_BYTES)) {
        throw new SnapshotCorruptionError(file, `body length field says ${length} bytes, the file holds ${size - V1_HEADER_BYTES}`);
      }
      metaBytes = await readExactly(this.fs, fd, file, Buffer.allocUnsafe(size - V1_HEADER_BYTES), size - V1_HEADER_BYTES, V1_HEADER_BYTES, 'the body');
      bodyOffset = size;
    } else if (version === 2) {
      const length = header.readUInt32LE(16);
      if (V2_HEADER_BYTES + length + END_BYTES > size) {
        throw new SnapshotCorruptionError(file, `metadata length field says ${length} bytes, more than the ${size}-byte file holds (length mismatch)`);
      }
      metaBytes = await readExactly(this.fs, fd, file, Buffer.allocUnsafe(length), length, V2_HEADER_BYTES, 'the metadata block');
      bodyOffset = V2_HEADER_BYTES + length;
    } else {
      throw new SnapshotCorruptionError(file, `unsupported format version ${version}`);
    }
    const crc = this.backend.crc32c(metaBytes, 0) >>> 0;
    const stored = header.readUInt32LE(12);
    if (crc !== stored) throw new SnapshotCorruptionError(file, `crc32c mismatch (stored ${stored.toString(16)}, computed ${crc.toString(16)})`);
    let decoded: unknown;
    try {
      decoded = packr.unpack(metaBytes);
    } catch (err) {
      throw new SnapshotCorruptionError(file, `body is not valid msgpack: ${(err as Error).message}`);
    }
    const { metadata: rawMetadata, data, head } = (decoded ?? {}) as { metadata?: unknown; data?: unknown; head?: unknown };
    let metadata: SnapshotMetadata;
    try {
      metadata = checkMetadata(rawMetadata);
    } catch (err) {
      throw new SnapshotCorruptionError(file, (err as Error).message);
    }
    const headBytes = version === 1 ? data : head;
    if (!(headBytes instanceof Uint8Array)) throw new SnapshotCorruptionError(file, version === 1 ? 'data is not bytes' : 'head is not bytes');
    const named = parseSnapshotFileName(path.basename(file));
    if (named !== null && (named.index !== metadata.index || named.term !== metadata.term)) {
      throw new SnapshotCorruptionError(file, `holds snapshot ${metadata.term}/${metadata.index} but is named for ${named.term}/${named.index}`);
    }
    const info: SnapshotFileInfo = { file, version, metadata, head: asBytes(headBytes), bodyBytes: 0, bodyCrc: 0 };
    if (version === 2) {
      // The trailer first: it tells the body's size before any of it is read.
      const end = await readExactly(this.fs, fd, file, Buffer.alloc(END_BYTES), END_BYTES, size - END_BYTES, 'the trailer');
      const trailerCrc = this.backend.crc32c(end.subarray(8), 0) >>> 0;
      if (end.readUInt32LE(0) !== 0 || end.readUInt32LE(4) !== trailerCrc) {
        throw new SnapshotCorruptionError(file, `no valid trailer at offset ${size - END_BYTES} (truncated, or crc32c mismatch)`);
      }
      const total = end.readBigUInt64LE(8);
      if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new SnapshotCorruptionError(file, `body length ${total} is too large`);
      info.bodyBytes = Number(total);
      info.bodyCrc = end.readUInt32LE(16);
    }
    return { version: version as 1 | 2, info, bodyOffset, size };
  }

  /** The chunks of a version 2 body, checked (into `scratch` when given, else fresh buffers). */
  private async *frames(
    fd: number,
    file: string,
    start: number,
    size: number,
    expected: SnapshotFileInfo | null,
    scratch: Buffer | null,
  ): AsyncGenerator<Uint8Array> {
    const bodyEnd = size - END_BYTES;
    const frameHeader = Buffer.alloc(FRAME_HEADER_BYTES);
    let pos = start;
    let total = 0;
    let crcAll = 0;
    while (pos < bodyEnd) {
      await readExactly(this.fs, fd, file, frameHeader, FRAME_HEADER_BYTES, pos, 'a chunk header');
      const length = frameHeader.readUInt32LE(0);
      if (length === 0 || length > SNAPSHOT_CHUNK_BYTES || pos + FRAME_HEADER_BYTES + length > bodyEnd) {
        throw new SnapshotCorruptionError(file, `bad chunk length ${length} at offset ${pos} (body ends at ${bodyEnd}; length mismatch)`);
      }
      const into = scratch ?? Buffer.allocUnsafe(length);
      const chunk = await readExactly(this.fs, fd, file, into, length, pos + FRAME_HEADER_BYTES, 'a chunk');
      const crc = this.backend.crc32c(chunk, 0) >>> 0;
      const stored = frameHeader.readUInt32LE(4);
      if (crc !== stored) {
        throw new SnapshotCorruptionError(file, `crc32c mismatch in the chunk at offset ${pos} (stored ${stored.toString(16)}, computed ${crc.toString(16)})`);
      }
      crcAll = this.backend.crc32c(chunk, crcAll) >>> 0;
      total += length;
      pos += FRAME_HEADER_BYTES + length;
      yield chunk;
    }
    const end = await readExactly(this.fs, fd, file, Buffer.alloc(END_BYTES), END_BYTES, bodyEnd, 'the trailer');
    const bytes = Number(end.readBigUInt64LE(8));
    const bodyCrc = end.readUInt32LE(16);
    if (bytes !== total || bodyCrc !== crcAll) {
      throw new SnapshotCorruptionError(file, `body holds ${total} bytes with crc32c ${crcAll.toString(16)}, the trailer says ${bytes} bytes with ${bodyCrc.toString(16)} (length mismatch)`);
    }
    if (expected !== null && (expected.bodyBytes !== total || expected.bodyCrc !== crcAll)) {
      throw new SnapshotCorruptionError(file, 'body changed while it was read');
    }
  }

  private syncDir(dir = this.dir): void {
    syncDirectory(dir, {
      backend: this.backend,
      policy: this.dirSync,
      logger: this.logger,
      ...(this.dirSyncTarget !== undefined ? { dirSyncTarget: this.dirSyncTarget } : {}),
    });
  }
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {
  // no body: everything is in the head
}
