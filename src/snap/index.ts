export {
  Snapshotter,
  snapshotFileName,
  parseSnapshotFileName,
  SNAPSHOT_MAGIC,
  SNAPSHOT_FORMAT_VERSION,
  type SnapshotterOptions,
  type LoadedSnapshot,
  type LoadOptions,
  type BrokenSnapshot,
} from './snapshotter.js';
export { SnapshotCorruptionError } from '../wal/errors.js';
