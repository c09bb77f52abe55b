/**
 * `npm start`: a local 3-node raftkv cluster in one command, like raftexample's Procfile.
 * Three child processes (peers on 127.0.0.1:12379/22379/32379, KV API on 12380/22380/32380,
 * data under ./data/<id>), their logs prefixed on stdout; Ctrl-C stops all three gracefully.
 *
 * Runs from source through tsx (no build step needed) or from dist/ after a build.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const NODES = [1, 2, 3];
const PEER_URLS = NODES.map((id) => `http://127.0.0.1:${id}2379`);
const API_PORT = (id: number): number => Number(`${id}2380`);
const DATA_ROOT = path.resolve('data');
const COLORS = ['\x1b[36m', '\x1b[33m', '\x1b[35m'];
const RESET = '\x1b[0m';

/** How to run src/cli.ts (via tsx) or dist/src/cli.js, whichever this file is. */
function cliCommand(): string[] {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsxLoader, path.join(path.dirname(here), '..', 'cli.ts')];
  }
  return [path.join(path.dirname(here), '..', 'cli.js')];
}

function prefixLines(stream: NodeJS.ReadableStream, id: number, onLine: (line: string) => void): void {
  const color = process.stdout.isTTY ? COLORS[(id - 1) % COLORS.length]! : '';
  const reset = process.stdout.isTTY ? RESET : '';
  createInterface({ input: stream }).on('line', (line) => {
    process.stdout.write(`${color}[node ${id}]${reset} ${line}\n`);
    onLine(line);
  });
}

function isServingLine(line: string): boolean {
  try {
    return (JSON.parse(line) as { msg?: unknown }).msg === 'serving';
  } catch {
    return false;
  }
}

/** Polls node 1's status until a leader is known (or 20 s pass), so the curl example works. */
async function waitForLeader(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${API_PORT(1)}/status`);
      const status = (await res.json()) as { leader?: unknown };
      if (typeof status.leader === 'number' && status.leader !== 0) return;
    } catch {
      // not up yet, or stopping
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function main(): void {
  const reuse = existsSync(DATA_ROOT);
  const command = cliCommand();
  const children = new Map<number, ChildProcess>();
  let stopping = false;
  let exitCode = 0;
  const serving = new Set<number>();
  process.stdout.write(`starting ${NODES.length} raftkv nodes…\n`);

  const printBanner = (): void => {
    process.stdout.write(
      `\nraftkv local cluster: 3 nodes${reuse ? ` (reusing ${DATA_ROOT}; delete it to start fresh)` : ` (data in ${DATA_ROOT})`}\n` +
        NODES.map((id) => `  node ${id}: KV API http://127.0.0.1:${API_PORT(id)}   peer ${PEER_URLS[id - 1]}\n`).join('') +
        '\nTry:\n' +
        '  curl -X PUT http://127.0.0.1:12380/my-key -d hello\n' +
        '  curl http://127.0.0.1:22380/my-key\n' +
        '  curl http://127.0.0.1:32380/status\n' +
        '\nCtrl-C stops all three.\n\n',
    );
  };

  for (const id of NODES) {
    const args = [
      ...command,
      '--id', String(id),
      '--cluster', PEER_URLS.join(','),
      '--port', String(API_PORT(id)),
      '--data-dir', path.join(DATA_ROOT, String(id)),
    ];
    // Own process group: Ctrl-C reaches only us, and we stop each node exactly once.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.set(id, child);
    prefixLines(child.stdout!, id, () => {});
    prefixLines(child.stderr!, id, (line) => {
      if (!serving.has(id) && isServingLine(line)) {
        serving.add(id);
        if (serving.size === NODES.length) void waitForLeader().then(printBanner);
      }
    });
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

main();
