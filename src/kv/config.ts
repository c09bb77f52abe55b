/**
 * Command-line flags of `raftkv` (raftexample's flags plus ours), their validation and --help.
 * Parsing is pure: it returns a config or throws UsageError with a message meant for a human.
 */

import { isReadIndexFanout, type ReadIndexFanout } from '../raft/config.js';
import { isLogLevel, type LogLevel } from './logger.js';

export class UsageError extends Error {
  override name = 'UsageError';
}

export type WalModeFlag = 'auto' | 'buffered' | 'direct' | 'dsync';

export interface KvServerConfig {
  id: number;
  /** Peer URLs; node i (1-based) is cluster[i-1]. */
  cluster: string[];
  port: number;
  join: boolean;
  dataDir: string;
  walMode: WalModeFlag;
  readIndexFanout: ReadIndexFanout;
  idleSpinUs: number;
  snapshotCount: number;
  snapshotCatchUpEntries: number;
  /** 0 = unlimited. */
  snapshotBytesMax: number;
  listenHost: string;
  tickMs: number;
  electionTicks: number;
  requestTimeoutMs: number;
  logLevel: LogLevel;
}

export const HELP = `raftkv — a replicated key-value server on Raft (raftexample's API, linearizable)

Usage:
  raftkv --id N --cluster URL,URL,... --port P [options]

Required:
  --id N                 This node's id: its 1-based position in --cluster.
  --cluster URLS         Comma-separated peer URLs of every member, e.g.
                         http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379
                         This node's peer (Raft) server listens on the port of its own URL.
  --port P               Port of the key-value HTTP API.

Options:
  --join                 Join an existing cluster instead of bootstrapping a new one: start
                         empty and wait to be added (POST /<id> on a member). Ignored when the
                         data directory already holds this node's log.
  --data-dir DIR         WAL and snapshots go under DIR (default: raftkv-<id>).
  --wal-mode MODE        auto | buffered | direct | dsync (default: auto = O_DIRECT where the
                         file system supports it, else buffered writes + fdatasync).
  --read-index-fanout quorum|all
                         Followers a linearizable GET's heartbeat round asks: quorum (default)
                         just enough for a quorum, the one that answered the last read first,
                         everyone at the next heartbeat if it does not answer; all = everyone
                         every time, as etcd does. Linearizable either way.
  --idle-spin-us N       After each Raft pass keep polling (yielding the CPU) for N µs instead
                         of sleeping: lower latency at low load for otherwise-idle CPU
                         (default: 1000; 0 = off; off without the native addon).
  --snapshot-count N     Snapshot the store after N applied entries (default: 10000).
  --snapshot-catchup-entries N
                         Entries kept behind a snapshot for slow followers (default: 10000).
  --snapshot-bytes-max N Largest snapshot (bytes of store state) sent to or accepted from a
                         peer; a follower behind a bigger one cannot catch up (default:
                         8589934592 = 8 GiB; 0 = unlimited). Snapshots stream from disk to
                         disk in 1 MiB chunks, so memory does not grow with it.
  --listen-host HOST     Interface both servers bind (default: 127.0.0.1).
  --tick-ms MS           Raft tick (default: 100); election timeout = election-ticks × tick.
  --election-ticks N     Election timeout in ticks (default: 10; heartbeat is 1 tick).
  --request-timeout-ms MS
                         How long a PUT, linearizable GET or membership change may wait
                         (for a leader too, during an election) before the API answers 504,
                         or 503 if no leader appeared meanwhile (default: 5000).
  --log-level LEVEL      debug | info | warn | error (default: info). Logs are JSON lines on
                         stderr, one per event.
  -h, --help             Show this help.

HTTP API (on --port):
  PUT    /<key>          Body = value (≤ 1 MiB). 204 once the write is committed and applied.
  GET    /<key>          200 + value, or 404. Linearizable (ReadIndex) by default;
                         ?consistency=serializable reads this node's state without a round trip.
  POST   /<id>           Body = the new member's peer URL: add a voter (?learner=true: a learner).
  DELETE /<id>           Remove member <id>.
  GET    /status         This node's Raft status as JSON.
  Errors are JSON {"error", "message"}: 400 bad request, 404, 405 (with Allow), 409
  membership conflict, 413 body too large (> 1 MiB), 503 no leader / starting / stopping
  (with "leader" = the leader's peer URL and "leaderId" when one is known), 504 timeout.
  PUT and GET answers carry X-Raftkv-Revision (the Raft index of the value's write) and
  Server-Timing: raft;dur=<ms>.

SIGINT / SIGTERM stop the node gracefully. Exit codes: 0 stopped, 1 fatal error, 2 bad flags.
`;

const FLAGS_WITH_VALUE = new Set([
  'id',
  'cluster',
  'port',
  'data-dir',
  'wal-mode',
  'read-index-fanout',
  'idle-spin-us',
  'snapshot-count',
  'snapshot-catchup-entries',
  'snapshot-bytes-max',
  'listen-host',
  'tick-ms',
  'election-ticks',
  'request-timeout-ms',
  'log-level',
]);
const BOOLEAN_FLAGS = new Set(['join', 'help']);

function intFlag(name: string, raw: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(raw)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${raw}`);
  }
  return n;
}

function peerUrl(raw: string, position: number): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--cluster entry ${position} is not a URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:') throw new UsageError(`--cluster entry ${position} must be http://host:port, got ${JSON.stringify(raw)}`);
  if (url.port === '') throw new UsageError(`--cluster entry ${position} must name a port, got ${JSON.stringify(raw)}`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new UsageError(`--cluster entry ${position} must be just http://host:port, got ${JSON.stringify(raw)}`);
  }
  return `${url.protocol}//${url.host}`;
}

/** Returns null when --help was asked for. */
export function parseArgs(argv: readonly string[]): KvServerConfig | null {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h') {
      booleans.add('help');
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(arg)} (flags start with --)`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (BOOLEAN_FLAGS.has(name)) {
      if (eq !== -1) {
        const v = arg.slice(eq + 1);
        if (v === 'true') booleans.add(name);
        else if (v !== 'false') throw new UsageError(`--${name} takes no value (or =true/=false), got ${JSON.stringify(v)}`);
        continue;
      }
      booleans.add(name);
    } else if (FLAGS_WITH_VALUE.has(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '' || (eq === -1 && value.startsWith('--'))) {
        throw new UsageError(`--${name} needs a value`);
      }
      if (values.has(name)) throw new UsageError(`--${name} given twice`);
      values.set(name, value);
    } else {
      throw new UsageError(`unknown flag --${name} (see --help)`);
    }
  }
  if (booleans.has('help')) return null;

  for (const required of ['id', 'cluster', 'port']) {
    if (!values.has(required)) throw new UsageError(`--${required} is required (see --help)`);
  }
  const cluster = values.get('cluster')!.split(',').map((s, i) => peerUrl(s.trim(), i + 1));
  const seen = new Set<string>();
  for (const u of cluster) {
    if (seen.has(u)) throw new UsageError(`--cluster lists ${u} twice`);
    seen.add(u);
  }
  const id = intFlag('id', values.get('id')!, 1, cluster.length);
  const port = intFlag('port', values.get('port')!, 1, 65535);
  const walMode = values.get('wal-mode') ?? 'auto';
  if (walMode !== 'auto' && walMode !== 'buffered' && walMode !== 'direct' && walMode !== 'dsync') {
    throw new UsageError(`--wal-mode must be auto, buffered, direct or dsync, got ${JSON.stringify(walMode)}`);
  }
  const readIndexFanout = values.get('read-index-fanout') ?? 'quorum';
  if (!isReadIndexFanout(readIndexFanout)) {
    throw new UsageError(`--read-index-fanout must be quorum or all, got ${JSON.stringify(readIndexFanout)}`);
  }
  const logLevel = values.get('log-level') ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be debug, info, warn or error, got ${JSON.stringify(logLevel)}`);
  const listenHost = values.get('listen-host') ?? '127.0.0.1';
  const ownPeerPort = Number(new URL(cluster[id - 1]!).port);
  if (ownPeerPort === port) throw new UsageError(`--port ${port} is also this node's peer port in --cluster`);
  const electionTicks = intFlag('election-ticks', values.get('election-ticks') ?? '10', 2, 1000);
  return {
    id,
    cluster,
    port,
    join: booleans.has('join'),
    dataDir: values.get('data-dir') ?? `raftkv-${id}`,
    walMode,
    readIndexFanout,
    idleSpinUs: intFlag('idle-spin-us', values.get('idle-spin-us') ?? '1000', 0, 100_000),
    snapshotCount: intFlag('snapshot-count', values.get('snapshot-count') ?? '10000', 1, Number.MAX_SAFE_INTEGER),
    snapshotCatchUpEntries: intFlag('snapshot-catchup-entries', values.get('snapshot-catchup-entries') ?? '10000', 0, Number.MAX_SAFE_INTEGER),
    snapshotBytesMax: intFlag('snapshot-bytes-max', values.get('snapshot-bytes-max') ?? String(8 * 1024 * 1024 * 1024), 0, Number.MAX_SAFE_INTEGER),
    listenHost,
    tickMs: intFlag('tick-ms', values.get('tick-ms') ?? '100', 1, 60_000),
    electionTicks,
    requestTimeoutMs: intFlag('request-timeout-ms', values.get('request-timeout-ms') ?? '5000', 1, 3_600_000),
    logLevel,
  };
}
