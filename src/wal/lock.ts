/**
 * Exclusive lock of a WAL directory, so that two processes never append to one log.
 *
 * Four ways to hold it, tried in this order unless one is forced:
 *  - `vfs`:     the FileSystem's own flock (a simulated disk's lock table; node:fs has none, so
 *               on real files this is never chosen).
 *  - `native`:  flock(2) through our own addon (backend.flock) — always there when the native
 *               backend loaded, including from a prebuild with install scripts blocked.
 *  - `fs-ext`:  flock(2) through the optional fs-ext package, where it compiled at install time.
 *  - `pidfile`: last resort: the lock file is created with O_EXCL and holds the owner's pid;
 *               a lock file whose owner is dead is stale and is taken over.
 *
 * Every method writes `pid <pid> start <starttime> method <m>` into the lock file, so the error a
 * second process gets names the holder, and so that a flock user and a pidfile user on the same
 * directory still exclude each other (a flock user refuses when the file names a live pidfile
 * owner; a pidfile user refuses when the file names any live owner). flock users never unlink the
 * lock file (unlinking a flock'ed file lets two processes lock two different inodes); on
 * release they overwrite it with `released`.
 *
 * Every file operation goes through the backend's FileSystem (src/wal/file-system.ts), so a
 * WAL on a simulated disk locks on that disk; "held by this process" is tracked per FileSystem
 * (a simulated disk gives each simulated process its own).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { WalBackend } from './backend.js';
import { WalLockedError } from './errors.js';
import type { FileSystem } from './file-system.js';

export type LockMethod = 'vfs' | 'native' | 'fs-ext' | 'pidfile';
export const LOCK_FILE_NAME = 'LOCK';

export interface DirLock {
  readonly method: LockMethod;
  /** The lock file. */
  readonly path: string;
  /** Why this method was used (e.g. "fs-ext not loadable: …"). */
  readonly reason: string;
  /** The directory holding the lock file was renamed (Wal.create): follow it. The lock itself
   * is on the inode (flock) or is the file (pidfile), so it survives the rename. */
  relocate(newDir: string): void;
  release(): void;
}

export interface LockOptions {
  backend: WalBackend;
  method?: LockMethod | 'auto';
  /** Told when a stale pidfile lock is taken over. */
  warn?: (message: string) => void;
}

interface FsExt {
  flockSync(fd: number, flags: 'exnb' | 'un'): void;
}

let fsExtCache: { module: FsExt | null; error: string } | null = null;

/** fs-ext is an optional dependency that compiles at install time: it may well be missing. */
export function loadFsExt(): { module: FsExt | null; error: string } {
  if (fsExtCache === null) {
    try {
      const require = createRequire(import.meta.url);
      const mod = require('fs-ext') as Partial<FsExt>;
      if (typeof mod.flockSync !== 'function') throw new Error('fs-ext has no flockSync');
      fsExtCache = { module: mod as FsExt, error: '' };
    } catch (err) {
      fsExtCache = { module: null, error: (err as Error).message.split('\n')[0] ?? String(err) };
    }
  }
  return fsExtCache;
}

/**
 * Directories whose lock this process holds right now, per FileSystem (flock would refuse a
 * second fd anyway; the pidfile method needs this to tell "held by us" from "stale file of an
 * earlier process with our pid"). Keyed by the directory's device and inode, not its path: the
 * same directory reached through a symlink or a bind mount is the same directory, and judging our
 * own live lock stale would let two Wal instances append to one segment. The value is the lock
 * file's identity, so a directory deleted while locked and its inode reused is not mistaken for a
 * held one. Per FileSystem: a simulated disk gives each simulated process its own.
 */
const heldByFileSystem = new WeakMap<FileSystem, Map<string, { lockFileId: string }>>();

function heldBy(files: FileSystem): Map<string, { lockFileId: string }> {
  let held = heldByFileSystem.get(files);
  if (held === undefined) {
    held = new Map();
    heldByFileSystem.set(files, held);
  }
  return held;
}

/** `dev:ino` of a file or directory (following symlinks), or null when it does not exist. */
function fileIdentity(files: FileSystem, file: string): string | null {
  try {
    return files.identitySync(file);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/** Does this process hold the lock of `dir`, by whatever path it was locked? */
function heldHere(files: FileSystem, dir: string): boolean {
  const dirId = fileIdentity(files, dir);
  if (dirId === null) return false;
  const held = heldBy(files).get(dirId);
  return held !== undefined && fileIdentity(files, path.join(dir, LOCK_FILE_NAME)) === held.lockFileId;
}

interface Holder {
  pid: number;
  start: string;
  method: string;
}

/** Process start time in clock ticks since boot (Linux /proc), to detect pid reuse; '' if unknown.
 * (/proc is about this machine's processes, not the WAL's files: always node:fs.) */
function processStartTime(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? ''; // field 22 overall = index 19 after pid and comm
  } catch {
    return '';
  }
}

const ownStart = processStartTime(process.pid);

function holderLine(method: LockMethod): string {
  return `pid ${process.pid} start ${ownStart || '-'} method ${method}\n`;
}

function parseHolder(text: string): Holder | 'released' | null {
  const trimmed = text.trim();
  if (trimmed === 'released') return 'released';
  const m = /^pid (\d+) start (\S+) method (\S+)$/.exec(trimmed);
  if (m === null) return null;
  const pid = Number(m[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  return { pid, start: m[2]!, method: m[3]! };
}

function isAlive(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else: alive.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.start !== '-') {
    const start = processStartTime(holder.pid);
    if (start !== '' && start !== holder.start) return false; // pid reused by another process
  }
  return true;
}

function describe(holder: Holder): string {
  return holder.pid === process.pid ? `this process (pid ${holder.pid})` : `pid ${holder.pid}`;
}

function readHolderText(files: FileSystem, file: string): string {
  try {
    return files.readFileSync(file).toString('utf8');
  } catch {
    return '';
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export function lockDirectory(dir: string, options: LockOptions): DirLock {
  const files = options.backend.fileSystem;
  const lockPath = path.join(dir, LOCK_FILE_NAME);
  const requested = options.method ?? 'auto';
  if (heldHere(files, dir)) {
    throw new WalLockedError(dir, `this process (pid ${process.pid})`, requested);
  }
  if (requested === 'vfs') {
    if (files.flock === null) throw new Error(`lockMethod 'vfs' requested but filesystem ${files.name} has no flock of its own`);
    return lockFlock(files, dir, lockPath, files.flock, 'vfs', 'forced by lockMethod');
  }
  if (requested === 'native') {
    if (options.backend.flock === null) throw new Error(`lockMethod 'native' requested but backend ${options.backend.name} cannot flock`);
    return lockFlock(files, dir, lockPath, options.backend.flock, 'native', 'forced by lockMethod');
  }
  if (requested === 'fs-ext') {
    if (!files.real) throw new Error(`lockMethod 'fs-ext' locks real files; filesystem ${files.name} is not one`);
    const fsExt = loadFsExt();
    if (fsExt.module === null) throw new Error(`lockMethod 'fs-ext' requested but fs-ext does not load: ${fsExt.error}`);
    return lockFsExt(files, dir, lockPath, fsExt.module, 'forced by lockMethod');
  }
  if (requested === 'pidfile') return lockPidfile(files, dir, lockPath, 'forced by lockMethod', options.warn);

  if (files.flock !== null) return lockFlock(files, dir, lockPath, files.flock, 'vfs', `filesystem ${files.name} provides flock`);
  if (options.backend.flock !== null) {
    return lockFlock(files, dir, lockPath, options.backend.flock, 'native', `backend ${options.backend.name} provides flock`);
  }
  const fsExt = files.real ? loadFsExt() : { module: null, error: `filesystem ${files.name} is not real files` };
  if (fsExt.module !== null) return lockFsExt(files, dir, lockPath, fsExt.module, `backend ${options.backend.name} has no flock; fs-ext loaded`);
  return lockPidfile(files, dir, lockPath, `backend ${options.backend.name} has no flock and fs-ext does not load (${fsExt.error})`, options.warn);
}

/** After a flock was won: refuse if the file names a live pidfile owner, else claim it. */
function claimAfterFlock(files: FileSystem, dir: string, lockPath: string, method: LockMethod, fd: number): void {
  const existing = parseHolder(readHolderText(files, lockPath));
  if (existing !== null && existing !== 'released' && existing.method === 'pidfile' && isAlive(existing)) {
    throw new WalLockedError(dir, describe(existing), 'pidfile');
  }
  files.ftruncateSync(fd, 0);
  files.writeSync(fd, holderLine(method), 0);
}

function markReleased(files: FileSystem, fd: number): void {
  try {
    files.ftruncateSync(fd, 0);
    files.writeSync(fd, 'released\n', 0);
  } catch {
    // Best effort: the content only improves error messages; the flock is what excludes.
  }
}

function lockedByFlockError(files: FileSystem, dir: string, lockPath: string, method: LockMethod): WalLockedError {
  const holder = parseHolder(readHolderText(files, lockPath));
  return new WalLockedError(dir, holder !== null && holder !== 'released' ? describe(holder) : null, method);
}

/** Lock with a flock function (the addon's, or the FileSystem's own). */
function lockFlock(
  files: FileSystem,
  dir: string,
  lockPath: string,
  flock: (file: string) => () => void,
  method: 'native' | 'vfs',
  reason: string,
): DirLock {
  let unlock: () => void;
  try {
    unlock = flock(lockPath);
  } catch (err) {
    if (errnoCode(err) === 'ELOCKED' || errnoCode(err) === 'EWOULDBLOCK' || errnoCode(err) === 'EAGAIN') {
      throw lockedByFlockError(files, dir, lockPath, method);
    }
    throw err;
  }
  // A second descriptor for the holder line: closing it does not drop a flock (unlike fcntl locks).
  let fd: number;
  try {
    fd = files.openSync(lockPath, fs.constants.O_RDWR);
    try {
      claimAfterFlock(files, dir, lockPath, method, fd);
    } finally {
      files.closeSync(fd);
    }
  } catch (err) {
    unlock();
    throw err;
  }
  return heldLock(files, method, lockPath, reason, (file) => {
    try {
      const wfd = files.openSync(file, fs.constants.O_RDWR);
      markReleased(files, wfd);
      files.closeSync(wfd);
    } catch {
      // The marker is informational only.
    }
    unlock();
  });
}

/**
 * The DirLock of every method: registers the directory as held by this process, follows a
 * rename of its directory, and releases once through `unlockFile`.
 */
function heldLock(
  files: FileSystem,
  method: LockMethod,
  lockPath: string,
  reason: string,
  unlockFile: (file: string) => void,
): DirLock {
  const heldByThisProcess = heldBy(files);
  // A rename (relocate) keeps both identities: the registration stays valid as it is.
  const dirId = fileIdentity(files, path.dirname(lockPath));
  const lockFileId = fileIdentity(files, lockPath);
  if (dirId === null || lockFileId === null) throw new Error(`internal: lock file ${lockPath} vanished right after it was locked`);
  // An entry already there is of a directory deleted while locked whose inode was reused
  // (heldHere saw a different lock file): replace it.
  const entry = { lockFileId };
  heldByThisProcess.set(dirId, entry);
  let released = false;
  return {
    method,
    path: lockPath,
    reason,
    relocate(newDir: string) {
      (this as { path: string }).path = lockPath = path.join(newDir, LOCK_FILE_NAME);
    },
    release() {
      if (released) return;
      released = true;
      if (heldByThisProcess.get(dirId) === entry) heldByThisProcess.delete(dirId);
      unlockFile(lockPath);
    },
  };
}

/** `files` is real (checked by the caller): fs-ext flocks its fd. */
function lockFsExt(files: FileSystem, dir: string, lockPath: string, fsExt: FsExt, reason: string): DirLock {
  const fd = files.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    try {
      fsExt.flockSync(fd, 'exnb');
    } catch (err) {
      if (errnoCode(err) === 'EAGAIN' || errnoCode(err) === 'EWOULDBLOCK') {
        throw lockedByFlockError(files, dir, lockPath, 'fs-ext');
      }
      throw err;
    }
    try {
      claimAfterFlock(files, dir, lockPath, 'fs-ext', fd);
    } catch (err) {
      fsExt.flockSync(fd, 'un');
      throw err;
    }
  } catch (err) {
    files.closeSync(fd);
    throw err;
  }
  return heldLock(files, 'fs-ext', lockPath, reason, () => {
    markReleased(files, fd);
    try {
      fsExt.flockSync(fd, 'un');
    } finally {
      files.closeSync(fd); // closing drops the flock even if LOCK_UN failed
    }
  });
}

/** An empty or unreadable pidfile younger than this is a creator between open and write. */
const PIDFILE_CREATION_GRACE_MS = 10_000;

function lockPidfile(files: FileSystem, dir: string, lockPath: string, reason: string, warn?: (m: string) => void): DirLock {
  for (let attempt = 0; attempt < 8; attempt++) {
    let fd: number | null = null;
    try {
      fd = files.openSync(lockPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
    if (fd !== null) {
      try {
        files.writeSync(fd, holderLine('pidfile'), 0);
        files.fsyncSync(fd);
      } finally {
        files.closeSync(fd);
      }
      return pidfileLock(files, lockPath, reason);
    }

    // The file exists: live owner → refuse; dead owner → take over.
    let inode: number;
    try {
      inode = files.statSync(lockPath).ino;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue; // released meanwhile: try again
      throw err;
    }
    const text = readHolderText(files, lockPath);
    const holder = parseHolder(text);
    if (holder === null) {
      const ageMs = Date.now() - safeMtimeMs(files, lockPath);
      if (ageMs < PIDFILE_CREATION_GRACE_MS) {
        throw new WalLockedError(dir, 'a process that is just creating the lock file', 'pidfile');
      }
    } else if (holder !== 'released') {
      const ours = holder.pid === process.pid && holder.start === (ownStart || '-');
      if (ours ? heldHere(files, dir) : isAlive(holder)) {
        throw new WalLockedError(dir, describe(holder), holder.method);
      }
    }

    // Stale. Move it aside under a unique name, then check we moved exactly the inode we judged:
    // if another process took the lock over in between, we moved ITS fresh file — put it back.
    const aside = `${lockPath}.stale-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
    try {
      files.renameSync(lockPath, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') continue;
      throw err;
    }
    if (files.statSync(aside).ino !== inode) {
      const movedHolder = parseHolder(readHolderText(files, aside));
      try {
        files.linkSync(aside, lockPath);
      } catch {
        // Someone created a new lock file meanwhile; it is theirs now.
      }
      files.unlinkSync(aside);
      throw new WalLockedError(
        dir,
        movedHolder !== null && movedHolder !== 'released' ? describe(movedHolder) : null,
        'pidfile',
      );
    }
    files.unlinkSync(aside);
    warn?.(
      `raftkv: took over stale WAL lock ${lockPath} (${holder === null ? 'unreadable contents' : holder === 'released' ? 'released' : `owner pid ${holder.pid} is gone`})`,
    );
  }
  throw new WalLockedError(dir, 'processes repeatedly racing for the lock file', 'pidfile');
}

function safeMtimeMs(files: FileSystem, file: string): number {
  try {
    return files.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function pidfileLock(files: FileSystem, lockPath: string, reason: string): DirLock {
  const inode = files.statSync(lockPath).ino;
  return heldLock(files, 'pidfile', lockPath, reason, (file) => {
    // Remove it only if it is still our file (a takeover by someone else must stay intact).
    try {
      const st = files.statSync(file);
      const holder = parseHolder(readHolderText(files, file));
      if (st.ino === inode && holder !== null && holder !== 'released' && holder.pid === process.pid) {
        files.unlinkSync(file);
      }
    } catch {
      // Already gone.
    }
  });
}
