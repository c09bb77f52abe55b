/**
 * `npx tsx test/sim/wal-crash-cli.ts [--seed S] [--runs N] [--keep-going] [--verbose] [--trace]`
 *
 * Runs the WAL crash harness (test/sim/wal-crash.ts) for seeds S … S+N−1; prints each failing
 * seed with its parameters and per-incarnation log, exits non-zero if any failed. The last line
 * is the summary: runs=N failures=F crashes=C steps=S elapsed=Xs. --verbose prints each passing
 * seed's per-incarnation log too; --trace every I/O step of the disk (and the model when a
 * replay is refused).
 */
import { formatWalCrashFailure, runWalCrashSeed } from './wal-crash.js';

function parseArgs(argv: string[]): { seed: number; runs: number; keepGoing: boolean; verbose: boolean; trace: boolean } {
  const opts = { seed: 1, runs: 1, keepGoing: false, verbose: false, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${arg} needs a non-negative integer`);
      return n;
    };
    if (arg === '--seed') opts.seed = value();
    else if (arg === '--runs') opts.runs = value();
    else if (arg === '--keep-going') opts.keepGoing = true;
    else if (arg === '--verbose' || arg === '-v') opts.verbose = true;
    else if (arg === '--trace') opts.trace = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const started = Date.now();
let failures = 0;
let crashes = 0;
let steps = 0;
for (let seed = opts.seed; seed < opts.seed + opts.runs; seed++) {
  const r = await runWalCrashSeed(seed, opts.trace ? { trace: (line) => console.log(`  ${line}`) } : {});
  crashes += r.crashes;
  steps += r.steps;
  if (r.ok && opts.verbose) console.log(`seed ${seed} ok: ${r.log.join('; ')}`);
  if (!r.ok) {
    failures++;
    console.log(formatWalCrashFailure(r));
    if (!opts.keepGoing) break;
  }
}
console.log(`runs=${opts.runs} failures=${failures} crashes=${crashes} steps=${steps} elapsed=${((Date.now() - started) / 1000).toFixed(1)}s`);
process.exitCode = failures > 0 ? 1 : 0;
