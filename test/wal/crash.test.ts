/**
 * A child process appends in a loop (fixtures/append-loop.ts) and is SIGKILLed at random
 * moments (seeded; the seed is printed), many times over the same directory: after every kill,
 * every entry whose save had resolved (the child printed `ack <index>`) is there after reopening,
 * in order, with its content — and the log keeps going across kills, repairs and segment cuts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Wal } from '../../src/wal/wal.js';
import { backends, makeRandom, MemoryLogger, payloadFor, SEED, tempRoot } from './fixtures/backends.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/append-loop.ts', import.meta.url));
const ROUNDS = Number(process.env.RAFTKV_CRASH_ROUNDS ?? 15);

interface ChildRun {
  acked: number;
  ready: number | null;
  stderr: string;
  signal: NodeJS.Signals | null;
  code: number | null;
}

/** Run the child; kill it `delayMs` after spawn (or after `ready` when afterReady). */
function runAndKill(dir: string, backendName: string, seed: number, delayMs: number, afterReady: boolean): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir, backendName, String(seed)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run: ChildRun = { acked: 0, ready: null, stderr: '', signal: null, code: null };
    let buffered = '';
    let timer: NodeJS.Timeout | null = null;
    const kill = () => {
      timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    };
    if (!afterReady) kill();
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const [word, value] = line.split(' ');
        if (word === 'ack') run.acked = Math.max(run.acked, Number(value));
        else if (word === 'ready') {
          run.ready = Number(value);
          if (afterReady) kill();
        }
      }
      // A partial last line (killed mid-write) is not an acknowledgement: it stays in `buffered`.
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (run.stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      run.code = code;
      run.signal = signal;
      resolve(run);
    });
  });
}

for (const { name, backend } of backends) {
  describe(`WAL under SIGKILL (${name} backend)`, function () {
    it(`every acknowledged entry survives ${ROUNDS} random kills (seed ${SEED})`, async function () {
      const random = makeRandom(SEED);
      const root = tempRoot(`crash-${name}`);
      const dir = path.join(root, 'wal');
      const logger = new MemoryLogger();
      let everAcked = 0;
      let repairs = 0;
      try {
        for (let round = 0; round < ROUNDS; round++) {
          // Mostly kill while appending; sometimes while the child is still opening/repairing.
          const afterReady = random() < 0.8;
          const delayMs = afterReady ? 20 + Math.floor(random() * 250) : Math.floor(random() * 700);
          const run = await runAndKill(dir, name, SEED * 1000 + round, delayMs, afterReady);
          const context = `round ${round} (seed ${SEED}, kill ${afterReady ? 'after ready +' : 'after spawn +'}${delayMs} ms)`;
          assert.equal(run.signal, 'SIGKILL', `${context}: child exited on its own (code ${run.code}): ${run.stderr}`);
          if (!Wal.exists(dir)) {
            assert.equal(run.acked, 0, context);
            continue; // killed before the WAL was created
          }
          everAcked = Math.max(everAcked, run.acked);

          const replay = await Wal.open(dir, { backend, logger, segmentBytes: 32 * 1024 });
          try {
            if (replay.repair !== null) repairs++;
            const last = replay.entries.length === 0 ? 0 : replay.entries[replay.entries.length - 1]!.index;
            assert.ok(last >= everAcked, `${context}: acknowledged up to ${everAcked} but the log ends at ${last}`);
            replay.entries.forEach((e, i) => {
              assert.equal(e.index, i + 1, `${context}: entries out of order / missing at position ${i}`);
              assert.equal(e.term, 1, context);
              assert.deepEqual(e.data, payloadFor(e.index), `${context}: content of entry ${e.index}`);
            });
          } finally {
            await replay.wal.close();
          }
        }
        assert.ok(everAcked > 0, 'the child acknowledged some entries');
        console.log(`      (${name}: ${ROUNDS} kills, ${everAcked} entries acknowledged, ${repairs} tail repairs, ${fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).length} segments, seed ${SEED})`);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  });
}
