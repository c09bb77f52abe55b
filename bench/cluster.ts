/**
 * Cluster benchmark (`npm run bench:cluster`): PUT and linearizable GET throughput and latency
 * through the KV HTTP API of a local 3-node raftkv cluster (three processes on 127.0.0.1), at
 * 1, 16, 64 and 256 concurrent clients with 256-byte values. Clients are undici Pool
 * connections with keep-alive (one request in flight per client), all aimed at the leader. The
 * nodes run the compiled CLI (dist/, built at start), as the published `raftkv` bin does.
 *
 * --compare etcd=PATH  also starts a 3-member etcd cluster from that binary (fresh data dirs,
 *                      127.0.0.1) and runs the same load through its v3 JSON gateway
 *                      (POST /v3/kv/put, POST /v3/kv/range: base64 keys and values, range is
 *                      linearizable by default) against its leader; targets are interleaved
 *                      point by point and the ratios printed.
 * --json FILE          one object per point: {target, op, clients, valueBytes, ops, seconds,
 *                      opsPerSec, p50ms, p99ms, maxMs, errors} (+ cpu and limit notes).
 * --quick              short points (2 s each after a 0.5 s warm-up).
 * --clients LIST       e.g. 1,64 (default 1,16,64,256).
 *
 * What limits a point is judged from process CPU time (utime+stime from /proc/<pid>/stat, per
 * process, as % of one core) sampled around the point, and the measured fdatasync latency of
 * the data directory's file system.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

import { parseFlags, UsageError } from './lib/cli.js';
import { writeJsonRows } from './lib/json.js';
import { freePorts } from './lib/ports.js';
import { SampleRecorder } from './lib/stats.js';
import { formatTable, type Column } from './lib/table.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these units
const VALUE_BYTES = 256;
const KEYSPACE = 1000;
const CORES = os.cpus().length;

type Op = 'put' | 'get';

interface Row {
  target: string;
  op: Op;
  clients: number;
  valueBytes: number;
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  errors: number;
  /** CPU of each process during the point, % of one core. */
  cpu: Record<string, number>;
  /** The process that was leader (the load goes to it). */
  leader: string;
  /** Whole-machine CPU busy during the point, % of all cores (includes unrelated processes). */
  machineBusyPct: number;
  limit: string;
}

interface Proc {
  name: string;
  child: ChildProcess;
  stderrTail: string[];
}

/** A cluster under test: where to send requests and how to phrase them. */
interface Target {
  name: string;
  procs: Proc[];
  /** Base URL of the current leader's client API, and its process name. */
  leader(): Promise<{ url: string; name: string }>;
  /** Request path, method and body for one operation. */
  request(op: Op, key: string, value: Buffer): { path: string; method: 'PUT' | 'GET' | 'POST'; body?: Buffer | string; headers?: Record<string, string> };
  /** Whether a response means success. */
  ok(op: Op, status: number, body: string): boolean;
  stop(): Promise<void>;
}


const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function spawnProc(name: string, command: string, args: string[]): Proc {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const proc: Proc = { name, child, stderrTail: [] };
  child.stderr!.on('data', (d: Buffer) => {
    proc.stderrTail.push(d.toString());
    if (proc.stderrTail.length > 20) proc.stderrTail.shift();
  });
  child.on('exit', (code, signal) => {
    if (!stopping) process.stderr.write(`${name} exited unexpectedly (${signal ?? code}):\n${proc.stderrTail.join('')}\n`);
  });
  return proc;
}

let stopping = false;

/** Extra node flags for the raftkv processes, e.g. RAFTKV_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/p'. */
const extraNodeArgs = (process.env.RAFTKV_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
/** Extra raftkv CLI flags for A/B runs, e.g. RAFTKV_BENCH_CLI_ARGS='--idle-spin-us 0'. */
const extraCliArgs = (process.env.RAFTKV_BENCH_CLI_ARGS ?? '').split(' ').filter((a) => a !== '');

async function stopProcs(procs: Proc[]): Promise<void> {
  await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
    p.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    p.child.kill('SIGTERM');
  })));
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      // not ready
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * The nodes run compiled JavaScript, as the published `raftkv` bin does, not through tsx: tsx's
 * on-the-fly output (name-keeping helpers, source-map hooks) costs measurable CPU per request.
 * Compiled fresh from src/ (`npm run build:ts`, into dist/) for every run so the benchmark never
 * measures a stale build.
 */
function compileCli(): string {
  const res = spawnSync(process.execPath, [TSC, '-p', path.join(REPO, 'tsconfig.build.json')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`tsc failed:\n${res.stdout}${res.stderr}`);
  return path.join(REPO, 'dist', 'src', 'cli.js');
}

async function startRaftkv(dir: string, walMode: string): Promise<Target> {
  const cli = compileCli();
  const ports = await freePorts(6);
  const peers = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[i]}`);
  const apis = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[3 + i]}`);
  const procs = [0, 1, 2].map((i) =>
    spawnProc(`raftkv-${i + 1}`, process.execPath, [
      ...extraNodeArgs,
      cli,
      '--id', String(i + 1),
      '--cluster', peers.join(','),
      '--port', String(ports[3 + i]),
      '--data-dir', path.join(dir, `raftkv-${i + 1}`),
      '--wal-mode', walMode,
      '--log-level', 'warn',
      ...extraCliArgs,
    ]),
  );
  const leader = async (): Promise<{ url: string; name: string }> =>
    waitFor('a raftkv leader', 60_000, async () => {
      const res = await fetch(`${apis[0]}/status`);
      const s = (await res.json()) as { leader: number };
      return s.leader > 0 ? { url: apis[s.leader - 1]!, name: `raftkv-${s.leader}` } : undefined;
    });
  await leader();
  return {
    name: 'raftkv',
    procs,
    leader,
    request: (op, key, value) =>
      op === 'put' ? { path: `/${key}`, method: 'PUT', body: value } : { path: `/${key}`, method: 'GET' },
    ok: (op, status) => (op === 'put' ? status === 204 : status === 200),
    stop: () => stopProcs(procs),
  };
}

async function startEtcd(binary: string, dir: string): Promise<Target> {
  const ports = await freePorts(6);
  const names = ['etcd-1', 'etcd-2', 'etcd-3'];
  const peerUrls = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[i]}`);
  const clientUrls = [0, 1, 2].map((i) => `http://127.0.0.1:${ports[3 + i]}`);
  const initialCluster = names.map((n, i) => `${n}=${peerUrls[i]}`).join(',');
  const procs = names.map((name, i) =>
    spawnProc(name, binary, [
      '--name', name,
      '--data-dir', path.join(dir, name),
      '--listen-client-urls', clientUrls[i]!,
      '--advertise-client-urls', clientUrls[i]!,
      '--listen-peer-urls', peerUrls[i]!,
      '--initial-advertise-peer-urls', peerUrls[i]!,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `bench-${process.pid}`,
      '--logger', 'zap',
      '--log-level', 'warn',
    ]),
  );
  const leader = async (): Promise<{ url: string; name: string }> =>
    waitFor('an etcd leader', 60_000, async () => {
      for (const [i, url] of clientUrls.entries()) {
        const res = await fetch(`${url}/v3/maintenance/status`, { method: 'POST', body: '{}' });
        const s = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (s.leader !== undefined && s.leader !== '0' && s.header?.member_id === s.leader) return { url, name: names[i]! };
      }
      return undefined;
    });
  await leader();
  const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
  return {
    name: 'etcd',
    procs,
    leader,
    request: (op, key, value) =>
      op === 'put'
        ? { path: '/v3/kv/put', method: 'POST', body: JSON.stringify({ key: b64(key), value: b64(value) }), headers: { 'content-type': 'application/json' } }
        : { path: '/v3/kv/range', method: 'POST', body: JSON.stringify({ key: b64(key) }), headers: { 'content-type': 'application/json' } },
    ok: (op, status, body) => status === 200 && (op === 'put' || body.includes('"kvs"')),
    stop: () => stopProcs(procs),
  };
}

function cpuTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** fdatasync latency of 4 KiB overwrites in `dir` (median ms): the floor of one durable write. */
function measureFsyncMs(dir: string): number {
  const file = path.join(dir, 'fsync-probe');
  const fd = fs.openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  const samples: number[] = [];
  try {
    fs.writeSync(fd, block, 0, block.length, 0);
    fs.fdatasyncSync(fd);
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      fs.writeSync(fd, block, 0, block.length, (i % 16) * 4096);
      fs.fdatasyncSync(fd);
      samples.push(performance.now() - t0);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

interface LoadResult {
  ops: number;
  errors: number;
  seconds: number;
  latencies: SampleRecorder;
}

type LoadRequest = ReturnType<Target['request']>;

/**
 * One request through undici's dispatch API with a minimal handler: no Readable body stream or
 * promise chain per response. The load generator shares two cores with the cluster under test
 * and at 256 clients it took ~0.5–0.9 of a core through `pool.request` + `body.text()`
 * (this costs ~15 % less per GET: 43–46 µs vs 51–55 µs of its CPU at 256 clients).
 */
function send(pool: Pool, req: LoadRequest): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let body: Buffer | Buffer[] | null = null;
    pool.dispatch(
      { path: req.path, method: req.method, body: req.body ?? null, headers: req.headers ?? {} },
      {
        onRequestStart() {}, // its presence marks this as a new-style (undici 7) handler
        onResponseStart(_controller, statusCode) {
          status = statusCode;
        },
        onResponseData(_controller, chunk) {
          if (body === null) body = chunk;
          else if (Array.isArray(body)) body.push(chunk);
          else body = [body, chunk];
        },
        onResponseEnd() {
          const text = body === null ? '' : (Array.isArray(body) ? Buffer.concat(body) : body).toString('utf8');
          resolve({ status, text });
        },
        onResponseError(_controller, err) {
          reject(err);
        },
      },
    );
  });
}

/** `clients` loops, each with one request in flight, for warmup + duration seconds. */
async function runLoad(target: Target, origin: string, op: Op, clients: number, warmupMs: number, durationMs: number): Promise<LoadResult> {
  const pool = new Pool(origin, { connections: clients, pipelining: 1, keepAliveTimeout: 60_000 });
  const value = randomBytes(VALUE_BYTES);
  const latencies = new SampleRecorder();
  let ops = 0;
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  const loop = async (client: number): Promise<void> => {
    for (let i = 0; ; i++) {
      const t0 = performance.now();
      if (t0 >= end) return;
      const key = `k${(client * 7919 + i * 104729) % KEYSPACE}`;
      const req = target.request(op, key, value);
      let good = false;
      try {
        const res = await send(pool, req);
        good = target.ok(op, res.status, res.text);
      } catch {
        good = false;
      }
      const t1 = performance.now();
      if (t0 >= measureFrom && t1 <= end) {
        if (good) {
          ops++;
          latencies.push(t1 - t0);
        } else {
          errors++;
        }
      }
      if (!good) await sleep(5);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => loop(c)));
  await pool.close();
  // Requests that started in the window and finished by its end count; the window is the time base.
  return { ops, errors, seconds: durationMs / 1000, latencies };
}

/** Writes every key once so GETs find values. */
async function preload(target: Target): Promise<void> {
  const origin = (await target.leader()).url;
  const pool = new Pool(origin, { connections: 32 });
  const value = randomBytes(VALUE_BYTES);
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < KEYSPACE) {
      const key = `k${next++}`;
      const req = target.request('put', key, value);
      for (let attempt = 0; ; attempt++) {
        const res = await send(pool, req);
        if (target.ok('put', res.status, res.text)) break;
        if (attempt > 50) throw new Error(`preload of ${target.name} failed: ${res.status} ${res.text}`);
        await sleep(50);
      }
    }
  }));
  await pool.close();
}

/** "L3:45 1:20 2:21 bench:30": the target's processes (leader marked) and the load generator. */
function cpuSummary(r: Row): string {
  return Object.entries(r.cpu)
    .filter(([k]) => k.startsWith(r.target) || k === 'bench')
    .map(([k, v]) => `${k === r.leader ? 'L' : ''}${k.replace(/^(raftkv|etcd)-/, '')}:${v}`)
    .join(' ');
}

function judgeLimit(op: Op, clients: number, cpu: Record<string, number>, machineBusyPct: number, p50: number, fsyncMs: number, target: string): string {
  const own = Object.entries(cpu).filter(([name]) => name.startsWith(target));
  const total = Object.values(cpu).reduce((a, b) => a + b, 0); // every process we started, and the bench
  const [busiest, busiestPct] = own.reduce((a, b) => (b[1] > a[1] ? b : a), ['-', 0] as [string, number]);
  const bench = cpu['bench'] ?? 0;
  if (busiestPct >= 80) return `CPU: ${busiest} ${busiestPct.toFixed(0)}%`;
  if (total >= 160) return `CPU: all cores (${total.toFixed(0)}% of 200 in the benchmark's processes)`;
  if (machineBusyPct >= 90) {
    return `CPU: machine saturated (${machineBusyPct.toFixed(0)}% busy; other processes ${Math.max(0, machineBusyPct * CORES - total).toFixed(0)}% of a core; busiest of ours ${busiest} ${busiestPct.toFixed(0)}%)`;
  }
  if (bench >= 80) return `CPU: bench client ${bench.toFixed(0)}%`;
  if (op === 'put' && p50 <= 3 * fsyncMs + 2) return `fsync (${fsyncMs.toFixed(2)} ms) + round trip`;
  if (clients === 1) return 'round trips (serial client)';
  return 'latency: network / scheduling';
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { booleans: ['quick', 'help'], strings: ['compare', 'json', 'clients', 'wal-mode', 'dir'] });
  if (flags.booleans.has('help')) {
    process.stdout.write('usage: npm run bench:cluster -- [--quick] [--compare etcd=PATH] [--json FILE] [--clients 1,16,64,256] [--wal-mode auto|buffered|direct|dsync] [--dir DIR]\n');
    return;
  }
  let etcdBinary: string | null = null;
  const compare = flags.strings.get('compare');
  if (compare !== undefined) {
    const m = /^etcd=(.+)$/.exec(compare);
    if (m === null) throw new UsageError(`--compare must be etcd=PATH, got ${JSON.stringify(compare)}`);
    etcdBinary = m[1]!;
    if (!fs.existsSync(etcdBinary)) throw new UsageError(`--compare: no etcd binary at ${etcdBinary}`);
  }
  const clientCounts = (flags.strings.get('clients') ?? '1,16,64,256').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n) || n < 1 || n > 4096) throw new UsageError(`--clients must be a list of integers 1..4096, got ${s}`);
    return n;
  });
  const walMode = flags.strings.get('wal-mode') ?? 'auto';
  const quick = flags.booleans.has('quick');
  const warmupMs = quick ? 500 : 1000;
  const durationMs = quick ? 2000 : 5000;
  const dir = flags.strings.get('dir') ?? path.join(REPO, 'bench-results', `cluster-${process.pid}`);
  fs.mkdirSync(dir, { recursive: true });

  const fsyncMs = measureFsyncMs(dir);
  process.stdout.write(`data under ${dir}; fdatasync of 4 KiB: median ${fsyncMs.toFixed(2)} ms; ${quick ? 'quick' : 'full'} points (${warmupMs} ms warm-up + ${durationMs} ms)\n`);

  const targets: Target[] = [];
  const cleanup = async (): Promise<void> => {
    stopping = true;
    await Promise.all(targets.map((t) => t.stop()));
    if (flags.strings.get('dir') === undefined) fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const rows: Row[] = [];
  try {
    targets.push(await startRaftkv(dir, walMode));
    if (etcdBinary !== null) targets.push(await startEtcd(etcdBinary, dir));
    for (const t of targets) await preload(t);

    for (const op of ['put', 'get'] as const) {
      for (const clients of clientCounts) {
        for (const target of targets) {
          const procs = targets.flatMap((t) => t.procs);
          const before = procs.map((p) => cpuTicks(p.child.pid));
          const benchBefore = process.cpuUsage();
          const machineBefore = machineTicks();
          const t0 = performance.now();
          const leader = await target.leader();
          const r = await runLoad(target, leader.url, op, clients, warmupMs, durationMs);
          const wallS = (performance.now() - t0) / 1000;
          const cpu: Record<string, number> = {};
          procs.forEach((p, i) => {
            cpu[p.name] = ((cpuTicks(p.child.pid) - before[i]!) / CLK_TCK / wallS) * 100;
          });
          const benchCpu = process.cpuUsage(benchBefore);
          const machineAfter = machineTicks();
          const machineBusyPct = (100 * (machineAfter.busy - machineBefore.busy)) / Math.max(1, machineAfter.total - machineBefore.total);
          cpu['bench'] = ((benchCpu.user + benchCpu.system) / 1e6 / wallS) * 100;
          const [p50, p99, max] = r.latencies.percentiles(50, 99, 100) as [number, number, number];
          const row: Row = {
            target: target.name,
            op,
            clients,
            valueBytes: VALUE_BYTES,
            ops: r.ops,
            seconds: r.seconds,
            opsPerSec: r.ops / r.seconds,
            p50ms: p50,
            p99ms: p99,
            maxMs: max,
            errors: r.errors,
            cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round(v)])),
            leader: leader.name,
            machineBusyPct: Math.round(machineBusyPct),
            limit: judgeLimit(op, clients, cpu, machineBusyPct, p50, fsyncMs, target.name),
          };
          rows.push(row);
          const cpuText = cpuSummary(row).replace(/(\d+)(?= |$)/g, '$1%');
          process.stdout.write(
            `${target.name.padEnd(6)} ${op} c=${String(clients).padStart(3)}  ${row.opsPerSec.toFixed(0).padStart(6)} ops/s  p50 ${p50.toFixed(2)} p99 ${p99.toFixed(2)} max ${max.toFixed(1)} ms  err ${r.errors}  cpu ${cpuText} machine:${row.machineBusyPct}%  → ${row.limit}\n`,
          );
        }
      }
    }
  } finally {
    await cleanup();
  }

  const columns: Column<Row>[] = [
    { header: 'target', value: (r) => r.target },
    { header: 'op', value: (r) => r.op, align: 'left' },
    { header: 'clients', value: (r) => r.clients },
    { header: 'ops/s', value: (r) => r.opsPerSec },
    { header: 'p50 ms', value: (r) => r.p50ms, digits: 2 },
    { header: 'p99 ms', value: (r) => r.p99ms, digits: 2 },
    { header: 'max ms', value: (r) => r.maxMs, digits: 1 },
    { header: 'errors', value: (r) => r.errors },
    { header: 'cpu % (L = leader)', value: cpuSummary, align: 'left' },
    { header: 'machine %', value: (r) => r.machineBusyPct },
    { header: 'limited by', value: (r) => r.limit, align: 'left' },
  ];
  process.stdout.write(`\n${formatTable(columns, rows)}\n`);

  if (etcdBinary !== null) {
    interface Ratio { op: Op; clients: number; ours: Row; theirs: Row }
    const ratios: Ratio[] = [];
    for (const ours of rows.filter((r) => r.target === 'raftkv')) {
      const theirs = rows.find((r) => r.target === 'etcd' && r.op === ours.op && r.clients === ours.clients);
      if (theirs !== undefined) ratios.push({ op: ours.op, clients: ours.clients, ours, theirs });
    }
    const ratioColumns: Column<Ratio>[] = [
      { header: 'op', value: (r) => r.op },
      { header: 'clients', value: (r) => r.clients },
      { header: 'raftkv ops/s', value: (r) => r.ours.opsPerSec },
      { header: 'etcd ops/s', value: (r) => r.theirs.opsPerSec },
      { header: 'ratio', value: (r) => r.ours.opsPerSec / r.theirs.opsPerSec, digits: 2 },
      { header: 'raftkv p99', value: (r) => r.ours.p99ms, digits: 2 },
      { header: 'etcd p99', value: (r) => r.theirs.p99ms, digits: 2 },
      { header: 'p99 ratio', value: (r) => r.ours.p99ms / r.theirs.p99ms, digits: 2 },
    ];
    process.stdout.write(`\nraftkv vs etcd (same run, interleaved point by point)\n${formatTable(ratioColumns, ratios)}\n`);
  }

  const json = flags.strings.get('json');
  if (json !== undefined) {
    writeJsonRows(json, rows);
    process.stdout.write(`\nwrote ${rows.length} rows to ${json}\n`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`bench:cluster: ${err.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`bench:cluster failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  }
});
