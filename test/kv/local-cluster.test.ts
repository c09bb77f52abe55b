/**
 * `npm start` (src/kv/local-cluster.ts) as a person meets it: a real child process that starts
 * three real node processes on free 127.0.0.1 ports. By default its output is short: only the
 * nodes' warnings and errors, then a banner once the cluster has a leader, naming it; the
 * banner's URLs work. --verbose shows the nodes' JSON logs.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { freePorts } from '../../bench/lib/ports.js';

const LOCAL_CLUSTER = fileURLToPath(new URL('../../src/kv/local-cluster.ts', import.meta.url));
/** By URL: the processes run from a temporary directory, where 'tsx' does not resolve. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const BANNER = /^raftkv local cluster is up: 3 nodes, node ([123]) leads \(term \d+\)$/;
const BANNER_END = /Ctrl-C stops all three\.$/;
/** Generous: three processes compile through tsx and elect a leader on a shared machine. */
const WAIT_LINE_MS = 60_000;

interface Running {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** Resolves with the index of the first line matching `re` (from `from` on). */
  waitForLine(re: RegExp, from?: number): Promise<number>;
}

/** This process's environment without LOG_LEVEL, which would override the defaults under test. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LOG_LEVEL;
  return env;
}

function startLocalCluster(args: string[], cwd: string, env: NodeJS.ProcessEnv = cleanEnv()): Running {
  const proc = spawn(process.execPath, ['--import', TSX, LOCAL_CLUSTER, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; from: number; resolve: (i: number) => void }[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (lines.length - 1 >= w.from && w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(lines.length - 1);
      }
    }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', (l) => onLine(`stderr: ${l}`));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const waitForLine = (re: RegExp, from = 0): Promise<number> => {
    const found = lines.findIndex((l, i) => i >= from && re.test(l));
    if (found !== -1) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${WAIT_LINE_MS} ms:\n${lines.join('\n')}`)), WAIT_LINE_MS);
      waiters.push({ re, from, resolve: (i) => { clearTimeout(timer); resolve(i); } });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`local cluster exited (${code}) before printing ${re}:\n${lines.join('\n')}`));
      });
    });
  };
  return { proc, lines, exited, waitForLine };
}

describe('npm start: the local cluster', function () {
  this.timeout(120_000);
  let running: Running | null = null;
  let dir = '';

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'raftkv-local-cluster-'));
  });

  afterEach(async () => {
    // Always a graceful stop first: the nodes are in their own process groups, and only the
    // local cluster knows them.
    if (running !== null && running.proc.exitCode === null && running.proc.signalCode === null) {
      running.proc.kill('SIGTERM');
      const stopped = await Promise.race([running.exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 30_000))]);
      if (!stopped) running.proc.kill('SIGKILL');
    }
    running = null;
    await rm(dir, { recursive: true, force: true });
  });

  async function ports(): Promise<string[]> {
    const p = await freePorts(6);
    return ['--peer-ports', p.slice(0, 3).join(','), '--api-ports', p.slice(3).join(',')];
  }

  it('prints only a banner naming the leader once it is known; its URLs work; Ctrl-C stops all', async () => {
    const portArgs = await ports();
    const apiPorts = portArgs[3]!.split(',');
    const r = (running = startLocalCluster([...portArgs, '--data-dir', path.join(dir, 'data')], dir));
    const bannerAt = await r.waitForLine(BANNER);
    const endAt = await r.waitForLine(BANNER_END, bannerAt);
    const output = r.lines.join('\n');

    const leader = Number(BANNER.exec(r.lines[bannerAt]!)![1]);
    const leaderLine = r.lines.slice(bannerAt, endAt).find((l) => l.startsWith(`  node ${leader} `));
    assert.match(leaderLine ?? '', /\(leader\)$/, output);
    for (const line of r.lines.slice(0, bannerAt)) {
      assert.doesNotMatch(line, /^\[node \d\] (\{|INFO |DEBUG )/, `only warnings and errors before the banner:\n${output}`);
    }

    // The banner's curl lines, done with fetch.
    const put = await fetch(`http://127.0.0.1:${apiPorts[0]}/my-key`, { method: 'PUT', body: 'hello' });
    assert.equal(put.status, 204);
    const get = await fetch(`http://127.0.0.1:${apiPorts[1]}/my-key`);
    assert.equal(await get.text(), 'hello');

    r.proc.kill('SIGINT');
    assert.equal(await r.exited, 0, r.lines.join('\n'));
    assert.equal(r.lines[r.lines.length - 1], 'all nodes stopped', r.lines.join('\n'));
  });

  it('--verbose shows the nodes\' JSON logs, each line prefixed with its node id', async () => {
    const r = (running = startLocalCluster([...(await ports()), '--data-dir', path.join(dir, 'data'), '--verbose'], dir));
    const bannerAt = await r.waitForLine(BANNER);
    for (const id of [1, 2, 3]) {
      const serving = r.lines.findIndex((l) => l.startsWith(`[node ${id}] {`) && l.includes('"level":"info"') && l.includes('"msg":"serving"'));
      assert.ok(serving !== -1 && serving < bannerAt, `node ${id}'s "serving" log line comes before the banner:\n${r.lines.join('\n')}`);
    }
    r.proc.kill('SIGINT');
    assert.equal(await r.exited, 0, r.lines.join('\n'));
  });

  it('refuses a bad LOG_LEVEL or bad ports with exit code 2 and says why', function () {
    const run = (args: string[], env: NodeJS.ProcessEnv) =>
      spawnSync(process.execPath, ['--import', TSX, LOCAL_CLUSTER, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
    const badLevel = run([], { ...cleanEnv(), LOG_LEVEL: 'loud' });
    assert.equal(badLevel.status, 2, badLevel.stderr);
    assert.match(badLevel.stderr, /LOG_LEVEL must be debug, info, warn or error/);
    const badPorts = run(['--peer-ports', '1,2'], cleanEnv());
    assert.equal(badPorts.status, 2, badPorts.stderr);
    assert.match(badPorts.stderr, /--peer-ports needs 3 ports/);
  });
});
