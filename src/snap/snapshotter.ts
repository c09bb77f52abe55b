/**
 * Snapshot files (issue 3, "Snapshots"): `<dir>/<term:016x>-<index:016x>.snap`, one per saved
 * snapshot, written atomically (temp file, fsync, rename, directory fsync under the same dirSync
 * policy as the WAL) and checked on load with CRC-32C.
 *
 * File layout (little-endian):
 *   0   8  magic "RAFTKVSN"
 *   8   4  format version (1)
 *   12  4  crc32c of the body
 *   16  8  body length
 *   24  …  body: msgpack { metadata: { index, term, confState: { voters, learners } }, data: bin }
 *
 * A file that does not check out is renamed `<file>.broken`, reported (logger + return value),
 * and the next older snapshot is used, like etcd's snapshotter.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import type { ConfState, Snapshot, SnapshotMetadata } from '../raft/types.js';
import type { WalBackend } from '../wal/backend.js';
import { syncDirectory, type DirSyncPolicy } from '../wal/dir-sync.js';
import { SnapshotCorruptionError } from '../wal/errors.js';
import { stderrLogger, type WalLogger } from '../wal/logger.js';
import { hexPairFileName, parseHexPairFileName } from '../wal/segment-name.js';
import { getWalBackend } from '../wal/select-backend.js';

export const SNAPSHOT_MAGIC = 'RAFTKVSN';
export const SNAPSHOT_FORMAT_VERSION = 1;
const HEADER_BYTES = 24;
const MAGIC_BYTES = Buffer.from(SNAPSHOT_MAGIC, 'latin1');

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export interface SnapshotterOptions {
  /** CRC-32C comes from here (native: hardware). Default getWalBackend(). */
  backend?: WalBackend;
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

export interface LoadedSnapshot {
  /** The newest valid snapshot (that `accept` accepted), or null when there is none. */
  snapshot: Snapshot | null;
  file: string | null;
  /** Corrupt files found on the way, already renamed to *.broken. */
  broken: BrokenSnapshot[];
}

export interface LoadOptions {
  /** Only consider snapshots this accepts (e.g. those the WAL has a marker for). */
  accept?: (metadata: SnapshotMetadata) => boolean;
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

export class Snapshotter {
  readonly dir: string;
  private readonly backend: WalBackend;
  private readonly dirSync: DirSyncPolicy;
  private readonly logger: WalLogger;
  private readonly dirSyncTarget: string | undefined;
  private prepared = false;

  constructor(dir: string, options: SnapshotterOptions = {}) {
    this.dir = path.resolve(dir);
    this.backend = options.backend ?? getWalBackend();
    this.dirSync = options.dirSync ?? 'auto';
    this.logger = options.logger ?? stderrLogger;
    this.dirSyncTarget = options.dirSyncTarget;
  }

  /** Write the snapshot durably; resolves with its file once it is renamed into place and the
   * directory is synced. An existing file for the same (term, index) is replaced. */
  async save(snapshot: Snapshot): Promise<string> {
    const metadata = checkMetadata(snapshot.metadata);
    if (!(snapshot.data instanceof Uint8Array)) throw new TypeError('snapshot data must be a Uint8Array');
    const body = packr.pack({ metadata, data: snapshot.data });
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC_BYTES.copy(header, 0);
    header.writeUInt32LE(SNAPSHOT_FORMAT_VERSION, 8);
    header.writeUInt32LE(this.backend.crc32c(body, 0) >>> 0, 12);
    header.writeBigUInt64LE(BigInt(body.length), 16);

    if (!this.prepared) {
      // Create the directory durably, and learn before writing anything whether this
      // filesystem can sync directories ('strict' refuses here, with nothing written).
      await fsp.mkdir(this.dir, { recursive: true });
      this.syncDir(path.dirname(this.dir));
      this.syncDir();
      this.prepared = true;
    }
    const file = path.join(this.dir, snapshotFileName(metadata.term, metadata.index));
    const tmp = `${file}.tmp`;
    const handle = await fsp.open(tmp, 'w', 0o644);
    try {
      await handle.writev([header, body]);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await handle.close();
    await fsp.rename(tmp, file);
    this.syncDir();
    return file;
  }

  /** Snapshot files, newest first. */
  list(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
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

  /** Read and verify one snapshot file; throws SnapshotCorruptionError when it does not check out. */
  async load(file: string): Promise<Snapshot> {
    const bytes = await fsp.readFile(file);
    if (bytes.length < HEADER_BYTES) throw new SnapshotCorruptionError(file, `${bytes.length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
    if (!bytes.subarray(0, 8).equals(MAGIC_BYTES)) throw new SnapshotCorruptionError(file, 'bad magic');
    const version = bytes.readUInt32LE(8);
    if (version !== SNAPSHOT_FORMAT_VERSION) throw new SnapshotCorruptionError(file, `unsupported format version ${version}`);
    const length = bytes.readBigUInt64LE(16);
    if (length !== BigInt(bytes.length - HEADER_BYTES)) {
      throw new SnapshotCorruptionError(file, `body length field says ${length} bytes, the file holds ${bytes.length - HEADER_BYTES}`);
    }
    const body = bytes.subarray(HEADER_BYTES);
    const crc = this.backend.crc32c(body, 0) >>> 0;
    const stored = bytes.readUInt32LE(12);
    if (crc !== stored) throw new SnapshotCorruptionError(file, `crc32c mismatch (stored ${stored.toString(16)}, computed ${crc.toString(16)})`);
    let decoded: unknown;
    try {
      decoded = packr.unpack(body);
    } catch (err) {
      throw new SnapshotCorruptionError(file, `body is not valid msgpack: ${(err as Error).message}`);
    }
    const { metadata: rawMetadata, data } = (decoded ?? {}) as { metadata?: unknown; data?: unknown };
    let metadata: SnapshotMetadata;
    try {
      metadata = checkMetadata(rawMetadata);
    } catch (err) {
      throw new SnapshotCorruptionError(file, (err as Error).message);
    }
    if (!(data instanceof Uint8Array)) throw new SnapshotCorruptionError(file, 'data is not bytes');
    const named = parseSnapshotFileName(path.basename(file));
    if (named !== null && (named.index !== metadata.index || named.term !== metadata.term)) {
      throw new SnapshotCorruptionError(file, `holds snapshot ${metadata.term}/${metadata.index} but is named for ${named.term}/${named.index}`);
    }
    return { metadata, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }

  /**
   * The newest snapshot that loads and that `accept` accepts. Corrupt files on the way are
   * renamed to *.broken and reported; older ones are tried next.
   */
  async loadNewest(options: LoadOptions = {}): Promise<LoadedSnapshot> {
    const broken: BrokenSnapshot[] = [];
    for (const file of this.list()) {
      let snapshot: Snapshot;
      try {
        snapshot = await this.load(file);
      } catch (err) {
        if (!(err instanceof SnapshotCorruptionError)) throw err; // I/O errors are not corruption
        const renamedTo = `${file}.broken`;
        await fsp.rename(file, renamedTo);
        this.syncDir();
        broken.push({ file, renamedTo, reason: err.message });
        this.logger.warn(`${err.message}; renamed to ${renamedTo}, trying the next older snapshot`);
        continue;
      }
      if (options.accept !== undefined && !options.accept(snapshot.metadata)) continue;
      return { snapshot, file, broken };
    }
    return { snapshot: null, file: null, broken };
  }

  /** Keep the newest `keep` snapshot files, delete the rest. Returns the deleted files. */
  async purge(keep: number): Promise<string[]> {
    if (!Number.isSafeInteger(keep) || keep < 1) throw new RangeError(`purge keeps at least one snapshot, got ${keep}`);
    const doomed = this.list().slice(keep);
    for (const file of doomed) await fsp.rm(file, { force: true });
    if (doomed.length > 0) this.syncDir();
    return doomed;
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
