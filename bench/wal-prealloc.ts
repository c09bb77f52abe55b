/**
 * How a segment's space is reserved decides what every later fdatasync costs
 * (`npm run bench:wal-prealloc`). For each strategy the WAL can use to prepare the next segment
 * (src/wal/backend.ts PreallocateStrategy):
 *
 *   zero       write zeros over the whole segment ahead of time (the WAL's default)
 *   fallocate  reserve unwritten extents (what etcd does): every sync must also convert them
 *   none       ftruncate only: a sparse file, blocks allocated as appends reach them
 *
 * a fresh segment is created, then single 4 KiB records are appended with a sync each (the
 * Raft hot path at low load), in `buffered` and `direct` mode. Strategies are interleaved
 * round by round on the same directory, because the machine is shared and noisy.
 *
 * Flags: --rounds N (default 3), --seconds S per run (default 2), --dir DIR, --json FILE.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecordType, type PreallocateStrategy, type RecordInput, type WalMode } from '../src/wal/backend.js';
import { encodeSegmentHeader } from '../src/wal/frame.js';
import { loadNativeBackend } from '../src/wal/native-backend.js';
import { parseFlags, UsageError } from './lib/cli.js';
import { writeJsonRows } from './lib/json.js';
import { SampleRecorder } from './lib/stats.js';
import { formatTable, type Column } from './lib/table.js';

const STRATEGIES: readonly PreallocateStrategy[] = ['zero', 'fallocate', 'none'];
const MODES: readonly WalMode[] = ['buffered', 'direct'];
const RECORD_BYTES = 4096;
const SEGMENT_BYTES = 64 * 1024 * 1024;

interface Row {
  strategy: PreallocateStrategy;
  mode: WalMode;
  recordBytes: number;
  syncs: number;
  seconds: number;
  syncsPerSec: number;
  p50us: number;
  p99us: number;
  /** Time to create and reserve the 64 MiB segment (off the hot path in the WAL). */
  createMs: number;
}

async function measure(dir: string, strategy: PreallocateStrategy, mode: WalMode, seconds: number, all: SampleRecorder) {
  const backend = loadNativeBackend();
  const file = path.join(dir, `segment-${strategy}-${mode}.wal`);
  fs.rmSync(file, { force: true });
  const created = performance.now();
  await backend.createSegmentFile(file, SEGMENT_BYTES, strategy);
  const createMs = performance.now() - created;
  const salt = (Math.random() * 0x1_0000_0000) >>> 0;
  const segment = await backend.openSegment(file, { mode, offset: 0, prevCrc: 0, salt });
  if (segment.mode !== mode) throw new Error(`opened ${mode} as ${segment.mode}: ${segment.modeReason}`);
  const header = encodeSegmentHeader({ blockSize: segment.blockSize, seq: 1, firstIndex: 1, salt, prevCrc: 0 });
  await segment.append([{ type: RecordType.SegmentHeader, payload: header }], true);
  const record: RecordInput[] = [{ type: RecordType.Entry, payload: new Uint8Array(RECORD_BYTES).fill(7) }];
  const latencies = new SampleRecorder();
  const perAppend = RECORD_BYTES + 16 + segment.blockSize;
  let written = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline && written + perAppend < SEGMENT_BYTES) {
    const t0 = performance.now();
    await segment.append(record, true);
    const us = (performance.now() - t0) * 1000;
    latencies.push(us);
    all.push(us);
    written += perAppend;
  }
  const elapsed = (performance.now() - start) / 1000;
  await segment.close();
  fs.rmSync(file, { force: true });
  const [p50, p99] = latencies.percentiles(50, 99);
  return { syncs: latencies.length, seconds: elapsed, p50: p50!, p99: p99!, createMs };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), { booleans: [], strings: ['rounds', 'seconds', 'dir', 'json'] });
  const rounds = Number(flags.strings.get('rounds') ?? 3);
  const seconds = Number(flags.strings.get('seconds') ?? 2);
  if (!(Number.isInteger(rounds) && rounds > 0)) throw new UsageError('--rounds must be a positive integer');
  if (!(seconds > 0)) throw new UsageError('--seconds must be positive');
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const base = flags.strings.get('dir') ?? path.join(repo, 'bench-results');
  fs.mkdirSync(base, { recursive: true });
  const dir = fs.mkdtempSync(path.join(base, 'wal-prealloc-'));
  const backend = loadNativeBackend();
  console.log(`segment preallocation benchmark — ${dir} on ${backend.filesystemType(dir)}, ` +
    `${rounds} rounds × ${seconds} s, 4 KiB records, one sync each`);

  const totals = new Map<string, { syncs: number; seconds: number; lat: SampleRecorder; createMs: number[] }>();
  try {
    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        // Rotate the order each round so no strategy always runs first.
        for (let k = 0; k < STRATEGIES.length; k++) {
          const strategy = STRATEGIES[(k + round) % STRATEGIES.length]!;
          const key = `${strategy}/${mode}`;
          const t = totals.get(key) ?? { syncs: 0, seconds: 0, lat: new SampleRecorder(), createMs: [] };
          const r = await measure(dir, strategy, mode, seconds, t.lat);
          t.syncs += r.syncs;
          t.seconds += r.seconds;
          t.createMs.push(r.createMs);
          totals.set(key, t);
          console.log(`  round ${round + 1}: ${key.padEnd(18)} ${(r.syncs / r.seconds).toFixed(0).padStart(6)} syncs/s ` +
            `p50 ${r.p50.toFixed(0)} µs p99 ${r.p99.toFixed(0)} µs (create ${r.createMs.toFixed(0)} ms)`);
        }
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const rows: Row[] = [];
  for (const mode of MODES) {
    for (const strategy of STRATEGIES) {
      const t = totals.get(`${strategy}/${mode}`)!;
      const [p50, p99] = t.lat.percentiles(50, 99);
      rows.push({
        strategy, mode, recordBytes: RECORD_BYTES, syncs: t.syncs, seconds: t.seconds,
        syncsPerSec: t.syncs / t.seconds, p50us: p50!, p99us: p99!,
        createMs: t.createMs.reduce((a, b) => a + b, 0) / t.createMs.length,
      });
    }
  }
  const columns: Column<Row>[] = [
    { header: 'strategy', value: (r) => r.strategy },
    { header: 'mode', value: (r) => r.mode },
    { header: 'syncs/s', value: (r) => r.syncsPerSec.toFixed(0), align: 'right' },
    { header: 'p50 µs', value: (r) => r.p50us.toFixed(0), align: 'right' },
    { header: 'p99 µs', value: (r) => r.p99us.toFixed(0), align: 'right' },
    { header: 'create 64 MiB ms', value: (r) => r.createMs.toFixed(0), align: 'right' },
  ];
  console.log();
  console.log(formatTable(columns, rows));
  for (const mode of MODES) {
    const zero = rows.find((r) => r.mode === mode && r.strategy === 'zero')!;
    for (const other of rows.filter((r) => r.mode === mode && r.strategy !== 'zero')) {
      console.log(`  ${mode}: zero-filled ${(zero.syncsPerSec / other.syncsPerSec).toFixed(2)}x the syncs/s of ${other.strategy}`);
    }
  }
  const json = flags.strings.get('json');
  if (json !== undefined) writeJsonRows(json, rows);
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`bench:wal-prealloc: ${err.message}`);
    process.exit(2);
  }
  throw err;
});
