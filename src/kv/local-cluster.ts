/**
 * `npm start`: a local 3-node raftkv cluster in one command, like raftexample's Procfile.
 * Three child processes (peers on 127.0.0.1:12379/22379/32379, KV API on 12380/22380/32380,
 * data under ./data/<id>); Ctrl-C stops all three gracefully.
 *
 * It is meant for a person at a terminal: the nodes log only warnings and errors (each line
 * prefixed with its node id), and once the cluster has a leader a short banner says which node
 * leads and what to try. `--verbose` (or LOG_LEVEL=debug|info|warn|error) shows the nodes'
 * JSON logs in full.
 *
 * Runs from source through tsx (no build step needed) or from dist/ after a build.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { isLogLevel, type LogLevel } from './logger.js';

const NODES = [1, 2, 3];
const COLORS = ['\x1b[36m', '\x1b[33m', '\x1b[35m'];
const RESET = '\x1b[0m';
const BOLD = '\x1b[1m';
/** How often the cluster's status is polled until it has a leader, and how often we say we are still waiting. */
const POLL_MS = 200;
const STILL_WAITING_MS = 10_000;

const HELP = `npm start [-- options]: a local 3-node raftkv cluster on 127.0.0.1 (Ctrl-C stops it)

Options:
  --verbose              Show the nodes' logs in full (JSON lines, level info). Without it,
                         only warnings and errors. LOG_LEVEL=debug|info|warn|error in the
                         environment sets the level too.
  --data-dir DIR         Where the nodes keep their data (default: ./data; reused if present).
  --peer-ports P,P,P     The nodes' Raft peer ports (default: 12379,22379,32379).
  --api-ports P,P,P      The nodes' KV API ports (default: 12380,22380,32380).
  -h, --help             Show this help.
`;

interface LocalClusterOptions {
  logLevel: LogLevel;
  verbose: boolean;
  dataRoot: string;
  peerPorts: number[];
  apiPorts: number[];
}

class UsageError extends Error {}

function portList(flag: string, raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const ports = raw.split(',').map((s) => Number(s.trim()));
  if (ports.length !== NODES.length || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new UsageError(`--${flag} needs ${NODES.length} ports separated by commas, got ${JSON.stringify(raw)}`);
  }
  return ports;
}

/** Returns null when --help was asked for. */
function parseOptions(argv: string[], env: NodeJS.ProcessEnv): LocalClusterOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        verbose: { type: 'boolean' },
        'data-dir': { type: 'string' },
        'peer-ports': { type: 'string' },
        'api-ports': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return null;
  const verbose = values.verbose === true;
  const envLevel = env.LOG_LEVEL;
  if (envLevel !== undefined && envLevel !== '' && !isLogLevel(envLevel)) {
    throw new UsageError(`LOG_LEVEL must be debug, info, warn or error, got ${JSON.stringify(envLevel)}`);
  }
  const logLevel: LogLevel = envLevel !== undefined && isLogLevel(envLevel) ? envLevel : verbose ? 'info' : 'warn';
  const peerPorts = portList('peer-ports', values['peer-ports'], NODES.map((id) => Number(`${id}2379`)));
  const apiPorts = portList('api-ports', values['api-ports'], NODES.map((id) => Number(`${id}2380`)));
  if (new Set([...peerPorts, ...apiPorts]).size !== peerPorts.length + apiPorts.length) {
    throw new UsageError('--peer-ports and --api-ports must be six different ports');
  }
  return { logLevel, verbose, dataRoot: path.resolve(values['data-dir'] ?? 'data'), peerPorts, apiPorts };
}

/** How to run src/cli.ts (via tsx) or dist/src/cli.js, whichever this file is. */
function cliCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsxLoader, path.join(path.dirname(here), '..', 'cli.ts')];
  }
  return [path.join(path.dirname(here), '..', 'cli.js')];
}

/** A node's JSON log line as a person reads it: `WARN message key=value …`. Other lines
 * (a crash's stack trace) are shown as they are. */
function humanLogLine(line: string): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof record !== 'object' || record === null || typeof (record as { msg?: unknown }).msg !== 'string') return line;
  const { ts: _ts, level, node: _node, msg, ...fields } = record as Record<string, unknown>;
  const extra = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return [String(level).toUpperCase(), String(msg), ...extra].join(' ');
}

function prefixLines(stream: NodeJS.ReadableStream, id: number, verbose: boolean): void {
  const color = process.stdout.isTTY ? COLORS[(id - 1) % COLORS.length]! : '';
  const reset = process.stdout.isTTY ? RESET : '';
  createInterface({ input: stream }).on('line', (line) => {
    process.stdout.write(`${color}[node ${id}]${reset} ${verbose ? line : humanLogLine(line)}\n`);
  });
}

interface NodeView {
  leader: number;
  term: number;
}

/** A node's view of the leader, from its KV API's GET /status; null while it does not answer. */
async function nodeView(apiPort: number): Promise<NodeView | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${apiPort}/status`);
    if (res.status !== 200) {
      await res.body?.cancel();
      return null;
    }
    const status = (await res.json()) as { leader?: unknown; term?: unknown };
    if (typeof status.leader !== 'number' || typeof status.term !== 'number') return null;
    return { leader: status.leader, term: status.term };
  } catch {
    return null; // not listening yet, or stopping
  }
}

/**
 * The etcdctl lines of the banner.
 * PLACEHOLDER (etcd API): raftkv has no etcd v3 API yet, so there is nothing to show. When it
 * exists, return the lines to try here, e.g.
 *   [`etcdctl --endpoints=${apiUrls.join(',')} put my-key hello`]
 * (with the etcd API's URLs, which may differ from the KV API's).
 */
function etcdctlLines(apiUrls: string[]): string[] {
  void apiUrls;
  return [];
}

function banner(o: LocalClusterOptions, reused: boolean, view: NodeView): string {
  const bold = process.stdout.isTTY ? BOLD : '';
  const reset = process.stdout.isTTY ? RESET : '';
  const apiUrls = NODES.map((id) => `http://127.0.0.1:${o.apiPorts[id - 1]}`);
  const lines = [
    '',
    `${bold}raftkv local cluster is up: ${NODES.length} nodes, node ${view.leader} leads (term ${view.term})${reset}`,
    ...NODES.map((id) => `  node ${id}  KV API ${apiUrls[id - 1]}   peer http://127.0.0.1:${o.peerPorts[id - 1]}` +
      (id === view.leader ? '   (leader)' : '')),
    reused ? `  data in ${o.dataRoot} (reused; delete it to start fresh)` : `  data in ${o.dataRoot}`,
    '',
    'Try:',
    `  curl -X PUT ${apiUrls[0]}/my-key -d hello`,
    `  curl ${apiUrls[1]}/my-key`,
    `  curl ${apiUrls[2]}/status`,
    ...etcdctlLines(apiUrls).map((l) => `  ${l}`),
    '',
    o.verbose ? 'Ctrl-C stops all three.' : 'Node logs: warnings and errors only (npm start -- --verbose for all). Ctrl-C stops all three.',
    '',
  ];
  return lines.join('\n') + '\n';
}

function main(o: LocalClusterOptions): void {
  const reused = existsSync(o.dataRoot);
  const command = cliCommand();
  const peerUrls = o.peerPorts.map((port) => `http://127.0.0.1:${port}`);
  const children = new Map<number, ChildProcess>();
  /** Nodes whose API has answered: after that, an exit is not a failure to start. */
  const serving = new Set<number>();
  let stopping = false;
  let exitCode = 0;
  process.stdout.write(`starting ${NODES.length} raftkv nodes…\n`);

  for (const id of NODES) {
    const args = [
      ...command,
      '--id', String(id),
      '--cluster', peerUrls.join(','),
      '--port', String(o.apiPorts[id - 1]),
      '--data-dir', path.join(o.dataRoot, String(id)),
      '--log-level', o.logLevel,
    ];
    // Own process group: Ctrl-C reaches only us, and we stop each node exactly once.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.set(id, child);
    prefixLines(child.stdout!, id, o.verbose);
    prefixLines(child.stderr!, id, o.verbose);
    child.on('exit', (code, signal) => {
      children.delete(id);
      if (!stopping && !serving.has(id)) {
        // Usually a port already in use or a data directory locked by another running cluster.
        process.stdout.write(`node ${id} failed to start (${signal ?? `code ${code}`}; see its log above); stopping the others\n`);
        stopping = true;
        exitCode = 1;
        for (const other of children.values()) other.kill('SIGTERM');
      } else if (!stopping) {
        exitCode = 1;
        process.stdout.write(`node ${id} exited unexpectedly (${signal ?? `code ${code}`}); the others keep running\n`);
      }
      if (children.size === 0) {
        process.stdout.write('all nodes stopped\n');
        process.exit(exitCode);
      }
    });
  }

  // The banner comes last, once every node answers and they agree on a leader, so the curl
  // lines work when a person reads them.
  void (async () => {
    const startedAt = performance.now();
    let nextNotice = STILL_WAITING_MS;
    while (!stopping) {
      const views = await Promise.all(NODES.map((id) => nodeView(o.apiPorts[id - 1]!)));
      for (const [i, v] of views.entries()) if (v !== null) serving.add(NODES[i]!);
      const leaders = new Set(views.map((v) => v?.leader ?? 0));
      const [leader] = leaders;
      if (!stopping && leaders.size === 1 && leader !== undefined && leader !== 0) {
        process.stdout.write(banner(o, reused, views[leader - 1]!));
        return;
      }
      if (performance.now() - startedAt >= nextNotice) {
        nextNotice += STILL_WAITING_MS;
        process.stdout.write(`still waiting for the nodes to elect a leader (npm start -- --verbose shows why)…\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  })();

  let signals = 0;
  const stopAll = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      stopping = true;
      process.stdout.write(`\n${sig}: stopping the cluster…\n`);
      for (const child of children.values()) child.kill('SIGTERM');
    } else if (signals >= 3) {
      process.stdout.write('killing the nodes\n');
      for (const child of children.values()) child.kill('SIGKILL');
    }
    // A second signal is usually the same Ctrl-C relayed by npm/tsx: ignore it.
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  // If we die, do not leave detached nodes behind.
  process.on('exit', () => {
    for (const child of children.values()) child.kill('SIGKILL');
  });
}

let options: LocalClusterOptions | null;
try {
  options = parseOptions(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`npm start: ${err.message}\n\n${HELP}`);
  process.exit(2);
}
if (options === null) process.stdout.write(HELP);
else main(options);
