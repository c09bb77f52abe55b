/**
 * The filesystem seam under the WAL and the snapshotter (as hashicorp/raft-wal's VFS): every file
 * operation they perform — open, pwrite/writev at an offset, read, fdatasync/fsync, truncate,
 * preallocation (written zeros or a truncate), rename, unlink, link, mkdir, readdir, directory
 * fsync (open the directory, fsync it), the lock file — goes through a `FileSystem`.
 *
 * `nodeFileSystem` is the real one: node:fs itself, so the js backend's hot path still calls
 * fs.writev / fs.fdatasync directly (no extra promise or wrapper per write). test/sim/disk.ts
 * has an in-memory one with a crash model for the deterministic simulator.
 *
 * The methods keep node:fs's names, signatures, sync-or-async shape and error shape (an Error
 * with `code` 'ENOENT'/'EIO'/…, `errno`, `syscall`, `path`): the WAL's error handling works
 * unchanged over any implementation. Sync methods are the ones today's callers need
 * synchronously (Wal.exists, Snapshotter.list, directory fsync, the lock); the append path is
 * callback-based, the rest promise-based.
 *
 * The native backend does its segment I/O in C++ on real files; it cannot run over another
 * FileSystem (see select-backend.ts: `backendFor`).
 */
import fs from 'node:fs';
import { promisify } from 'node:util';

/** What the WAL reads from a stat (node's fs.Stats satisfies it). */
export interface FileStat {
  size: number;
  ino: number;
  mtimeMs: number;
  isFile(): boolean;
  isDirectory(): boolean;
}

/** node:fs open flags: a number (fs.constants.O_*) or one of 'r', 'r+', 'w', 'wx', 'a'. */
export type OpenFlags = number | string;

export interface RemoveOptions {
  /** Ignore a missing path (ENOENT). */
  force?: boolean;
  /** Remove a directory and everything under it. */
  recursive?: boolean;
}

export interface MkdirOptions {
  recursive?: boolean;
}

export type ErrnoCallback = (error: NodeJS.ErrnoException | null) => void;
export type WriteCallback = (error: NodeJS.ErrnoException | null, bytesWritten: number) => void;

export interface FileSystem {
  /** For messages: 'node:fs', 'simdisk:…'. */
  readonly name: string;
  /**
   * true when paths name real files of this machine, so that the native backend (its own
   * syscalls) and flock (fs-ext, the addon) act on the same files as this FileSystem.
   */
  readonly real: boolean;

  // --- append path (callback style, exactly fs.writev / fs.fdatasync; called detached, as
  // the js backend keeps them in its own table) -----------------------------------------------
  /** pwritev: write `buffers` back to back at `position`; may write short. */
  writev(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number, callback: WriteCallback): void;
  fdatasync(fd: number, callback: ErrnoCallback): void;

  // --- files (promises) ---------------------------------------------------------------------
  open(path: string, flags: OpenFlags, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  fstat(fd: number): Promise<FileStat>;
  /** pread; resolves with the bytes read (fewer at end of file). */
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** pwrite; resolves with the bytes written (may be short). */
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** fsync (data and metadata, e.g. a new size). */
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options?: RemoveOptions): Promise<void>;
  mkdir(path: string, options?: MkdirOptions): Promise<void>;

  // --- synchronous (callers that are synchronous today) --------------------------------------
  openSync(path: string, flags: OpenFlags, mode?: number): number;
  closeSync(fd: number): void;
  /** On a directory's fd: the directory fsync (EINVAL where the filesystem cannot). */
  fsyncSync(fd: number): void;
  writeSync(fd: number, text: string, position: number): number;
  ftruncateSync(fd: number, length: number): void;
  readFileSync(path: string): Buffer;
  statSync(path: string): FileStat;
  /** `dev:ino` of `path` (following symlinks; exact — from a bigint stat): the same file or
   * directory by whatever path it is reached. Throws as statSync does. */
  identitySync(path: string): string;
  existsSync(path: string): boolean;
  readdirSync(path: string): string[];
  mkdirSync(path: string, options?: MkdirOptions): void;
  renameSync(from: string, to: string): void;
  rmSync(path: string, options?: RemoveOptions): void;
  rmdirSync(path: string): void;
  unlinkSync(path: string): void;
  linkSync(existingPath: string, newPath: string): void;

  /** Name of the filesystem holding `path` (ext4, xfs, tmpfs, vboxsf, …). */
  filesystemType(path: string): string;
  /**
   * An exclusive, non-blocking, per-process lock on `path` (created if missing), as flock(2):
   * returns its release function, or throws an error with code 'ELOCKED' when it is held.
   * null for node:fs (Node has no flock: lock.ts uses the addon, fs-ext or a pid file).
   */
  readonly flock: ((path: string) => () => void) | null;
}

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

export function filesystemTypeName(magic: number): string {
  const normalized = magic >>> 0;
  return FILESYSTEM_MAGIC.get(normalized) ?? `0x${normalized.toString(16)}`;
}

const openAsync = promisify(fs.open);
const closeAsync = promisify(fs.close);
const fstatAsync = promisify(fs.fstat);
const readAsync = promisify(fs.read);
const writeAsync = promisify(fs.write);
const fsyncAsync = promisify(fs.fsync);
const ftruncateAsync = promisify(fs.ftruncate);

/** The real filesystem: node:fs, with today's calls. */
export const nodeFileSystem: FileSystem = Object.freeze({
  name: 'node:fs',
  real: true,
  writev: fs.writev,
  fdatasync: fs.fdatasync,
  open: (path: string, flags: OpenFlags, mode?: number) => openAsync(path, flags, mode),
  close: (fd: number) => closeAsync(fd),
  fstat: (fd: number) => fstatAsync(fd),
  read: async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) =>
    (await readAsync(fd, buffer, offset, length, position)).bytesRead,
  write: async (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) =>
    (await writeAsync(fd, buffer, offset, length, position)).bytesWritten,
  fsync: (fd: number) => fsyncAsync(fd),
  ftruncate: (fd: number, length: number) => ftruncateAsync(fd, length),
  readFile: (path: string) => fs.promises.readFile(path),
  rename: (from: string, to: string) => fs.promises.rename(from, to),
  rm: (path: string, options?: RemoveOptions) => fs.promises.rm(path, options),
  mkdir: async (path: string, options?: MkdirOptions) => {
    await fs.promises.mkdir(path, options);
  },
  openSync: (path: string, flags: OpenFlags, mode?: number) => fs.openSync(path, flags, mode),
  closeSync: (fd: number) => fs.closeSync(fd),
  fsyncSync: (fd: number) => fs.fsyncSync(fd),
  writeSync: (fd: number, text: string, position: number) => fs.writeSync(fd, text, position),
  ftruncateSync: (fd: number, length: number) => fs.ftruncateSync(fd, length),
  readFileSync: (path: string) => fs.readFileSync(path),
  statSync: (path: string) => fs.statSync(path),
  identitySync: (path: string) => {
    const st = fs.statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}`;
  },
  existsSync: (path: string) => fs.existsSync(path),
  readdirSync: (path: string) => fs.readdirSync(path),
  mkdirSync: (path: string, options?: MkdirOptions) => {
    fs.mkdirSync(path, options);
  },
  renameSync: (from: string, to: string) => fs.renameSync(from, to),
  rmSync: (path: string, options?: RemoveOptions) => fs.rmSync(path, options),
  rmdirSync: (path: string) => fs.rmdirSync(path),
  unlinkSync: (path: string) => fs.unlinkSync(path),
  linkSync: (existingPath: string, newPath: string) => fs.linkSync(existingPath, newPath),
  filesystemType: (path: string) => filesystemTypeName(fs.statfsSync(path).type),
  flock: null,
});

/** fdatasync as a promise (off the append path). */
export function fdatasyncAsync(fileSystem: FileSystem, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fileSystem.fdatasync(fd, (error) => (error ? reject(error) : resolve()));
  });
}

/** Write all of `buffers` at `position`, continuing after short writes. */
export async function writeAllAt(
  fileSystem: FileSystem,
  fd: number,
  buffers: readonly Uint8Array[],
  position: number,
): Promise<void> {
  let rest = buffers.filter((b) => b.length > 0);
  let at = position;
  while (rest.length > 0) {
    const total = rest.reduce((sum, b) => sum + b.length, 0);
    const written = await new Promise<number>((resolve, reject) => {
      fileSystem.writev(fd, rest, at, (error, n) => (error ? reject(error) : resolve(n)));
    });
    if (!(written > 0 && written <= total)) throw new Error(`writev wrote ${written} of ${total} bytes at offset ${at}`);
    at += written;
    let skip = written;
    const next: Uint8Array[] = [];
    for (const b of rest) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    rest = next;
  }
}

/** Read `length` bytes at `position` (fewer only at end of file). */
export async function readAt(fileSystem: FileSystem, fd: number, buffer: Uint8Array, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await fileSystem.read(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
