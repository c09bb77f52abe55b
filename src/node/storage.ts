/**
 * The node's durable storage: the WAL (src/wal) for entries, hard state and snapshot markers,
 * and the snapshotter (src/snap) for snapshot files, under one data directory:
 *
 *   <dataDir>/wal/   segments (src/wal)
 *   <dataDir>/snap/  snapshot files (src/snap)
 *
 * Start-up follows etcd: pick the newest snapshot that the WAL knows about (its marker is in
 * the log) AND that a durable commit covers (marker index ≤ the last hard state's commit),
 * then replay the WAL from that marker. Any error from a write makes the storage unusable; the
 * runtime turns that into a fail-stop.
 */

import path from 'node:path';

import type { Entry, HardState, NodeId, Snapshot, SnapshotMetadata } from '../raft/types.js';
import { Snapshotter, type SnapshotFileInfo } from '../snap/index.js';
import type { WalBackend } from '../wal/backend.js';
import { mkdirDurable } from '../wal/dir-sync.js';
import { WalSnapshotNotFoundError } from '../wal/errors.js';
import { nodeFileSystem, type FileSystem } from '../wal/file-system.js';
import { backendFor } from '../wal/select-backend.js';
import { Wal, type WalStatus } from '../wal/wal.js';
import type { DirSyncPolicy, NodeLogger, WalModeName } from './options.js';
import type { SnapshotFiles } from './runtime-io.js';
import { decodeSnapshotRef, encodeSnapshotRef } from './snapshot-ref.js';

/** Snapshot files kept, the newest included (older ones are purged after each snapshot). Start-up
 * falls back to an older one when a newer one does not load, so the WAL is kept from the oldest
 * kept one's marker on (see releaseTo). */
const SNAPSHOTS_KEPT = 3;

export interface Replay {
  /** The newest valid snapshot, or null. Its data is the runtime's envelope (version 1 files)
   * or a descriptor of the file's head and body (snapshot-ref.ts). */
  snapshot: Snapshot | null;
  hardState: HardState;
  /** Entries after the snapshot, in index order. */
  entries: Entry[];
}

export interface NodeStorageStatus extends WalStatus {
  snapDir: string;
  lastSnapshotIndex: number;
}

export interface NodeStorageOptions {
  dir: string;
  nodeId: NodeId;
  clusterId: string;
  walMode: WalModeName;
  dirSync: DirSyncPolicy;
  logger: NodeLogger;
  walBackend: WalBackend | null;
  /** Default node:fs (or the backend's). A simulated disk runs the js backend over it. */
  fileSystem?: FileSystem | null;
  walSegmentBytes: number | null;
}

/** FNV-1a: the WAL's metadata wants a numeric cluster id; ours is a string. */
export function clusterIdHash(clusterId: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(clusterId)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The replayed snapshot as the core gets it: a body stays in the file (a descriptor of it
 * goes to the core); without one the head is the whole data (version 1, or saved whole). */
function snapshotOfFile(info: SnapshotFileInfo): Snapshot {
  if (info.bodyBytes === 0) return { metadata: info.metadata, data: info.head };
  return { metadata: info.metadata, data: encodeSnapshotRef({ head: info.head, bodyBytes: info.bodyBytes, bodyCrc: info.bodyCrc }) };
}

export class NodeStorage implements SnapshotFiles {
  private lastSnapshotIndex: number;
  private lastStatus: WalStatus;

  private constructor(
    private readonly wal: Wal,
    private readonly snapshotter: Snapshotter,
    private readonly snapDir: string,
    lastSnapshotIndex: number,
    private readonly fs: FileSystem,
  ) {
    this.lastSnapshotIndex = lastSnapshotIndex;
    this.lastStatus = wal.status();
  }

  static async open(o: NodeStorageOptions): Promise<{ storage: NodeStorage; replay: Replay }> {
    const walDir = path.join(o.dir, 'wal');
    const snapDir = path.join(o.dir, 'snap');
    const fileSystem = o.fileSystem ?? null;
    const fs = fileSystem ?? o.walBackend?.fileSystem ?? nodeFileSystem;
    const walLogger = {
      warn: (message: string) => o.logger.warn(message),
      info: (message: string) => o.logger.info(message),
    };
    // The data directory too: a power loss must not take a directory holding acknowledged data.
    mkdirDurable(snapDir, { backend: backendFor({ backend: o.walBackend ?? undefined, fs: fileSystem ?? undefined }), policy: o.dirSync, logger: walLogger });
    const walOptions = {
      mode: o.walMode,
      dirSync: o.dirSync,
      logger: walLogger,
      ...(o.walBackend !== null ? { backend: o.walBackend } : {}),
      ...(fileSystem !== null ? { fs: fileSystem } : {}),
      ...(o.walSegmentBytes !== null ? { segmentBytes: o.walSegmentBytes } : {}),
    };
    const metadata = { nodeId: o.nodeId, clusterId: clusterIdHash(o.clusterId) };
    const snapshotter = new Snapshotter(snapDir, {
      dirSync: o.dirSync,
      logger: walLogger,
      ...(o.walBackend !== null ? { backend: o.walBackend } : {}),
      ...(fileSystem !== null ? { fs: fileSystem } : {}),
    });
    for (const f of await snapshotter.removeTempFiles()) o.logger.info('removed a snapshot temp file left by a crash', { file: f });

    if (!Wal.exists(walDir, fs)) {
      const wal = await Wal.create(walDir, { ...walOptions, metadata });
      o.logger.info('created a new WAL', { dir: walDir });
      return {
        storage: new NodeStorage(wal, snapshotter, snapDir, 0, fs),
        replay: { snapshot: null, hardState: { term: 0, vote: 0, commit: 0 }, entries: [] },
      };
    }

    // Newest snapshot first; fall back to older ones the WAL can replay from.
    let rejectedAbove = Number.POSITIVE_INFINITY;
    for (;;) {
      const limit = rejectedAbove;
      const loaded = await snapshotter.loadNewest({ accept: (m) => m.index < limit });
      for (const b of loaded.broken) o.logger.warn('corrupt snapshot file set aside', { ...b });
      const snapshot = loaded.info === null ? null : snapshotOfFile(loaded.info);
      const marker = snapshot === null ? { index: 0, term: 0 } : { index: snapshot.metadata.index, term: snapshot.metadata.term };
      let opened;
      try {
        opened = await Wal.open(walDir, { ...walOptions, snapshot: marker });
      } catch (err) {
        if (err instanceof WalSnapshotNotFoundError && snapshot !== null) {
          o.logger.warn('snapshot file is not known to the WAL (crash between saving it and its marker?); trying an older one', {
            index: marker.index,
            detail: err.message,
          });
          rejectedAbove = marker.index;
          continue;
        }
        throw err;
      }
      if (opened.metadata.nodeId !== o.nodeId) {
        await opened.wal.close();
        throw new Error(
          `the WAL in ${walDir} belongs to node ${opened.metadata.nodeId}, not to node ${o.nodeId}: wrong --id or data directory`,
        );
      }
      if (opened.metadata.clusterId !== metadata.clusterId) {
        await opened.wal.close();
        throw new Error(`the WAL in ${walDir} belongs to another cluster (cluster id hash ${opened.metadata.clusterId}, expected ${metadata.clusterId} for '${o.clusterId}')`);
      }
      if (snapshot !== null && opened.hardState.commit < marker.index) {
        // The marker of a snapshot received from the leader is written before the hard state
        // that commits it; a crash in between leaves a snapshot no durable commit covers.
        await opened.wal.close();
        o.logger.warn('newest snapshot is not covered by a durable commit yet; using an older one', {
          index: marker.index,
          commit: opened.hardState.commit,
        });
        rejectedAbove = marker.index;
        continue;
      }
      if (opened.repair !== null) {
        o.logger.warn('WAL tail was torn and has been repaired', { ...opened.repair });
      }
      return {
        storage: new NodeStorage(opened.wal, snapshotter, snapDir, marker.index, fs),
        replay: { snapshot, hardState: opened.hardState, entries: opened.entries },
      };
    }
  }

  /** Entries first, then the hard state; fsync when `sync`. */
  save(hardState: HardState | null, entries: Entry[], sync: boolean): Promise<void> {
    return this.wal.save(hardState, entries, { sync });
  }

  /**
   * The snapshot file (synced) first, then its WAL marker (synced). A descriptor (snapshot-ref.ts)
   * says the file was already written (write / receiveSnapshot): only the marker is added.
   */
  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    if (decodeSnapshotRef(snapshot.data) !== null) {
      const { term, index } = snapshot.metadata;
      const file = this.snapshotter.fileFor(term, index);
      // Asserted: a marker without its file would break the next start.
      try {
        this.fs.statSync(file);
      } catch (err) {
        throw new Error(`snapshot ${term}/${index}: its file ${file} must be written before its WAL marker`, { cause: err });
      }
    } else {
      await this.snapshotter.save(snapshot);
    }
    await this.wal.saveSnapshot({ index: snapshot.metadata.index, term: snapshot.metadata.term });
    this.lastSnapshotIndex = Math.max(this.lastSnapshotIndex, snapshot.metadata.index);
  }

  /** SnapshotFiles: our own snapshot, streamed from the state machine into its file. */
  async write(metadata: SnapshotMetadata, head: Uint8Array, body: AsyncIterable<Uint8Array>): Promise<{ bodyBytes: number; bodyCrc: number }> {
    const saved = await this.snapshotter.saveStream(metadata, head, body);
    return { bodyBytes: saved.bodyBytes, bodyCrc: saved.bodyCrc };
  }

  /** A snapshot streamed in by a peer: written only if the body is exactly what the descriptor
   * says (length and CRC) and within `bytesMax`; no WAL marker yet (the core decides). */
  async receiveSnapshot(
    metadata: SnapshotMetadata,
    head: Uint8Array,
    body: AsyncIterable<Uint8Array>,
    expect: { bytes: number; crc: number },
    bytesMax: number,
  ): Promise<void> {
    await this.snapshotter.saveStream(metadata, head, body, { expect, bytesMax });
  }

  /** SnapshotFiles: the body of a snapshot file, checked chunk by chunk. */
  readBody(metadata: SnapshotMetadata): AsyncIterable<Uint8Array> {
    return this.snapshotter.readBody(this.snapshotter.fileFor(metadata.term, metadata.index));
  }

  get snapshotFiles(): SnapshotFiles {
    return this;
  }

  /**
   * Purges old snapshot files, then releases WAL segments before `index` — but never past the
   * oldest snapshot file kept: start-up falls back to it when the newer ones are corrupt, and
   * replays the WAL from its marker, so the segments from that marker on must still be there.
   * (A crash between the two steps only keeps more WAL than needed.)
   */
  async releaseTo(index: number): Promise<void> {
    await this.snapshotter.purge(SNAPSHOTS_KEPT);
    const oldestKept = this.snapshotter.oldestIndex() ?? 0;
    await this.wal.releaseTo(Math.min(index, oldestKept));
  }

  status(): NodeStorageStatus {
    try {
      this.lastStatus = this.wal.status();
    } catch {
      // a closed WAL: report what we saw last
    }
    return { ...this.lastStatus, snapDir: this.snapDir, lastSnapshotIndex: this.lastSnapshotIndex };
  }

  /** The first error that failed the WAL, or null. */
  get failure(): Error | null {
    return this.wal.failed;
  }

  async close(): Promise<void> {
    await this.wal.close();
  }
}
