/** Errors raised by the WAL (src/wal/wal.ts) and the snapshotter (src/snap/). */

/**
 * The log on disk is damaged in a way that recovery must not paper over (anything other than a
 * torn tail of the last segment). `file` and `offset` say where; nothing was changed on disk.
 */
export class WalCorruptionError extends Error {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, detail: string) {
    super(`WAL corruption in ${file} at offset ${offset}: ${detail}`);
    this.name = 'WalCorruptionError';
    this.file = file;
    this.offset = offset;
  }
}

/** Another process (or another open WAL in this process) holds the directory's lock. */
export class WalLockedError extends Error {
  readonly code = 'ELOCKED';
  readonly dir: string;
  /** Who holds it, as far as we can tell (e.g. "pid 1234"), or null when unknown. */
  readonly holder: string | null;
  constructor(dir: string, holder: string | null, method: string) {
    super(
      `WAL directory ${dir} is locked by ${holder ?? 'another process (holder unknown)'} ` +
        `(lock method ${method}); only one process may open a WAL directory at a time`,
    );
    this.name = 'WalLockedError';
    this.dir = dir;
    this.holder = holder;
  }
}

/** dirSync 'strict' and the filesystem cannot fsync directories. */
export class DirSyncUnsupportedError extends Error {
  readonly dir: string;
  readonly errno: string | null;
  constructor(message: string, dir: string, errno: string | null) {
    super(message);
    this.name = 'DirSyncUnsupportedError';
    this.dir = dir;
    this.errno = errno;
  }
}

/** The WAL was closed; no further calls are accepted. */
export class WalClosedError extends Error {
  constructor(dir: string) {
    super(`WAL ${dir} is closed`);
    this.name = 'WalClosedError';
  }
}

/** Wal.create on a directory that already holds a WAL (or other files). */
export class WalExistsError extends Error {
  readonly code = 'EEXIST';
  constructor(dir: string, detail: string) {
    super(`cannot create WAL in ${dir}: ${detail}`);
    this.name = 'WalExistsError';
  }
}

/** Wal.open was asked to start from a snapshot the log cannot replay from. */
export class WalSnapshotNotFoundError extends Error {
  constructor(dir: string, detail: string) {
    super(`WAL ${dir}: ${detail}`);
    this.name = 'WalSnapshotNotFoundError';
  }
}

/** A snapshot file whose bytes do not check out. */
export class SnapshotCorruptionError extends Error {
  readonly file: string;
  constructor(file: string, detail: string) {
    super(`snapshot ${file} is corrupt: ${detail}`);
    this.name = 'SnapshotCorruptionError';
    this.file = file;
  }
}
