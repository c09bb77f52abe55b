#!/usr/bin/env node
/**
 * `raftkv`: run one member of a replicated key-value cluster (see --help).
 * Exit codes: 0 stopped (signal or removed from the cluster), 1 fatal error, 2 bad flags.
 */

import { parseArgs, UsageError, HELP, type KvServerConfig } from './kv/config.js';
import { jsonLineLogger } from './kv/logger.js';
import { startKvServer } from './kv/server.js';

async function main(): Promise<number> {
  let config: KvServerConfig | null;
  try {
    config = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`raftkv: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (config === null) {
    process.stdout.write(HELP);
    return 0;
  }
  const logger = jsonLineLogger({ node: config.id }, config.logLevel);

  // A signal during start-up aborts it; after start-up it stops the node gracefully.
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal: exiting now', { signal: sig });
      process.exit(1);
    }
    logger.info('signal received: stopping', { signal: sig });
    abort.abort(new Error(`received ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let server;
  try {
    server = await startKvServer(config, logger, abort.signal);
  } catch (err) {
    if (abort.signal.aborted) {
      logger.info('start-up aborted by a signal');
      return 0;
    }
    logger.error('start-up failed', { error: err instanceof Error ? err.message : String(err) });
    return 1;
  }
  logger.info('serving', {
    api: `http://${server.apiAddress.address}:${server.apiAddress.port}`,
    peer: config.cluster[config.id - 1],
    dataDir: config.dataDir,
    wal: server.node.status().wal,
  });
  abort.signal.addEventListener('abort', () => void server.stop(), { once: true });
  const stoppedEvent = await server.stopped;
  await server.stop();
  if (stoppedEvent.reason === 'fatal') {
    logger.error('stopped after a fatal error', { detail: stoppedEvent.detail });
    return 1;
  }
  logger.info('stopped', { reason: stoppedEvent.reason, detail: stoppedEvent.detail });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`raftkv: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
