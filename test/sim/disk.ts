/**
 * SimDisk: an in-memory disk with a deterministic power-loss model, for running the real WAL
 * and snapshotter code (src/wal/file-system.ts's FileSystem) inside the simulator.
 *
 * Model (POSIX-adversarial, ext4-like where POSIX is silent):
 *  - Every file has durable content and a list of pending (unsynced) data operations: writes
 *    and size changes. Reads see the latest content (the page cache).
 *  - fdatasync/fsync of a file makes the data operations issued before it durable, when it
 *    completes. It does NOT make the file's directory entry durable (a new file needs a
 *    directory fsync). An fd opened with O_DSYNC makes each of its writes durable on completion.
 *  - create, mkdir, rename, unlink, rmdir, link are pending namespace operations until an fsync
 *    of a directory they touch (a rename: either side). Consistency: an operation is durable
 *    (or kept at a crash) only together with every earlier operation on the same directory
 *    entry, so each name ends with one of its historical values and a rename either happened
 *    entirely or not at all.
 *  - crash() is a power loss: each pending write is kept whole, lost, or torn (each 512-byte
 *    sector of it kept or lost independently, in no order); lost sectors read back as their
 *    previous durable content (e.g. the zeros of preallocation). Each pending namespace
 *    operation is kept or lost ('independent', default) or a random prefix of them survives
 *    ('prefix': a journaling filesystem). Files no durable entry reaches are gone. Every mount
 *    (process) dies.
 *
 * A process sees the disk through a mount (`disk.mount()`, a FileSystem). When the disk crashes
 * or the process is killed, its mount dies: its synchronous calls throw SimProcessDeadError,
 * its asynchronous ones never complete (the process is gone; nothing after the crash runs
 * any I/O or gets an answer). A restarted process mounts again.
 *
 * Determinism: every decision comes from the injected PRNG; asynchronous operations take effect
 * when issued (a completed fdatasync: when it completes) and complete when the injected
 * SimIoScheduler says so (default: the next microtask, in issue order). Every operation of
 * every mount is one numbered "I/O step"; `onOp` sees each one before it takes effect and may
 * crash the disk there (the operation then never happens) or fail it with an errno.
 */
import { constants as fsConstants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  ErrnoCallback,
  FileStat,
  FileSystem,
  MkdirOptions,
  OpenFlags,
  RemoveOptions,
  WriteCallback,
} from '../../src/wal/file-system.js';

export const SECTOR_BYTES = 512;

/** The PRNG the disk draws its crash decisions from (test/sim/prng.ts's SimRandom fits). */
export interface DiskRandom {
  /** Uniform in [0, 1). */
  next(): number;
}

export type SimOpKind =
  | 'open'
  | 'close'
  | 'fstat'
  | 'read'
  | 'write'
  | 'writev'
  | 'fdatasync'
  | 'fsync'
  /** fsync/fdatasync of a directory's fd. */
  | 'dirsync'
  | 'ftruncate'
  | 'readFile'
  | 'rename'
  | 'rm'
  | 'mkdir'
  | 'readdir'
  | 'stat'
  | 'exists'
  | 'rmdir'
  | 'unlink'
  | 'link'
  | 'statfs'
  | 'flock';

export interface SimOp {
  /** 1-based, counted over every mount of this disk. */
  readonly step: number;
  readonly kind: SimOpKind;
  /** The mount (process) issuing it. */
  readonly mount: string;
  /** The path it acts on (for fd operations: the path the fd was opened with). */
  readonly path: string;
  /** rename/link: the second path. */
  readonly target?: string;
  readonly fd?: number;
  /** write/writev/read: file offset and byte count; ftruncate: the new size (length). */
  readonly position?: number;
  readonly length?: number;
  /** true for the *Sync calls, which complete at once. */
  readonly synchronous: boolean;
}

/** Errors a fault can inject. */
export type SimErrno = 'EIO' | 'ENOSPC' | 'EINVAL' | 'EROFS' | 'EDQUOT' | 'EBADF' | 'EPERM';

export interface SimFaultRule {
  kinds: readonly SimOpKind[];
  match?: (op: SimOp) => boolean;
  code: SimErrno;
  /** Let this many matching ops through first. Default 0. */
  skip?: number;
  /** How many ops to fail. Default 1; Infinity for every one. */
  times?: number;
}

/** Decides when an issued asynchronous operation completes. */
export interface SimIoScheduler {
  /** Called once per asynchronous op, synchronously when it is issued (its effect already
   * applied); call `settle` when its callback/promise should fire. Settling an op of a dead
   * mount does nothing. */
  schedule(op: SimOp, settle: () => void): void;
}

/** Completes every op on the next microtask, in issue order. */
export const microtaskScheduler: SimIoScheduler = {
  schedule(_op, settle) {
    queueMicrotask(settle);
  },
};

/**
 * Holds every op until the simulator settles it (e.g. at a virtual time of its choosing, or a
 * random pending one first).
 */
export class ManualIoScheduler implements SimIoScheduler {
  private readonly queue: { op: SimOp; settle: () => void }[] = [];

  schedule(op: SimOp, settle: () => void): void {
    this.queue.push({ op, settle });
  }

  get pending(): readonly SimOp[] {
    return this.queue.map((q) => q.op);
  }

  get size(): number {
    return this.queue.length;
  }

  /** Complete the `index`-th pending op (issue order). */
  settle(index = 0): SimOp {
    const [entry] = this.queue.splice(index, 1);
    if (entry === undefined) throw new RangeError(`no pending op #${index} (${this.queue.length} pending)`);
    entry.settle();
    return entry.op;
  }

  /** Complete everything pending now (not what those completions issue). */
  settleAll(): number {
    const all = this.queue.splice(0, this.queue.length);
    for (const entry of all) entry.settle();
    return all.length;
  }

  /** Forget every pending op (e.g. after a crash: they can never complete anyway). */
  clear(): void {
    this.queue.length = 0;
  }
}

export type NamespaceCrashModel = 'independent' | 'prefix';

export interface SimDiskOptions {
  random: DiskRandom;
  scheduler?: SimIoScheduler;
  /** Bytes of file content (sum of file sizes) the disk holds; growth past it fails ENOSPC. */
  capacityBytes?: number;
  /** 'EINVAL': directory fsync fails with EINVAL, as on VirtualBox shared folders. */
  dirSync?: 'supported' | 'EINVAL';
  /** What filesystemType() reports. Default 'simfs' ('vboxsf' with dirSync 'EINVAL'). */
  filesystemType?: string;
  namespaceCrash?: NamespaceCrashModel;
  /** Sees every op before it takes effect; may call disk.crash() (the op then never happens)
   * or return an errno to fail it. */
  onOp?: (op: SimOp) => SimErrno | void;
  /** mtime source for stat. Default: always 0. */
  now?: () => number;
}

export type DataCrashPolicy = 'random' | 'keep' | 'lose' | 'tear';
export type NamespaceCrashPolicy = 'random' | 'keep' | 'lose';

export interface CrashOptions {
  /** What happens to each unsynced write. Default 'random' (whole, lost or torn, 1/3 each). */
  data?: DataCrashPolicy;
  namespace?: NamespaceCrashPolicy;
}

export interface CrashReport {
  writesKept: number;
  writesLost: number;
  writesTorn: number;
  /** Sectors of torn writes that were kept / lost. */
  sectorsKept: number;
  sectorsLost: number;
  truncatesKept: number;
  truncatesLost: number;
  namespaceKept: string[];
  namespaceLost: string[];
}

/** Thrown by synchronous calls of a mount whose process died (crash or kill). */
export class SimProcessDeadError extends Error {
  readonly code = 'ESIMDEAD';
  constructor(mount: string, what: string) {
    super(`simulated process '${mount}' is dead (disk crashed or process killed): ${what}`);
    this.name = 'SimProcessDeadError';
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EEXIST: 'file already exists',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  ENOTEMPTY: 'directory not empty',
  EBADF: 'bad file descriptor',
  EINVAL: 'invalid argument',
  EIO: 'i/o error',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EDQUOT: 'disk quota exceeded',
  EPERM: 'operation not permitted',
  ELOCKED: 'resource temporarily unavailable (locked)',
};

const SYSCALL_OF: Record<SimOpKind, string> = {
  open: 'open',
  close: 'close',
  fstat: 'fstat',
  read: 'read',
  write: 'write',
  writev: 'write',
  fdatasync: 'fdatasync',
  fsync: 'fsync',
  dirsync: 'fsync',
  ftruncate: 'ftruncate',
  readFile: 'open',
  rename: 'rename',
  rm: 'rm',
  mkdir: 'mkdir',
  readdir: 'scandir',
  stat: 'stat',
  exists: 'access',
  rmdir: 'rmdir',
  unlink: 'unlink',
  link: 'link',
  statfs: 'statfs',
  flock: 'flock',
};

/** An error shaped like node:fs's (code, errno, syscall, path). */
export function simErrnoError(code: string, syscall: string, file?: string, dest?: string): NodeJS.ErrnoException {
  const text = ERRNO_TEXT[code] ?? code.toLowerCase();
  const where = file === undefined ? '' : dest === undefined ? ` '${file}'` : ` '${file}' -> '${dest}'`;
  const err: NodeJS.ErrnoException = new Error(`${code}: ${text}, ${syscall}${where}`);
  err.code = code;
  const errno = (os.constants.errno as Record<string, number | undefined>)[code];
  if (errno !== undefined) err.errno = -errno;
  err.syscall = syscall;
  if (file !== undefined) err.path = file;
  if (dest !== undefined) (err as NodeJS.ErrnoException & { dest?: string }).dest = dest;
  return err;
}

// ---------------------------------------------------------------------------------------------
// Content

/** A growable byte array with a logical size (bytes past it are zero). */
class Bytes {
  private data: Uint8Array;
  size: number;

  constructor(data: Uint8Array = new Uint8Array(0), size = data.length) {
    this.data = data;
    this.size = size;
  }

  clone(): Bytes {
    return new Bytes(this.data.slice(0, this.size), this.size);
  }

  private reserve(n: number): void {
    if (n <= this.data.length) return;
    const grown = new Uint8Array(Math.max(n, this.data.length * 2, 4096));
    grown.set(this.data.subarray(0, this.size));
    this.data = grown;
  }

  write(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    this.reserve(end);
    if (offset > this.size) this.data.fill(0, this.size, offset);
    this.data.set(bytes, offset);
    if (end > this.size) this.size = end;
  }

  truncate(size: number): void {
    if (size > this.size) {
      this.reserve(size);
      this.data.fill(0, this.size, size);
    }
    this.size = size;
  }

  read(offset: number, length: number): Uint8Array {
    if (offset >= this.size) return new Uint8Array(0);
    return this.data.subarray(offset, Math.min(this.size, offset + length));
  }

  all(): Uint8Array {
    return this.data.subarray(0, this.size);
  }
}

type DataOp =
  | { seq: number; kind: 'write'; offset: number; bytes: Uint8Array }
  | { seq: number; kind: 'truncate'; size: number };

interface FileInode {
  kind: 'file';
  id: number;
  current: Bytes;
  durable: Bytes;
  pending: DataOp[];
  mtimeMs: number;
  /** Volatile links (entries naming it now). */
  nlink: number;
  openCount: number;
}

interface DirInode {
  kind: 'dir';
  id: number;
  entries: Map<string, number>;
  durableEntries: Map<string, number>;
  mtimeMs: number;
  openCount: number;
}

type Inode = FileInode | DirInode;

/** One change to a directory entry: name → `to` (null: removed if it still names `from`). */
interface EntryChange {
  dir: number;
  name: string;
  from: number | null;
  to: number | null;
}

interface NamespaceOp {
  seq: number;
  what: string;
  changes: EntryChange[];
}

interface OpenFile {
  ino: number;
  path: string;
  readable: boolean;
  writable: boolean;
  dsync: boolean;
}

const ROOT = 1;

function parseFlags(flags: OpenFlags): number {
  if (typeof flags === 'number') return flags;
  const C = fsConstants;
  switch (flags) {
    case 'r':
      return C.O_RDONLY;
    case 'r+':
      return C.O_RDWR;
    case 'w':
      return C.O_WRONLY | C.O_CREAT | C.O_TRUNC;
    case 'wx':
    case 'xw':
      return C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_EXCL;
    case 'w+':
      return C.O_RDWR | C.O_CREAT | C.O_TRUNC;
    case 'wx+':
    case 'xw+':
      return C.O_RDWR | C.O_CREAT | C.O_TRUNC | C.O_EXCL;
    case 'a':
      return C.O_WRONLY | C.O_CREAT | C.O_APPEND;
    default:
      throw new RangeError(`SimDisk: unsupported open flags '${flags}'`);
  }
}

function splitPath(p: string): string[] {
  return path.posix.resolve('/', p).split('/').filter((c) => c.length > 0);
}

function concat(buffers: readonly NodeJS.ArrayBufferView[]): Uint8Array {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), at);
    at += b.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export class SimDisk {
  private readonly random: DiskRandom;
  private readonly scheduler: SimIoScheduler;
  private readonly inodes = new Map<number, Inode>();
  private nextIno = ROOT + 1;
  private nextSeq = 1;
  private pendingNamespace: NamespaceOp[] = [];
  private readonly mounts = new Set<SimMount>();
  private readonly locks = new Map<number, SimMount>();
  private faults: (SimFaultRule & { seen: number; fired: number })[] = [];
  private stepCount = 0;
  private crashCount = 0;
  private mountCount = 0;
  private readonly now: () => number;
  readonly namespaceCrash: NamespaceCrashModel;
  readonly filesystemTypeName: string;
  /** Settable: growth of the total file size past this fails ENOSPC. */
  capacityBytes: number;
  dirSync: 'supported' | 'EINVAL';
  onOp: ((op: SimOp) => SimErrno | void) | undefined;

  constructor(options: SimDiskOptions) {
    this.random = options.random;
    this.scheduler = options.scheduler ?? microtaskScheduler;
    this.capacityBytes = options.capacityBytes ?? Number.POSITIVE_INFINITY;
    this.dirSync = options.dirSync ?? 'supported';
    this.filesystemTypeName = options.filesystemType ?? (this.dirSync === 'EINVAL' ? 'vboxsf' : 'simfs');
    this.namespaceCrash = options.namespaceCrash ?? 'independent';
    this.onOp = options.onOp;
    this.now = options.now ?? (() => 0);
    this.inodes.set(ROOT, { kind: 'dir', id: ROOT, entries: new Map(), durableEntries: new Map(), mtimeMs: 0, openCount: 0 });
  }

  /** I/O steps issued so far (over every mount). */
  get steps(): number {
    return this.stepCount;
  }

  get crashes(): number {
    return this.crashCount;
  }

  /** A new process's view of the disk. */
  mount(name = `mount-${++this.mountCount}`): SimMount {
    const m = new SimMount(this, name);
    this.mounts.add(m);
    return m;
  }

  /** Fail matching ops with `code` (see SimFaultRule). */
  injectFault(rule: SimFaultRule): void {
    this.faults.push({ ...rule, seen: 0, fired: 0 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** The process(es) using the disk die; the page cache survives (nothing is lost). */
  killProcesses(): void {
    for (const m of this.mounts) m.die();
    this.mounts.clear();
    this.locks.clear();
    for (const inode of this.inodes.values()) inode.openCount = 0;
    this.collectGarbage(false);
  }

  /** Power loss (see the file comment). Every mount dies. */
  crash(options: CrashOptions = {}): CrashReport {
    this.crashCount++;
    for (const m of this.mounts) m.die();
    this.mounts.clear();
    this.locks.clear();
    const report: CrashReport = {
      writesKept: 0,
      writesLost: 0,
      writesTorn: 0,
      sectorsKept: 0,
      sectorsLost: 0,
      truncatesKept: 0,
      truncatesLost: 0,
      namespaceKept: [],
      namespaceLost: [],
    };
    for (const inode of this.inodes.values()) {
      inode.openCount = 0;
      if (inode.kind === 'file') this.crashFile(inode, options.data ?? 'random', report);
    }
    this.crashNamespace(options.namespace ?? 'random', report);
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'dir') inode.entries = new Map(inode.durableEntries);
    }
    this.collectGarbage(true);
    return report;
  }

  /** Background writeback: everything pending becomes durable (a `sync` of the whole disk). */
  flushAll(): void {
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'file') this.makeDurable(inode, Number.POSITIVE_INFINITY);
    }
    for (const op of this.pendingNamespace) this.applyDurable(op);
    this.pendingNamespace = [];
  }

  // --- introspection for tests (no I/O step, no hooks) ----------------------------------------

  /** Current content (what a read sees now), or null when the path is not a file. */
  fileContent(p: string): Uint8Array | null {
    const inode = this.lookupQuiet(p);
    return inode?.kind === 'file' ? inode.current.all().slice() : null;
  }

  /** Names in a directory now, sorted; null when not a directory. */
  listDir(p: string): string[] | null {
    const inode = this.lookupQuiet(p);
    return inode?.kind === 'dir' ? [...inode.entries.keys()].sort() : null;
  }

  exists(p: string): boolean {
    return this.lookupQuiet(p) !== null;
  }

  /** Unsynced data operations of a file (0 when fully durable). */
  pendingDataOps(p: string): number {
    const inode = this.lookupQuiet(p);
    return inode?.kind === 'file' ? inode.pending.length : 0;
  }

  /** Namespace operations not yet made durable by a directory fsync. */
  get pendingNamespaceOps(): readonly string[] {
    return this.pendingNamespace.map((op) => op.what);
  }

  /** Sum of the sizes of the live files. */
  get usedBytes(): number {
    let used = 0;
    for (const inode of this.inodes.values()) {
      if (inode.kind === 'file' && (inode.nlink > 0 || inode.openCount > 0)) used += inode.current.size;
    }
    return used;
  }

  // --- used by SimMount -------------------------------------------------------------------------

  /** @internal Count the step, run the hooks; returns the op and an injected errno, if any. */
  beginOp(mount: SimMount, fields: Omit<SimOp, 'step' | 'mount'>): { op: SimOp; fault: SimErrno | null } {
    const op: SimOp = { step: ++this.stepCount, mount: mount.mountName, ...fields };
    const verdict = this.onOp?.(op);
    if (verdict) return { op, fault: verdict };
    for (const rule of this.faults) {
      if (!rule.kinds.includes(op.kind)) continue;
      if (rule.match !== undefined && !rule.match(op)) continue;
      rule.seen++;
      if (rule.seen <= (rule.skip ?? 0)) continue;
      if (rule.fired >= (rule.times ?? 1)) continue;
      rule.fired++;
      return { op, fault: rule.code };
    }
    return { op, fault: null };
  }

  /** @internal */
  schedule(op: SimOp, settle: () => void): void {
    this.scheduler.schedule(op, settle);
  }

  /** @internal */
  inode(id: number): Inode {
    const inode = this.inodes.get(id);
    if (inode === undefined) throw new Error(`SimDisk internal: inode ${id} is gone`);
    return inode;
  }

  /** @internal Resolve a path on the current namespace. */
  lookup(p: string, syscall: string): Inode {
    let inode: Inode = this.inode(ROOT);
    for (const name of splitPath(p)) {
      if (inode.kind !== 'dir') throw simErrnoError('ENOTDIR', syscall, p);
      const next = inode.entries.get(name);
      if (next === undefined) throw simErrnoError('ENOENT', syscall, p);
      inode = this.inode(next);
    }
    return inode;
  }

  /** @internal The parent directory and the last name of `p`. */
  parentOf(p: string, syscall: string): { dir: DirInode; name: string } {
    const parts = splitPath(p);
    const name = parts.pop();
    if (name === undefined) throw simErrnoError('EINVAL', syscall, p);
    const dir = this.lookup('/' + parts.join('/'), syscall);
    if (dir.kind !== 'dir') throw simErrnoError('ENOTDIR', syscall, p);
    return { dir, name };
  }

  /** @internal */
  createFile(dir: DirInode, name: string, p: string): FileInode {
    const inode: FileInode = {
      kind: 'file',
      id: this.nextIno++,
      current: new Bytes(),
      durable: new Bytes(),
      pending: [],
      mtimeMs: this.now(),
      nlink: 0,
      openCount: 0,
    };
    this.inodes.set(inode.id, inode);
    this.link(dir, name, inode, `create ${p}`);
    return inode;
  }

  /** @internal */
  createDir(dir: DirInode, name: string, p: string): DirInode {
    const inode: DirInode = { kind: 'dir', id: this.nextIno++, entries: new Map(), durableEntries: new Map(), mtimeMs: this.now(), openCount: 0 };
    this.inodes.set(inode.id, inode);
    this.link(dir, name, inode, `mkdir ${p}`);
    return inode;
  }

  /** @internal Point dir/name at inode (replacing what it named). */
  link(dir: DirInode, name: string, inode: Inode, what: string): void {
    const replaced = dir.entries.get(name);
    if (replaced !== undefined) this.dropLink(replaced);
    dir.entries.set(name, inode.id);
    if (inode.kind === 'file') inode.nlink++;
    this.recordNamespace(what, [{ dir: dir.id, name, from: replaced ?? null, to: inode.id }]);
  }

  /** @internal */
  unlink(dir: DirInode, name: string, what: string): void {
    const id = dir.entries.get(name);
    if (id === undefined) throw new Error(`SimDisk internal: unlink of a missing entry ${name}`);
    dir.entries.delete(name);
    this.dropLink(id);
    this.recordNamespace(what, [{ dir: dir.id, name, from: id, to: null }]);
  }

  /** @internal Atomic rename of an entry (the target, if any, is replaced). */
  rename(from: { dir: DirInode; name: string }, to: { dir: DirInode; name: string }, what: string): void {
    const id = from.dir.entries.get(from.name);
    if (id === undefined) throw new Error(`SimDisk internal: rename of a missing entry ${from.name}`);
    if (from.dir === to.dir && from.name === to.name) return;
    const replaced = to.dir.entries.get(to.name);
    if (replaced !== undefined) this.dropLink(replaced);
    from.dir.entries.delete(from.name);
    to.dir.entries.set(to.name, id);
    this.recordNamespace(what, [
      { dir: from.dir.id, name: from.name, from: id, to: null },
      { dir: to.dir.id, name: to.name, from: replaced ?? null, to: id },
    ]);
  }

  /** @internal Append a data op; it shows in the current content at once. */
  applyData(inode: FileInode, op: { kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; size: number }): number {
    const seq = this.nextSeq++;
    if (op.kind === 'write') inode.current.write(op.offset, op.bytes);
    else inode.current.truncate(op.size);
    inode.pending.push({ ...op, seq });
    inode.mtimeMs = this.now();
    return seq;
  }

  /** @internal Throws ENOSPC if growing `inode` to `newSize` exceeds the capacity. */
  checkSpace(inode: FileInode, newSize: number, syscall: string, p: string): void {
    const growth = newSize - inode.current.size;
    if (growth > 0 && this.usedBytes + growth > this.capacityBytes) throw simErrnoError('ENOSPC', syscall, p);
  }

  /** @internal The last data op seq issued so far (what a sync issued now covers). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** @internal Pending data ops up to `uptoSeq` become durable (in order). */
  makeDurable(inode: FileInode, uptoSeq: number, onlySeq?: number): void {
    const keep: DataOp[] = [];
    for (const op of inode.pending) {
      const covered = onlySeq !== undefined ? op.seq === onlySeq : op.seq <= uptoSeq;
      if (!covered) {
        keep.push(op);
        continue;
      }
      if (op.kind === 'write') inode.durable.write(op.offset, op.bytes);
      else inode.durable.truncate(op.size);
    }
    inode.pending = keep;
  }

  /** @internal fsync of directory `dir`: its namespace ops (and those they depend on) become durable. */
  syncDirectory(dir: DirInode): void {
    if (this.namespaceCrash === 'prefix') {
      // A journal commit: everything issued so far.
      for (const op of this.pendingNamespace) this.applyDurable(op);
      this.pendingNamespace = [];
      return;
    }
    const selected = this.dependencyClosure((op) => op.changes.some((c) => c.dir === dir.id));
    const rest: NamespaceOp[] = [];
    this.pendingNamespace.forEach((op, i) => {
      if (selected[i]) this.applyDurable(op);
      else rest.push(op);
    });
    this.pendingNamespace = rest;
  }

  /** @internal */
  lockHolder(ino: number): SimMount | undefined {
    return this.locks.get(ino);
  }

  /** @internal */
  setLock(ino: number, holder: SimMount | null): void {
    if (holder === null) this.locks.delete(ino);
    else this.locks.set(ino, holder);
  }

  // --- private ----------------------------------------------------------------------------------

  private lookupQuiet(p: string): Inode | null {
    try {
      return this.lookup(p, 'lookup');
    } catch {
      return null;
    }
  }

  private dropLink(id: number): void {
    const inode = this.inode(id);
    if (inode.kind === 'file') inode.nlink--;
  }

  private recordNamespace(what: string, changes: EntryChange[]): void {
    this.pendingNamespace.push({ seq: this.nextSeq++, what, changes });
  }

  private applyDurable(op: NamespaceOp): void {
    for (const change of op.changes) {
      const dir = this.inodes.get(change.dir);
      if (dir === undefined || dir.kind !== 'dir') continue;
      if (change.to !== null) dir.durableEntries.set(change.name, change.to);
      else if (dir.durableEntries.get(change.name) === change.from) dir.durableEntries.delete(change.name);
    }
  }

  /**
   * Marks the pending ops `seed` selects plus, transitively, every earlier op on a directory
   * entry a marked op touches (an entry's history is never applied out of order).
   */
  private dependencyClosure(seed: (op: NamespaceOp, index: number) => boolean): boolean[] {
    const marked = new Array<boolean>(this.pendingNamespace.length).fill(false);
    const forced = new Set<string>();
    for (let i = this.pendingNamespace.length - 1; i >= 0; i--) {
      const op = this.pendingNamespace[i]!;
      const slots = op.changes.map((c) => `${c.dir}/${c.name}`);
      if (seed(op, i) || slots.some((s) => forced.has(s))) {
        marked[i] = true;
        for (const s of slots) forced.add(s);
      }
    }
    return marked;
  }

  private coin(): boolean {
    return this.random.next() < 0.5;
  }

  private crashFile(inode: FileInode, policy: DataCrashPolicy, report: CrashReport): void {
    if (inode.pending.length === 0) {
      inode.current = inode.durable.clone();
      return;
    }
    const result = inode.durable.clone();
    for (const op of inode.pending) {
      if (op.kind === 'truncate') {
        const keep = policy === 'keep' || (policy !== 'lose' && this.coin());
        if (keep) result.truncate(op.size);
        if (keep) report.truncatesKept++;
        else report.truncatesLost++;
        continue;
      }
      let outcome: 'keep' | 'lose' | 'tear';
      if (policy === 'random') {
        const r = this.random.next();
        outcome = r < 1 / 3 ? 'keep' : r < 2 / 3 ? 'lose' : 'tear';
      } else {
        outcome = policy;
      }
      if (outcome === 'keep') {
        result.write(op.offset, op.bytes);
        report.writesKept++;
      } else if (outcome === 'lose') {
        report.writesLost++;
      } else {
        report.writesTorn++;
        const end = op.offset + op.bytes.length;
        for (let sector = Math.floor(op.offset / SECTOR_BYTES) * SECTOR_BYTES; sector < end; sector += SECTOR_BYTES) {
          const from = Math.max(sector, op.offset);
          const to = Math.min(sector + SECTOR_BYTES, end);
          if (this.coin()) {
            result.write(from, op.bytes.subarray(from - op.offset, to - op.offset));
            report.sectorsKept++;
          } else {
            report.sectorsLost++;
          }
        }
      }
    }
    inode.durable = result;
    inode.current = result.clone();
    inode.pending = [];
  }

  private crashNamespace(policy: NamespaceCrashPolicy, report: CrashReport): void {
    const ops = this.pendingNamespace;
    let kept: boolean[];
    if (policy === 'keep') kept = ops.map(() => true);
    else if (policy === 'lose') kept = ops.map(() => false);
    else if (this.namespaceCrash === 'prefix') {
      const survivors = Math.floor(this.random.next() * (ops.length + 1));
      kept = ops.map((_, i) => i < survivors);
    } else {
      kept = this.dependencyClosure(() => this.coin());
    }
    ops.forEach((op, i) => {
      if (kept[i]) {
        this.applyDurable(op);
        report.namespaceKept.push(op.what);
      } else {
        report.namespaceLost.push(op.what);
      }
    });
    this.pendingNamespace = [];
  }

  /**
   * Drop inodes nothing reaches: after a crash, from the durable tree; otherwise from the current
   * tree, keeping what pending namespace ops or open files may still need.
   */
  private collectGarbage(afterCrash: boolean): void {
    const reachable = new Set<number>([ROOT]);
    const walk = (id: number, durable: boolean): void => {
      const inode = this.inodes.get(id);
      if (inode === undefined || inode.kind !== 'dir') return;
      for (const child of (durable ? inode.durableEntries : inode.entries).values()) {
        if (reachable.has(child)) continue;
        reachable.add(child);
        walk(child, durable);
      }
    };
    walk(ROOT, true);
    if (!afterCrash) {
      walk(ROOT, false);
      for (const op of this.pendingNamespace) for (const c of op.changes) for (const id of [c.from, c.to]) if (id !== null) reachable.add(id);
      // Their subtrees too (a renamed directory whose rename is pending).
      for (const id of [...reachable]) walk(id, false);
    }
    for (const id of [...this.inodes.keys()]) if (!reachable.has(id)) this.inodes.delete(id);
    if (afterCrash) {
      for (const inode of this.inodes.values()) if (inode.kind === 'file') inode.nlink = 0;
      for (const inode of this.inodes.values()) {
        if (inode.kind !== 'dir') continue;
        for (const child of inode.entries.values()) {
          const c = this.inodes.get(child);
          if (c?.kind === 'file') c.nlink++;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** One process's view of a SimDisk: a FileSystem. */
export class SimMount implements FileSystem {
  readonly real = false;
  readonly name: string;
  private alive = true;
  private readonly fds = new Map<number, OpenFile>();
  private nextFd = 3;
  private readonly heldLocks = new Set<number>();

  constructor(
    private readonly disk: SimDisk,
    readonly mountName: string,
  ) {
    this.name = `simdisk:${mountName}`;
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** @internal */
  die(): void {
    this.alive = false;
    this.fds.clear();
    this.heldLocks.clear();
  }

  // --- plumbing -------------------------------------------------------------------------------

  /** Run an async op: hooks now, effect now, completion when the scheduler settles it. */
  private async<T>(fields: Omit<SimOp, 'step' | 'mount' | 'synchronous'>, effect: () => T, onSettle?: (value: T) => void): Promise<T> {
    if (!this.alive) return new Promise<T>(() => undefined);
    const { op, fault } = this.disk.beginOp(this, { ...fields, synchronous: false });
    if (!this.alive) return new Promise<T>(() => undefined);
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      if (fault !== null) throw simErrnoError(fault, SYSCALL_OF[op.kind], op.path);
      outcome = { ok: true, value: effect() };
    } catch (error) {
      outcome = { ok: false, error };
    }
    return new Promise<T>((resolve, reject) => {
      this.disk.schedule(op, () => {
        if (!this.alive) return;
        if (outcome.ok) {
          onSettle?.(outcome.value);
          resolve(outcome.value);
        } else {
          reject(outcome.error);
        }
      });
    });
  }

  private sync<T>(fields: Omit<SimOp, 'step' | 'mount' | 'synchronous'>, effect: () => T): T {
    if (!this.alive) throw new SimProcessDeadError(this.mountName, `${fields.kind} ${fields.path}`);
    const { op, fault } = this.disk.beginOp(this, { ...fields, synchronous: true });
    if (!this.alive) throw new SimProcessDeadError(this.mountName, `${fields.kind} ${fields.path} (crashed at step ${op.step})`);
    if (fault !== null) throw simErrnoError(fault, SYSCALL_OF[op.kind], op.path);
    return effect();
  }

  private fdPath(fd: number): string {
    return this.fds.get(fd)?.path ?? `<fd ${fd}>`;
  }

  private file(fd: number, syscall: string): OpenFile {
    const f = this.fds.get(fd);
    if (f === undefined) throw simErrnoError('EBADF', syscall);
    return f;
  }

  private fileInode(f: OpenFile, syscall: string): FileInode {
    const inode = this.disk.inode(f.ino);
    if (inode.kind !== 'file') throw simErrnoError('EISDIR', syscall, f.path);
    return inode;
  }

  private doOpen(p: string, flags: OpenFlags): number {
    const C = fsConstants;
    const bits = parseFlags(flags);
    const access = bits & 3;
    if (bits & C.O_DIRECT) throw simErrnoError('EINVAL', 'open', p);
    let inode: Inode;
    const isRoot = splitPath(p).length === 0;
    const parent = isRoot ? null : this.disk.parentOf(p, 'open');
    const existing = parent === null ? 1 : parent.dir.entries.get(parent.name);
    if (existing === undefined) {
      if (!(bits & C.O_CREAT) || parent === null) throw simErrnoError('ENOENT', 'open', p);
      inode = this.disk.createFile(parent.dir, parent.name, p);
    } else {
      if (bits & C.O_CREAT && bits & C.O_EXCL) throw simErrnoError('EEXIST', 'open', p);
      inode = this.disk.inode(existing);
      if (inode.kind === 'dir' && (access !== C.O_RDONLY || bits & C.O_CREAT)) throw simErrnoError('EISDIR', 'open', p);
      if (inode.kind === 'file' && bits & C.O_TRUNC && access !== C.O_RDONLY && inode.current.size > 0) {
        this.disk.applyData(inode, { kind: 'truncate', size: 0 });
      }
    }
    inode.openCount++;
    const fd = this.nextFd++;
    this.fds.set(fd, {
      ino: inode.id,
      path: path.posix.resolve('/', p),
      readable: access === C.O_RDONLY || access === C.O_RDWR,
      writable: access === C.O_WRONLY || access === C.O_RDWR,
      dsync: (bits & C.O_DSYNC) !== 0 || (bits & C.O_SYNC) === C.O_SYNC,
    });
    return fd;
  }

  private doClose(fd: number): void {
    const f = this.file(fd, 'close');
    this.fds.delete(fd);
    const inode = this.disk.inode(f.ino);
    inode.openCount--;
  }

  private doWrite(fd: number, bytes: Uint8Array, position: number, syscall: string): { seq: number; inode: FileInode; dsync: boolean } {
    const f = this.file(fd, syscall);
    if (!f.writable) throw simErrnoError('EBADF', syscall);
    const inode = this.fileInode(f, syscall);
    if (!Number.isSafeInteger(position) || position < 0) throw simErrnoError('EINVAL', syscall, f.path);
    this.disk.checkSpace(inode, Math.max(inode.current.size, position + bytes.length), syscall, f.path);
    const seq = this.disk.applyData(inode, { kind: 'write', offset: position, bytes: bytes.slice() });
    return { seq, inode, dsync: f.dsync };
  }

  private doTruncate(fd: number, length: number): void {
    const f = this.file(fd, 'ftruncate');
    if (!f.writable) throw simErrnoError('EINVAL', 'ftruncate', f.path);
    const inode = this.fileInode(f, 'ftruncate');
    this.disk.checkSpace(inode, length, 'ftruncate', f.path);
    this.disk.applyData(inode, { kind: 'truncate', size: length });
  }

  /** fsync/fdatasync of an fd: a file's data ops issued so far become durable on completion;
   * a directory's namespace ops at once (or EINVAL). */
  private syncTarget(fd: number, syscall: string): { inode: FileInode; upto: number } | null {
    const f = this.file(fd, syscall);
    const inode = this.disk.inode(f.ino);
    if (inode.kind === 'dir') {
      if (this.disk.dirSync === 'EINVAL') throw simErrnoError('EINVAL', 'fsync');
      this.disk.syncDirectory(inode);
      return null;
    }
    return { inode, upto: this.disk.lastSeq };
  }

  private syncKind(fd: number, fileKind: 'fsync' | 'fdatasync'): SimOpKind {
    const f = this.fds.get(fd);
    return f !== undefined && this.disk.inode(f.ino).kind === 'dir' ? 'dirsync' : fileKind;
  }

  private doRemove(p: string, options: RemoveOptions | undefined, syscall: string): void {
    let inode: Inode;
    try {
      inode = this.disk.lookup(p, syscall);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && options?.force === true) return;
      throw err;
    }
    if (inode.kind === 'dir') {
      if (options?.recursive !== true) throw simErrnoError('EISDIR', syscall, p);
      for (const child of [...inode.entries.keys()]) this.doRemove(path.posix.join(path.posix.resolve('/', p), child), { recursive: true }, syscall);
    }
    const { dir, name } = this.disk.parentOf(p, syscall);
    this.disk.unlink(dir, name, `${inode.kind === 'dir' ? 'rmdir' : 'unlink'} ${path.posix.resolve('/', p)}`);
  }

  private doMkdir(p: string, options: MkdirOptions | undefined): void {
    const parts = splitPath(p);
    if (parts.length === 0) {
      if (options?.recursive === true) return;
      throw simErrnoError('EEXIST', 'mkdir', p);
    }
    let dir = this.disk.inode(1) as DirInode;
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const at = '/' + parts.slice(0, i + 1).join('/');
      const last = i === parts.length - 1;
      const existing = dir.entries.get(name);
      if (existing === undefined) {
        if (!last && options?.recursive !== true) throw simErrnoError('ENOENT', 'mkdir', p);
        dir = this.disk.createDir(dir, name, at);
        continue;
      }
      const inode = this.disk.inode(existing);
      if (inode.kind !== 'dir') throw simErrnoError(last ? 'EEXIST' : 'ENOTDIR', 'mkdir', p);
      if (last && options?.recursive !== true) throw simErrnoError('EEXIST', 'mkdir', p);
      dir = inode;
    }
  }

  private doRename(from: string, to: string): void {
    const src = this.disk.parentOf(from, 'rename');
    const id = src.dir.entries.get(src.name);
    if (id === undefined) throw simErrnoError('ENOENT', 'rename', from, to);
    const dst = this.disk.parentOf(to, 'rename');
    const moving = this.disk.inode(id);
    const replaced = dst.dir.entries.get(dst.name);
    if (replaced !== undefined && replaced !== id) {
      const target = this.disk.inode(replaced);
      if (moving.kind === 'dir' && target.kind !== 'dir') throw simErrnoError('ENOTDIR', 'rename', from, to);
      if (moving.kind !== 'dir' && target.kind === 'dir') throw simErrnoError('EISDIR', 'rename', from, to);
      if (target.kind === 'dir' && target.entries.size > 0) throw simErrnoError('ENOTEMPTY', 'rename', from, to);
    }
    if (moving.kind === 'dir') {
      const fromAbs = path.posix.resolve('/', from);
      const toAbs = path.posix.resolve('/', to);
      if (toAbs.startsWith(fromAbs + '/')) throw simErrnoError('EINVAL', 'rename', from, to);
    }
    this.disk.rename(src, dst, `rename ${path.posix.resolve('/', from)} -> ${path.posix.resolve('/', to)}`);
  }

  private stat(inode: Inode): FileStat {
    const isDir = inode.kind === 'dir';
    return {
      size: inode.kind === 'file' ? inode.current.size : 4096,
      ino: inode.id,
      mtimeMs: inode.mtimeMs,
      isFile: () => !isDir,
      isDirectory: () => isDir,
    };
  }

  // --- FileSystem: append path ----------------------------------------------------------------

  // Arrow properties: the js backend calls these two detached, as it does fs.writev/fs.fdatasync.
  readonly writev = (fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number, callback: WriteCallback): void => {
    const bytes = concat(buffers);
    let written: { seq: number; inode: FileInode; dsync: boolean } | null = null;
    this.async(
      { kind: 'writev', path: this.fdPath(fd), fd, position, length: bytes.length },
      () => {
        written = this.doWrite(fd, bytes, position, 'write');
        return bytes.length;
      },
      () => {
        if (written?.dsync) this.disk.makeDurable(written.inode, 0, written.seq);
      },
    ).then(
      (n) => callback(null, n),
      (err: NodeJS.ErrnoException) => callback(err, 0),
    );
  };

  readonly fdatasync = (fd: number, callback: ErrnoCallback): void => {
    let target: { inode: FileInode; upto: number } | null = null;
    this.async(
      { kind: this.syncKind(fd, 'fdatasync'), path: this.fdPath(fd), fd },
      () => {
        target = this.syncTarget(fd, 'fdatasync');
      },
      () => {
        if (target !== null) this.disk.makeDurable(target.inode, target.upto);
      },
    ).then(
      () => callback(null),
      (err: NodeJS.ErrnoException) => callback(err),
    );
  };

  // --- FileSystem: files (promises) -------------------------------------------------------------

  open(p: string, flags: OpenFlags, _mode?: number): Promise<number> {
    return this.async({ kind: 'open', path: p }, () => this.doOpen(p, flags));
  }

  close(fd: number): Promise<void> {
    return this.async({ kind: 'close', path: this.fdPath(fd), fd }, () => this.doClose(fd));
  }

  fstat(fd: number): Promise<FileStat> {
    return this.async({ kind: 'fstat', path: this.fdPath(fd), fd }, () => this.stat(this.disk.inode(this.file(fd, 'fstat').ino)));
  }

  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.async({ kind: 'read', path: this.fdPath(fd), fd, position, length }, () => {
      const f = this.file(fd, 'read');
      if (!f.readable) throw simErrnoError('EBADF', 'read');
      const bytes = this.fileInode(f, 'read').current.read(position, length);
      buffer.set(bytes, offset);
      return bytes.length;
    });
  }

  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const bytes = buffer.subarray(offset, offset + length);
    let written: { seq: number; inode: FileInode; dsync: boolean } | null = null;
    return this.async(
      { kind: 'write', path: this.fdPath(fd), fd, position, length },
      () => {
        written = this.doWrite(fd, bytes, position, 'write');
        return bytes.length;
      },
      () => {
        if (written?.dsync) this.disk.makeDurable(written.inode, 0, written.seq);
      },
    );
  }

  fsync(fd: number): Promise<void> {
    let target: { inode: FileInode; upto: number } | null = null;
    return this.async(
      { kind: this.syncKind(fd, 'fsync'), path: this.fdPath(fd), fd },
      () => {
        target = this.syncTarget(fd, 'fsync');
      },
      () => {
        if (target !== null) this.disk.makeDurable(target.inode, target.upto);
      },
    );
  }

  ftruncate(fd: number, length: number): Promise<void> {
    return this.async({ kind: 'ftruncate', path: this.fdPath(fd), fd, length }, () => this.doTruncate(fd, length));
  }

  readFile(p: string): Promise<Buffer> {
    return this.async({ kind: 'readFile', path: p }, () => {
      const inode = this.disk.lookup(p, 'open');
      if (inode.kind !== 'file') throw simErrnoError('EISDIR', 'read');
      return Buffer.from(inode.current.all());
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.async({ kind: 'rename', path: from, target: to }, () => this.doRename(from, to));
  }

  rm(p: string, options?: RemoveOptions): Promise<void> {
    return this.async({ kind: 'rm', path: p }, () => this.doRemove(p, options, 'rm'));
  }

  mkdir(p: string, options?: MkdirOptions): Promise<void> {
    return this.async({ kind: 'mkdir', path: p }, () => this.doMkdir(p, options));
  }

  // --- FileSystem: synchronous ------------------------------------------------------------------

  openSync(p: string, flags: OpenFlags, _mode?: number): number {
    return this.sync({ kind: 'open', path: p }, () => this.doOpen(p, flags));
  }

  closeSync(fd: number): void {
    this.sync({ kind: 'close', path: this.fdPath(fd), fd }, () => this.doClose(fd));
  }

  fsyncSync(fd: number): void {
    this.sync({ kind: this.syncKind(fd, 'fsync'), path: this.fdPath(fd), fd }, () => {
      const target = this.syncTarget(fd, 'fsync');
      if (target !== null) this.disk.makeDurable(target.inode, target.upto);
    });
  }

  writeSync(fd: number, text: string, position: number): number {
    const bytes = Buffer.from(text, 'utf8');
    return this.sync({ kind: 'write', path: this.fdPath(fd), fd, position, length: bytes.length }, () => {
      const { inode, seq, dsync } = this.doWrite(fd, bytes, position, 'write');
      if (dsync) this.disk.makeDurable(inode, 0, seq);
      return bytes.length;
    });
  }

  ftruncateSync(fd: number, length: number): void {
    this.sync({ kind: 'ftruncate', path: this.fdPath(fd), fd, length }, () => this.doTruncate(fd, length));
  }

  readFileSync(p: string): Buffer {
    return this.sync({ kind: 'readFile', path: p }, () => {
      const inode = this.disk.lookup(p, 'open');
      if (inode.kind !== 'file') throw simErrnoError('EISDIR', 'read');
      return Buffer.from(inode.current.all());
    });
  }

  statSync(p: string): FileStat {
    return this.sync({ kind: 'stat', path: p }, () => this.stat(this.disk.lookup(p, 'stat')));
  }

  identitySync(p: string): string {
    return this.sync({ kind: 'stat', path: p }, () => `simdisk:${this.disk.lookup(p, 'stat').id}`);
  }

  existsSync(p: string): boolean {
    return this.sync({ kind: 'exists', path: p }, () => {
      try {
        this.disk.lookup(p, 'access');
        return true;
      } catch {
        return false;
      }
    });
  }

  readdirSync(p: string): string[] {
    return this.sync({ kind: 'readdir', path: p }, () => {
      const inode = this.disk.lookup(p, 'scandir');
      if (inode.kind !== 'dir') throw simErrnoError('ENOTDIR', 'scandir', p);
      return [...inode.entries.keys()].sort();
    });
  }

  mkdirSync(p: string, options?: MkdirOptions): void {
    this.sync({ kind: 'mkdir', path: p }, () => this.doMkdir(p, options));
  }

  renameSync(from: string, to: string): void {
    this.sync({ kind: 'rename', path: from, target: to }, () => this.doRename(from, to));
  }

  rmSync(p: string, options?: RemoveOptions): void {
    this.sync({ kind: 'rm', path: p }, () => this.doRemove(p, options, 'rm'));
  }

  rmdirSync(p: string): void {
    this.sync({ kind: 'rmdir', path: p }, () => {
      const inode = this.disk.lookup(p, 'rmdir');
      if (inode.kind !== 'dir') throw simErrnoError('ENOTDIR', 'rmdir', p);
      if (inode.entries.size > 0) throw simErrnoError('ENOTEMPTY', 'rmdir', p);
      const { dir, name } = this.disk.parentOf(p, 'rmdir');
      this.disk.unlink(dir, name, `rmdir ${path.posix.resolve('/', p)}`);
    });
  }

  unlinkSync(p: string): void {
    this.sync({ kind: 'unlink', path: p }, () => {
      const inode = this.disk.lookup(p, 'unlink');
      if (inode.kind === 'dir') throw simErrnoError('EISDIR', 'unlink', p);
      const { dir, name } = this.disk.parentOf(p, 'unlink');
      this.disk.unlink(dir, name, `unlink ${path.posix.resolve('/', p)}`);
    });
  }

  linkSync(existingPath: string, newPath: string): void {
    this.sync({ kind: 'link', path: existingPath, target: newPath }, () => {
      const inode = this.disk.lookup(existingPath, 'link');
      if (inode.kind === 'dir') throw simErrnoError('EPERM', 'link', existingPath, newPath);
      const { dir, name } = this.disk.parentOf(newPath, 'link');
      if (dir.entries.has(name)) throw simErrnoError('EEXIST', 'link', existingPath, newPath);
      this.disk.link(dir, name, inode, `link ${path.posix.resolve('/', existingPath)} -> ${path.posix.resolve('/', newPath)}`);
    });
  }

  filesystemType(p: string): string {
    return this.sync({ kind: 'statfs', path: p }, () => {
      this.disk.lookup(p, 'statfs');
      return this.disk.filesystemTypeName;
    });
  }

  /** flock(LOCK_EX|LOCK_NB) in this disk's lock table; the lock dies with the mount. */
  readonly flock = (p: string): (() => void) => {
    return this.sync({ kind: 'flock', path: p }, () => {
      let inode: Inode;
      try {
        inode = this.disk.lookup(p, 'open');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        const { dir, name } = this.disk.parentOf(p, 'open');
        inode = this.disk.createFile(dir, name, p);
      }
      const holder = this.disk.lockHolder(inode.id);
      if (holder !== undefined && holder.isAlive) throw simErrnoError('ELOCKED', 'flock', p);
      this.disk.setLock(inode.id, this);
      this.heldLocks.add(inode.id);
      const ino = inode.id;
      let released = false;
      return () => {
        if (released || !this.alive) return;
        released = true;
        this.heldLocks.delete(ino);
        if (this.disk.lockHolder(ino) === this) this.disk.setLock(ino, null);
      };
    });
  };
}
