/**
 * Directory fsync under the `dirSync` policy (issue 3): 'auto' warns once per process (per
 * FileSystem) and directory when the filesystem cannot sync directories, then carries on; 'strict' refuses.
 * Only the "cannot sync directories" answers (EINVAL/ENOTSUP/ENOSYS, which backend.syncDirectory
 * reports as `supported: false`) are tolerated; any other error propagates.
 */
import * as path from 'node:path';
import type { DirSyncResult, WalBackend } from './backend.js';
import { DirSyncUnsupportedError } from './errors.js';
import type { FileSystem } from './file-system.js';
import type { WalLogger } from './logger.js';

export type DirSyncPolicy = 'auto' | 'strict';

export interface DirSyncOptions {
  backend: WalBackend;
  policy: DirSyncPolicy;
  logger: WalLogger;
  /**
   * Testing hook: fsync this path instead of the directory (e.g. a FIFO, whose fsync fails with
   * a real EINVAL). Warnings and errors still name the real directory.
   */
  dirSyncTarget?: string;
  /** The directory to name in the warning/error and to warn once for, when `dir` is a stand-in
   * for it (Wal.create syncs `<dir>.tmp` before renaming it to `<dir>`). */
  reportAs?: string;
}

/** Per FileSystem: a simulated disk is another machine, whose directories warn on their own. */
const warnedDirectories = new WeakMap<FileSystem, Set<string>>();

function filesystemTypeOf(backend: WalBackend, dir: string): string {
  try {
    return backend.filesystemType(dir);
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

export function dirSyncUnsupportedMessage(dir: string, fsType: string, errno: string | null, policy: DirSyncPolicy): string {
  return (
    `cannot fsync directory ${dir}: filesystem ${fsType} returned ${errno ?? 'an error'} ` +
    `(filesystems such as VirtualBox shared folders (vboxsf) and some 9p/FUSE/SMB mounts cannot sync directories). ` +
    `Risk: after a crash or power loss, recently created, renamed or deleted WAL segments and snapshot files ` +
    `may be missing or reappear even though their contents were synced; keep durable data on a local filesystem (ext4, xfs). ` +
    (policy === 'strict'
      ? `Refusing because dirSync is 'strict' (use dirSync: 'auto' to accept the risk).`
      : `Continuing because dirSync is 'auto' (use dirSync: 'strict' to refuse instead); this warning is shown once per directory.`)
  );
}

/**
 * fsync `dir`. Returns the backend's answer; on `supported: false` warns (auto, once) or throws
 * DirSyncUnsupportedError (strict).
 */
export function syncDirectory(dir: string, options: DirSyncOptions): DirSyncResult {
  const resolved = path.resolve(dir);
  const result = options.backend.syncDirectory(options.dirSyncTarget ?? resolved);
  if (result.supported) return result;
  const fsType = filesystemTypeOf(options.backend, resolved);
  const named = path.resolve(options.reportAs ?? dir);
  const message = dirSyncUnsupportedMessage(named, fsType, result.errno, options.policy);
  if (options.policy === 'strict') throw new DirSyncUnsupportedError(message, named, result.errno);
  let warned = warnedDirectories.get(options.backend.fileSystem);
  if (warned === undefined) {
    warned = new Set();
    warnedDirectories.set(options.backend.fileSystem, warned);
  }
  if (!warned.has(named)) {
    warned.add(named);
    options.logger.warn(message);
  }
  return result;
}

/**
 * mkdir -p whose new directory entries survive a power loss: each missing component of `dir` is
 * created and its parent fsynced (under the policy) before the next one, so nothing written
 * under `dir` later can be acknowledged while its path may still vanish. Directories that
 * already exist are left alone (an ancestor may not even be readable); a process killed between
 * a mkdir and that fsync leaves an entry the next call does not sync — Wal.open fsyncs its own
 * parent for that reason.
 */
export function mkdirDurable(dir: string, options: DirSyncOptions): void {
  const fs = options.backend.fileSystem;
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    fs.mkdirSync(d, { recursive: true }); // recursive: a concurrent creator is no error
    syncDirectory(path.dirname(d), options);
  }
}
