export { walBackend, getWalBackend } from './wal/select-backend.js';
export type { WalBackendInfo } from './wal/select-backend.js';
export type {
  WalBackend,
  WalMode,
  WalModeOption,
  PreallocateStrategy,
  SegmentFile,
  ScanResult,
  DirSyncResult,
  DirectIoProbe,
} from './wal/backend.js';
