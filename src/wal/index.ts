export {
  Wal,
  DEFAULT_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  type WalOptions,
  type WalCreateOptions,
  type WalOpenOptions,
  type OpenedWal,
  type WalReplay,
  type SaveOptions,
  type WalStatus,
  type TailRepair,
  type SnapshotMarker,
  type WalMetadata,
} from './wal.js';
export {
  WalCorruptionError,
  WalLockedError,
  DirSyncUnsupportedError,
  WalClosedError,
  WalExistsError,
  WalSnapshotNotFoundError,
  SnapshotCorruptionError,
} from './errors.js';
export type { LockMethod } from './lock.js';
export type { DirSyncPolicy } from './dir-sync.js';
export type { WalLogger } from './logger.js';
export { getWalBackend, walBackend, type WalBackendInfo } from './select-backend.js';
export type { WalBackend, WalMode, WalModeOption, PreallocateStrategy } from './backend.js';
