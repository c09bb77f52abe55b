export {
  Snapshotter,
  SnapshotBodyMismatchError,
  snapshotFileName,
  parseSnapshotFileName,
  SNAPSHOT_MAGIC,
  SNAPSHOT_FORMAT_VERSION,
  SNAPSHOT_CHUNK_BYTES,
  type SnapshotterOptions,
  type SnapshotFileInfo,
  type SaveStreamOptions,
  type SavedSnapshot,
  type LoadedSnapshot,
  type LoadOptions,
  type BrokenSnapshot,
} from './snapshotter.js';
export { SnapshotCorruptionError } from '../wal/errors.js';
