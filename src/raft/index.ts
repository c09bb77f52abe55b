export * from './types.js';
export * from './errors.js';
export { assert, fail } from './assert.js';
export { SeededRandom } from './random.js';
export {
  validateConfig,
  NOOP_LOGGER,
  type RaftConfig,
  type RaftLogger,
  type ReadOnlyOption,
  type ReadIndexFanout,
  type ValidatedConfig,
} from './config.js';
export { MemoryStorage } from './memory-storage.js';
export { RawNode } from './rawnode.js';
export type { Status, ProgressStatus } from './status.js';
export type { ProgressState } from './tracker/progress.js';
export {
  encodeMessage,
  decodeMessage,
  encodeMessages,
  decodeMessages,
  encodeConfChange,
  decodeConfChange,
  encodeEntry,
  decodeEntry,
  encodeHardState,
  decodeHardState,
  encodeSnapshot,
  decodeSnapshot,
  encodeConfState,
  decodeConfState,
} from './codec.js';
export { entrySize, ENTRY_OVERHEAD_BYTES } from './util.js';
