/**
 * `npm run sim -- [--seed S] [--runs N] [--steps M] [--quiet]`
 *
 * Runs seeds S … S+N−1 with M chaos steps each, stops at the first violation (printing the seed,
 * the per-seed parameters and the trace of the last events) and exits non-zero. Progress goes
 * to stderr every 500 runs; --keep-going prints one line per failing seed and carries on
 * (soak mode). The last stdout line is the summary:
 *   runs=N steps=M violations=V elapsed=Xs
 */
import type { Mutation } from './node-host.js';
import { formatFailure, runSeed } from './sim.js';

interface CliOptions {
  seed: number;
  runs: number;
  steps: number;
  verbose: boolean;
  mutation: Mutation;
  traceLines: number;
  keepGoing: boolean;
}

function parseArgs(argv: string[]): CliOptions {
  const opts: CliOptions = { seed: 1, runs: 1, steps: 5000, verbose: false, mutation: 'none', traceLines: 200, keepGoing: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): number => {
      const text = argv[++i];
      const n = Number(text);
      if (text === undefined || !Number.isSafeInteger(n) || n < 0) {
        throw new Error(`${arg} needs a non-negative integer, got ${text ?? 'nothing'}`);
      }
      return n;
    };
    switch (arg) {
      case '--seed': opts.seed = value(); break;
      case '--runs': opts.runs = value(); break;
      case '--steps': opts.steps = value(); break;
      case '--verbose': case '-v': opts.verbose = true; break;
      case '--trace': opts.traceLines = Math.max(1, value()); break;
      case '--keep-going': opts.keepGoing = true; break;
      case '--mutation': {
        const m = argv[++i];
        if (m !== 'none' && m !== 'forget-vote' && m !== 'lose-acked-entries') {
          throw new Error(`--mutation must be none, forget-vote or lose-acked-entries, got ${m ?? 'nothing'}`);
        }
        opts.mutation = m;
        break;
      }
      case '--help': case '-h':
        process.stdout.write('usage: npm run sim -- [--seed S] [--runs N] [--steps M] [--verbose] [--trace LINES] [--keep-going] [--mutation forget-vote|lose-acked-entries]\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg} (try --help)`);
    }
  }
  if (opts.runs < 1) throw new Error('--runs must be at least 1');
  return opts;
}

async function main(): Promise<number> {
  let opts: CliOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`sim: ${(err as Error).message}\n`);
    return 2;
  }
  const started = process.hrtime.bigint();
  const elapsed = (): string => (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
  let runs = 0;
  let violations = 0;
  for (let seed = opts.seed; seed < opts.seed + opts.runs; seed++) {
    const result = await runSeed({ seed, steps: opts.steps, mutation: opts.mutation, traceLines: opts.traceLines });
    runs++;
    if (opts.verbose || opts.runs === 1) {
      const s = result.stats;
      process.stderr.write(`seed ${seed}: ${result.ok ? 'ok' : 'VIOLATION'} leaders=${s.leaders} ` +
        `maxTerm=${s.maxTerm} committed=${s.committed} reads=${s.reads} crashes=${s.crashes} ` +
        `partitions=${s.partitions} conf=${s.confChanges} snaps=${s.snapshotsSent} msgs=${s.messages} ` +
        `healTicks=${s.healTicks}\n`);
    }
    if (!result.ok) {
      violations++;
      if (!opts.keepGoing) {
        process.stdout.write(`${formatFailure(result, opts.steps)}\n`);
        break;
      }
      // Soak mode: one line per failing seed, then carry on.
      process.stdout.write(`VIOLATION seed=${seed}: ${result.failure?.split('\n')[0]}\n`);
    }
    if (runs % 500 === 0) {
      process.stderr.write(`sim: ${runs}/${opts.runs} runs (seeds ${opts.seed}..${seed}), ${violations} violations, ${elapsed()}s\n`);
    }
  }
  process.stdout.write(`runs=${runs} steps=${opts.steps} violations=${violations} elapsed=${elapsed()}s\n`);
  return violations > 0 ? 1 : 0;
}

process.exitCode = await main();
