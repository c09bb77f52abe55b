/**
 * `npm run sim:node -- [--seed S] [--runs N] [--steps M] [--mutation NAME] [--enable F,..] [--disable F,..]
 *                     [--keep-going] [--verbose] [--trace LINES]`
 *
 * Runs the whole-node simulator (sim.ts) on seeds S … S+N−1, M driver steps each. On the first
 * violation it prints the seed, the run's parameters, the trace of the last events and the
 * command that reproduces it, and exits 1 (with --keep-going: one line per failing seed, then
 * on). The last stdout line is the summary: `runs=N steps=M violations=V elapsed=Xs`.
 */
import { MUTATION_NAMES, type MutationName } from '../../src/testing/mutations.js';
import { DEFAULT_FEATURES, FEATURES, formatFailure, runSeed, type Feature, type SimNodeOptions } from './sim.js';

interface CliOptions {
  seed: number;
  runs: number;
  steps: number;
  mutation: MutationName | null;
  features: Feature[];
  keepGoing: boolean;
  verbose: boolean;
  traceLines: number;
}

function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = { seed: 1, runs: 1, steps: 400, mutation: null, features: [...DEFAULT_FEATURES], keepGoing: false, verbose: false, traceLines: 300 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const int = (): number => {
      const text = argv[++i];
      const n = Number(text);
      if (text === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`${arg} needs a non-negative integer, got ${text ?? 'nothing'}`);
      return n;
    };
    switch (arg) {
      case '--seed': o.seed = int(); break;
      case '--runs': o.runs = int(); break;
      case '--steps': o.steps = int(); break;
      case '--trace': o.traceLines = Math.max(1, int()); break;
      case '--keep-going': o.keepGoing = true; break;
      case '--verbose': case '-v': o.verbose = true; break;
      case '--mutation': {
        const m = argv[++i];
        if (!MUTATION_NAMES.includes(m as MutationName)) throw new Error(`--mutation must be one of ${MUTATION_NAMES.join(', ')}; got ${m ?? 'nothing'}`);
        o.mutation = m as MutationName;
        break;
      }
      case '--enable': {
        for (const f of (argv[++i] ?? '').split(',')) {
          if (!FEATURES.includes(f as Feature)) throw new Error(`--enable takes a comma-separated list of ${FEATURES.join(', ')}; got ${f}`);
          if (!o.features.includes(f as Feature)) o.features.push(f as Feature);
        }
        break;
      }
      case '--disable': {
        for (const f of (argv[++i] ?? '').split(',')) {
          if (!FEATURES.includes(f as Feature)) throw new Error(`--disable takes a comma-separated list of ${FEATURES.join(', ')}; got ${f}`);
          o.features = o.features.filter((x) => x !== f);
        }
        break;
      }
      case '--help': case '-h':
        process.stdout.write(`usage: npm run sim:node -- [--seed S] [--runs N] [--steps M] [--mutation ${MUTATION_NAMES.join('|')}] ` +
          `[--enable F,..] [--disable F,..] (F: ${FEATURES.join(', ')}; default on: ${DEFAULT_FEATURES.join(', ')}) [--keep-going] [--verbose] [--trace LINES]\n`);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${arg} (try --help)`);
    }
  }
  if (o.runs < 1) throw new Error('--runs must be at least 1');
  return o;
}

async function main(): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`sim:node: ${(err as Error).message}\n`);
    return 2;
  }
  const started = process.hrtime.bigint();
  const elapsed = (): string => (Number(process.hrtime.bigint() - started) / 1e9).toFixed(1);
  let runs = 0;
  let violations = 0;
  for (let seed = o.seed; seed < o.seed + o.runs; seed++) {
    const options: SimNodeOptions = { seed, steps: o.steps, mutation: o.mutation, features: o.features, traceLines: o.traceLines };
    const result = await runSeed(options);
    runs++;
    if (o.verbose || o.runs === 1) {
      const s = result.stats;
      process.stderr.write(`seed ${seed}: ${result.ok ? 'ok' : 'VIOLATION'} hash=${result.traceHash} puts=${s.puts} acked=${s.acked} ` +
        `applied=${s.applied} lin=${s.linReads} ser=${s.serReads} crashes=${s.crashes} (io ${s.ioCrashes}) restarts=${s.restarts} ` +
        `ioFaults=${s.ioFaults} conf=${s.confChanges} transfers=${s.transfers} bitrot=${s.corruptions} drops=${s.drops} ` +
        `resent=${s.resent} rejected=${s.rejectedBatches} events=${s.events} virtual=${s.virtualMs}ms\n`);
    }
    if (!result.ok) {
      violations++;
      if (!o.keepGoing) {
        process.stdout.write(`${formatFailure(result, options)}\n`);
        break;
      }
      process.stdout.write(`VIOLATION seed=${seed}: ${result.failure?.split('\n')[0]}\n`);
    }
    if (runs % 100 === 0) process.stderr.write(`sim:node: ${runs}/${o.runs} runs (seeds ${o.seed}..${seed}), ${violations} violations, ${elapsed()}s\n`);
  }
  process.stdout.write(`runs=${runs} steps=${o.steps} violations=${violations} elapsed=${elapsed()}s\n`);
  return violations > 0 ? 1 : 0;
}

process.exitCode = await main();
