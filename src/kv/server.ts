/**
 * One KV server: a RaftNode driving a KvStore, and the HTTP API in front of it.
 * The CLI (src/cli.ts) is a thin shell around `startKvServer`.
 */

import type { AddressInfo } from 'node:net';

import { RaftNode, type NodeLogger, type StoppedEvent } from '../node/index.js';
import type { KvServerConfig } from './config.js';
import { KvHttpApi } from './http-api.js';
import { KvStore, type ApplyResult } from './store.js';

export interface KvServer {
  readonly node: RaftNode<ApplyResult>;
  readonly store: KvStore;
  /** Where the KV API listens. */
  readonly apiAddress: AddressInfo;
  /** Resolves when the node has stopped, for whatever reason (stop(), removal, fatal error). */
  readonly stopped: Promise<StoppedEvent>;
  /** Graceful stop: stop accepting API requests, stop the node (a leader hands over; writes in
   * flight get their outcome, or 504 outcome_unknown), close everything. Idempotent. */
  stop(): Promise<void>;
}

export async function startKvServer(config: KvServerConfig, logger: NodeLogger, signal?: AbortSignal): Promise<KvServer> {
  const store = new KvStore();
  store.onBadEntry = (index, why) => logger.warn('committed entry is not a KV command; skipped', { index, why });
  const peers = config.cluster.map((url, i) => ({ id: i + 1, url }));
  // Listen first: a busy API port must fail before any storage is created.
  const api = new KvHttpApi({ store, logger, requestTimeoutMs: config.requestTimeoutMs });
  const apiAddress = await api.listen(config.port, config.listenHost);
  let node: RaftNode<ApplyResult>;
  try {
    node = await RaftNode.start<ApplyResult>({
      id: config.id,
      peers,
      join: config.join,
      dataDir: config.dataDir,
      stateMachine: store,
      tickMs: config.tickMs,
      electionTicks: config.electionTicks,
      snapshotCount: config.snapshotCount,
      snapshotCatchUpEntries: config.snapshotCatchUpEntries,
      snapshotBytesMax: config.snapshotBytesMax,
      walMode: config.walMode,
      readIndexFanout: config.readIndexFanout,
      idleSpinUs: config.idleSpinUs,
      listenHost: config.listenHost,
      requestTimeoutMs: config.requestTimeoutMs,
      logger,
      ...(signal !== undefined ? { signal } : {}),
    });
  } catch (err) {
    await api.close();
    throw err;
  }
  api.attach(node);
  const stopped = node.stopped;
  // Whatever stops the node (removal, fatal storage error), the API must stop serving too.
  void stopped.then(() => api.close());

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // The node may take drainTimeoutMs to finish the writes in flight (see RaftNode.stop):
      // their connections stay open that long, so they get their real answer.
      const drainTimeoutMs = 2 * config.electionTicks * config.tickMs;
      const apiClosed = api.close(drainTimeoutMs + 2000);
      await node.stop({ drainTimeoutMs });
      await apiClosed;
    })();
    return stopping;
  };
  return { node, store, apiAddress, stopped, stop };
}
