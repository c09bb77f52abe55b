/**
 * WAL hot append path benchmark (`npm run bench:wal`), the matrix of issue 3:
 *
 *   raw            the addon's rawWriteSyncLoop: 4 KiB write + fdatasync into a pre-zeroed file
 *                  (the syncs/s ceiling) and 1 MiB writes (the bandwidth ceiling)
 *   native         the native WalBackend in buffered / direct / dsync mode
 *   js             the pure-TypeScript WalBackend (fs.writev + fs.fdatasync callbacks)
 *   node-fs        what a Node user would write: fs.writevSync + fs.fdatasyncSync, append-mode file
 *   node-fs-async  fs.promises FileHandle writev + datasync, append-mode file
 *
 * Record sizes 256 B and 4 KiB, batches of 1, 16, 256 records, one producer awaiting each
 * append; plus 64 concurrent producers appending single records (group commit; native and js).
 * Every backend frames the same records the same way (docs/wal-format.md, CRC-32C); the two
 * node-fs baselines frame in JS with src/wal/frame.ts, as a Node WAL would have to.
 *
 * It measures the WalBackend seam directly (not the WAL layer). Segments are preallocated with
 * zeros before timing, one file per backend and mode.
 *
 * The machine is shared and noisy (the same fsync swings 2x within minutes), so rows that are
 * compared with each other are measured in short alternating slices: the rows of a comparison
 * group (one point's backends, plus the raw ceiling and the 64-producer rows its targets compare
 * with) each run one slice per cycle, in an order rotated every cycle, and every group runs once
 * per cycle. A target ratio is computed per cycle from the two slices of that cycle (taken
 * seconds apart) and reported as the median and range over cycles; rows aggregate all slices.
 *
 * Flags: --quick (4 cycles of 0.25 s slices: about a second per row), --cycles N, --seconds S
 * (slice length), --json FILE (one object per row), --dir DIR (default: a fresh directory under
 * ./bench-results, i.e. on the repo's filesystem).
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  RecordType,
  type RecordInput,
  type SegmentFile,
  type WalBackend,
  type WalMode,
} from '../src/wal/backend.js';
import { batchByteLength, encodeBatch, encodeSegmentHeader } from '../src/wal/frame.js';
import { createJsBackend } from '../src/wal/js-backend.js';
import {
  loadNativeBackend,
  nativeCrc32cImplementation,
  nativeSegmentTestHooks,
  rawWriteSyncLoop,
} from '../src/wal/native-backend.js';
import { parseFlags, UsageError } from './lib/cli.js';
import { writeJsonRows } from './lib/json.js';
import { LOOP_DELAY_RESOLUTION_MS, LoopDelayMonitor } from './lib/loop-delay.js';
import { SampleRecorder } from './lib/stats.js';
import { formatTable, type Column } from './lib/table.js';

type BackendName = 'raw' | 'native' | 'js' | 'node-fs' | 'node-fs-async';

/** A target ratio of this row to another, one value per cycle (slices seconds apart). */
interface PairRatio {
  /** What is compared: 'syncsPerSec' | 'recordsPerSec' | 'mbPerSec'. */
  metric: MetricName;
  /** The row it is divided by (backend mode recordBytes x batch, producers). */
  vs: string;
  /** Issue 3's goal for this ratio (null: shown for context only). */
  goal: number | null;
  median: number;
  min: number;
  max: number;
  cycles: number;
}

type MetricName = 'syncsPerSec' | 'recordsPerSec' | 'mbPerSec';

/** One output row: the keys issue 3 lists for --json, plus the per-cycle target ratios. */
interface Row {
  backend: BackendName;
  mode: string;
  recordBytes: number;
  batch: number;
  producers: number;
  records: number;
  seconds: number;
  recordsPerSec: number;
  syncsPerSec: number | null;
  mbPerSec: number;
  p50us: number;
  p99us: number;
  loopDelayP99us: number;
  ratios?: PairRatio[];
}

interface Point {
  recordBytes: number;
  batch: number;
  producers: number;
}

/** What one timed run measured. */
interface RunResult {
  records: number;
  seconds: number;
  /** Number of fdatasync/O_DSYNC completions, when known. */
  syncs: number | null;
  /** Payload bytes appended (raw: bytes written). */
  bytes: number;
}

/** Accumulates a row over its slices (and keeps each slice's rates for the per-cycle ratios). */
class RowAccumulator {
  records = 0;
  seconds = 0;
  syncs: number | null = 0;
  bytes = 0;
  readonly latenciesUs = new SampleRecorder();
  readonly loopDelay = new LoopDelayMonitor();
  /** Observed payload bytes/s, to size the next run's preallocated space. */
  bytesPerSec = 0;
  /** Each slice by `cycle:group`: a ratio pairs the slices of one group pass of one cycle. */
  readonly slices = new Map<string, RunResult>();

  constructor(
    readonly backend: BackendName,
    readonly mode: string,
    readonly point: Point,
  ) {}

  add(run: RunResult, sliceKey: string): void {
    this.slices.set(sliceKey, run);
    this.records += run.records;
    this.seconds += run.seconds;
    this.bytes += run.bytes;
    this.syncs = this.syncs === null || run.syncs === null ? null : this.syncs + run.syncs;
    if (run.seconds > 0) this.bytesPerSec = Math.max(this.bytesPerSec, run.bytes / run.seconds);
  }

  row(): Row {
    const [p50, p99] = this.latenciesUs.percentiles(50, 99);
    return {
      backend: this.backend,
      mode: this.mode,
      recordBytes: this.point.recordBytes,
      batch: this.point.batch,
      producers: this.point.producers,
      records: this.records,
      seconds: round(this.seconds, 3),
      recordsPerSec: round(this.records / this.seconds, 1),
      syncsPerSec: this.syncs === null ? null : round(this.syncs / this.seconds, 1),
      mbPerSec: round(this.bytes / 1e6 / this.seconds, 2),
      p50us: round(p50!, 1),
      p99us: round(p99!, 1),
      loopDelayP99us: round(this.loopDelay.percentileUs(99), 1),
    };
  }
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** A runnable row: one backend/mode at one point. */
interface Target {
  accumulator: RowAccumulator;
  run(seconds: number, sink: RunSink): Promise<RunResult>;
}

/** Where a run reports its per-append latencies and event-loop delay (a throwaway one for warm-up). */
interface RunSink {
  latency(us: number): void;
  loopDelay: LoopDelayMonitor;
}

function sinkFor(accumulator: RowAccumulator): RunSink {
  return { latency: (us) => accumulator.latenciesUs.push(us), loopDelay: accumulator.loopDelay };
}

// ---------------------------------------------------------------------------------------------
// Native backend (optional: measured when its addon loads)

interface NativeBench {
  backend: WalBackend;
  rawWriteSyncLoop: typeof rawWriteSyncLoop;
  /** fdatasync calls a native segment's writer has made (its test counters). */
  syncCount: (segment: SegmentFile) => number | null;
}

function loadNativeBench(): { native: NativeBench | null; why: string } {
  try {
    const backend = loadNativeBackend();
    return {
      native: {
        backend,
        rawWriteSyncLoop,
        // With O_DSYNC every write is the sync.
        syncCount: (segment) => {
          const stats = nativeSegmentTestHooks(segment).stats();
          return segment.mode === 'dsync' ? stats.writes : stats.syncs;
        },
      },
      why: `${backend.reason}; crc32c: ${nativeCrc32cImplementation()}`,
    };
  } catch (error) {
    return { native: null, why: `native backend did not load: ${(error as Error).message}` };
  }
}

// ---------------------------------------------------------------------------------------------
// Preallocated space shared by the runs of one backend and mode (runs are sequential).
// Overwriting blocks that are already written costs the same as writing into freshly zeroed
// ones, so each file is zero-filled once, grown when a run needs more, and reused. Direct mode
// gets a file of its own: O_DIRECT writes over pages that a buffered row just left in the page
// cache must invalidate them first, which charged native direct for the buffered rows' cache
// (A/B of 256 x 4 KiB: 88 % -> 85 % of raw with buffered slices on the same file in between).

const FILE_CAP_BYTES = 1024 * 1024 * 1024;
const ZERO_CHUNK = new Uint8Array(1024 * 1024);

class SharedSegmentFile {
  private sizeBytes = 0;

  constructor(readonly file: string) {}

  async create(): Promise<void> {
    await createJsBackend('bench').createSegmentFile(this.file, 64 * 1024 * 1024, 'zero');
    this.sizeBytes = 64 * 1024 * 1024;
  }

  /** Grow (zero-filled, fsynced) to at least `bytes`, capped; returns the usable size. */
  ensure(bytes: number): number {
    const target = Math.min(FILE_CAP_BYTES, Math.ceil(bytes / ZERO_CHUNK.length) * ZERO_CHUNK.length);
    if (target > this.sizeBytes) {
      const fd = fs.openSync(this.file, 'r+');
      try {
        for (let at = this.sizeBytes; at < target; at += ZERO_CHUNK.length) {
          fs.writeSync(fd, ZERO_CHUNK, 0, ZERO_CHUNK.length, at);
        }
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.sizeBytes = target;
    }
    return this.sizeBytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Runners

function makeBatch(point: Point): RecordInput[] {
  return Array.from({ length: point.batch }, (_, i) => {
    const payload = new Uint8Array(point.recordBytes);
    for (let j = 0; j < payload.length; j++) payload[j] = (i * 131 + j * 7) & 0xff;
    return { type: RecordType.Entry, payload };
  });
}

function randomSalt(): number {
  return Math.floor(Math.random() * 0x100000000) >>> 0;
}

/** Bytes to preallocate for a run: what this row did per second so far, with headroom. */
function spaceFor(accumulator: RowAccumulator, point: Point, seconds: number): number {
  const framedPerRecord = batchByteLength(makeBatch({ ...point, batch: 1 }));
  const guess = Math.min(400e6, framedPerRecord * point.batch * 4000);
  const rate = accumulator.bytesPerSec > 0 ? accumulator.bytesPerSec * 1.6 : guess;
  return rate * (framedPerRecord / point.recordBytes) * seconds + 4096;
}

function walBackendTarget(
  backend: WalBackend,
  mode: WalMode,
  point: Point,
  shared: SharedSegmentFile,
  syncCount: (segment: SegmentFile) => number | null,
): Target {
  const name = backend.name;
  const accumulator = new RowAccumulator(name, mode, point);
  const batch = makeBatch(point);
  const batchFrameBytes = batchByteLength(batch);
  return {
    accumulator,
    async run(seconds, sink) {
      const capacity = shared.ensure(spaceFor(accumulator, point, seconds));
      const salt = randomSalt();
      const segment = await backend.openSegment(shared.file, { mode, offset: 0, prevCrc: 0, salt });
      if (segment.mode !== mode) {
        await segment.close();
        throw new Error(`${name} opened ${mode} as ${segment.mode}: ${segment.modeReason}`);
      }
      const header = encodeSegmentHeader({ blockSize: segment.blockSize, seq: 1, firstIndex: 1, salt, prevCrc: 0 });
      let issuedEnd = (await segment.append([{ type: RecordType.SegmentHeader, payload: header }], true)).endOffset;
      const syncsBefore = syncCount(segment);
      // Direct mode pads every synced batch to the block size.
      const perAppend = batchFrameBytes + segment.blockSize;
      let records = 0;
      sink.loopDelay.start();
      const start = performance.now();
      const deadline = start + seconds * 1000;
      const producer = async (): Promise<void> => {
        while (performance.now() < deadline && issuedEnd + perAppend <= capacity) {
          issuedEnd += perAppend;
          const t0 = performance.now();
          await segment.append(batch, true);
          sink.latency((performance.now() - t0) * 1000);
          records += batch.length;
        }
      };
      await Promise.all(Array.from({ length: point.producers }, producer));
      const elapsed = (performance.now() - start) / 1000;
      sink.loopDelay.stop();
      const syncsAfter = syncCount(segment);
      await segment.close();
      const syncs =
        point.producers === 1
          ? records / point.batch
          : syncsBefore === null || syncsAfter === null
            ? null
            : syncsAfter - syncsBefore;
      return { records, seconds: elapsed, syncs, bytes: records * point.recordBytes };
    },
  };
}

/** An append-mode file a Node user would write a WAL to: append one encoded batch durably. */
interface NodeFsFile {
  append(bytes: Uint8Array): Promise<void>;
  /** Between appends, outside the timed part. */
  pause?(): Promise<void>;
  close(): Promise<void>;
}

/** fs.writevSync + fs.fdatasyncSync on an append-mode file, yielding to the loop between appends
 * (a server handles other events between appends; this is where their delay shows). */
function nodeFsTarget(point: Point, dir: string): Target {
  return nodeFsBaseline('node-fs', point, dir, async (file) => {
    const fd = fs.openSync(file, 'a');
    return {
      async append(bytes) {
        fs.writevSync(fd, [bytes]);
        fs.fdatasyncSync(fd);
      },
      pause: async () => {
        await yieldToLoop();
      },
      async close() {
        fs.closeSync(fd);
      },
    };
  });
}

/** fs.promises FileHandle writev + datasync on an append-mode file. */
function nodeFsAsyncTarget(point: Point, dir: string): Target {
  return nodeFsBaseline('node-fs-async', point, dir, async (file) => {
    const handle = await fs.promises.open(file, 'a');
    return {
      async append(bytes) {
        await handle.writev([bytes]);
        await handle.datasync();
      },
      close: () => handle.close(),
    };
  });
}

/** The loop both Node baselines share: frame the batch in JS (as a Node WAL must), append it. */
function nodeFsBaseline(
  name: 'node-fs' | 'node-fs-async',
  point: Point,
  dir: string,
  open: (file: string) => Promise<NodeFsFile>,
): Target {
  const accumulator = new RowAccumulator(name, 'buffered', point);
  const batch = makeBatch(point);
  return {
    accumulator,
    async run(seconds, sink) {
      const file = path.join(dir, `${name}.log`);
      const out = await open(file);
      const salt = randomSalt();
      let crc = 0;
      let records = 0;
      let written = 0;
      try {
        sink.loopDelay.start();
        const start = performance.now();
        const deadline = start + seconds * 1000;
        while (performance.now() < deadline && written < FILE_CAP_BYTES) {
          const t0 = performance.now();
          // Each append synced before the next: its COMMIT frame states everything before it durable.
          const encoded = encodeBatch(batch, { prevCrc: crc, salt, fileOffset: written, durableOffset: written });
          crc = encoded.lastCrc;
          await out.append(encoded.bytes);
          sink.latency((performance.now() - t0) * 1000);
          written += encoded.bytes.length;
          records += batch.length;
          if (out.pause !== undefined) await out.pause();
        }
        const elapsed = (performance.now() - start) / 1000;
        sink.loopDelay.stop();
        return { records, seconds: elapsed, syncs: records / point.batch, bytes: records * point.recordBytes };
      } finally {
        await out.close();
        fs.rmSync(file, { force: true });
      }
    },
  };
}

/** The addon's own write+fdatasync loop (iteration count sized from the observed rate). */
function rawTarget(native: NativeBench, writeBytes: number, dir: string): Target {
  const point: Point = { recordBytes: writeBytes, batch: 1, producers: 1 };
  const accumulator = new RowAccumulator('raw', 'buffered', point);
  let syncsPerSec = 0;
  const file = path.join(dir, `raw-${writeBytes}.dat`);
  return {
    accumulator,
    async run(seconds, sink) {
      if (syncsPerSec === 0) {
        // Calibrate: how many iterations fill the time?
        const probe = await native.rawWriteSyncLoop(file, writeBytes, 20, 'buffered');
        syncsPerSec = 20 / probe.seconds;
      }
      const iterations = Math.max(10, Math.min(Math.round(syncsPerSec * seconds), Math.floor(FILE_CAP_BYTES / writeBytes)));
      sink.loopDelay.start();
      const result = await native.rawWriteSyncLoop(file, writeBytes, iterations, 'buffered');
      sink.loopDelay.stop();
      fs.rmSync(file, { force: true });
      for (let i = 0; i < result.latenciesUs.length; i++) sink.latency(result.latenciesUs[i]!);
      syncsPerSec = iterations / result.seconds;
      return { records: iterations, seconds: result.seconds, syncs: iterations, bytes: iterations * writeBytes };
    },
  };
}

async function idleLoopDelayP99us(): Promise<number> {
  const monitor = new LoopDelayMonitor();
  monitor.start();
  await new Promise((resolve) => setTimeout(resolve, 500));
  monitor.stop();
  return monitor.percentileUs(99);
}

// ---------------------------------------------------------------------------------------------
// Report

function verdict(ok: boolean): string {
  return ok ? 'meets' : 'MISSES';
}

/** Per-slice value of a metric (null when the slice does not know it). */
function sliceMetric(run: RunResult, metric: MetricName): number | null {
  if (run.seconds <= 0) return null;
  if (metric === 'syncsPerSec') return run.syncs === null ? null : run.syncs / run.seconds;
  if (metric === 'recordsPerSec') return run.records / run.seconds;
  return run.bytes / 1e6 / run.seconds;
}

function rowName(row: Pick<Row, 'backend' | 'mode' | 'recordBytes' | 'batch' | 'producers'>): string {
  const mode = row.backend === 'native' || row.backend === 'js' ? ` ${row.mode}` : '';
  return `${row.backend}${mode} ${row.recordBytes}x${row.batch}${row.producers > 1 ? ` p${row.producers}` : ''}`;
}

function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The ratio of two rows' metric, slice by slice where both ran in the same group pass. */
function pairRatio(
  numerator: RowAccumulator,
  denominator: RowAccumulator,
  metric: MetricName,
  goal: number | null,
): PairRatio | null {
  const values: number[] = [];
  for (const [key, run] of numerator.slices) {
    const other = denominator.slices.get(key);
    if (other === undefined) continue;
    const a = sliceMetric(run, metric);
    const b = sliceMetric(other, metric);
    if (a === null || b === null || !(b > 0)) continue;
    values.push(a / b);
  }
  if (values.length === 0) return null;
  values.sort((x, y) => x - y);
  const { backend, mode, point } = denominator;
  return {
    metric,
    vs: rowName({ backend, mode, ...point }),
    goal,
    median: round(median(values), 3),
    min: round(values[0]!, 3),
    max: round(values.at(-1)!, 3),
    cycles: values.length,
  };
}

/** Rows with the target ratios of issue 3 (and, for context, the same ratios of js and raw). */
function withRatios(accumulators: readonly RowAccumulator[]): Row[] {
  const find = (backend: BackendName, mode: string | null, point: Point): RowAccumulator | undefined =>
    accumulators.find(
      (a) =>
        a.backend === backend &&
        (mode === null || a.mode === mode) &&
        a.point.recordBytes === point.recordBytes &&
        a.point.batch === point.batch &&
        a.point.producers === point.producers,
    );
  const raw4k = find('raw', null, { recordBytes: 4096, batch: 1, producers: 1 });
  const raw1m = find('raw', null, { recordBytes: 1024 * 1024, batch: 1, producers: 1 });
  return accumulators.map((a) => {
    const row = a.row();
    const ratios: PairRatio[] = [];
    const add = (ratio: PairRatio | null): void => {
      if (ratio !== null) ratios.push(ratio);
    };
    const { recordBytes, batch, producers } = a.point;
    const judged = a.backend === 'native';
    if (a.backend === 'native' || a.backend === 'js') {
      if (producers === 1) {
        if (batch === 1 && raw4k) add(pairRatio(a, raw4k, 'syncsPerSec', judged ? 0.95 : null));
        const nodeFs = find('node-fs', null, a.point);
        const nodeFsAsync = find('node-fs-async', null, a.point);
        if (nodeFs) add(pairRatio(a, nodeFs, 'recordsPerSec', judged ? 1.3 : null));
        if (nodeFsAsync) add(pairRatio(a, nodeFsAsync, 'recordsPerSec', judged ? 1.8 : null));
        if (recordBytes === 4096 && batch === 256 && raw1m) add(pairRatio(a, raw1m, 'mbPerSec', judged ? 0.8 : null));
      } else {
        const single = find(a.backend, a.mode, { recordBytes, batch: 1, producers: 1 });
        if (single) add(pairRatio(a, single, 'recordsPerSec', judged ? 20 : null));
      }
    }
    if (a === raw4k) {
      // Context for the node-fs targets: a tight blocking loop is near this ceiling itself.
      for (const size of [256, 4096]) {
        const nodeFs = find('node-fs', null, { recordBytes: size, batch: 1, producers: 1 });
        if (nodeFs) add(pairRatio(a, nodeFs, 'recordsPerSec', null));
      }
    }
    return ratios.length > 0 ? { ...row, ratios } : row;
  });
}

function formatRatio(ratio: PairRatio): string {
  const percent = ratio.goal !== null && ratio.goal < 1;
  const show = (v: number): string => (percent ? `${(100 * v).toFixed(1)} %` : `${v.toFixed(2)}x`);
  const range = `${show(ratio.median)} (${show(ratio.min)} – ${show(ratio.max)}, ${ratio.cycles} cycles)`;
  if (ratio.goal === null) return range;
  return `${range} ${verdict(ratio.median >= ratio.goal)} >= ${show(ratio.goal)}`;
}

function printTargets(rows: readonly Row[]): void {
  const lines: string[] = ['Targets: per-cycle ratios of slices taken seconds apart, median (range); verdict on the median'];
  const section = (title: string, pick: (row: Row, ratio: PairRatio) => boolean, note?: (row: Row) => string): void => {
    lines.push(`  ${title}`);
    let any = false;
    for (const row of rows) {
      for (const ratio of row.ratios ?? []) {
        if (!pick(row, ratio)) continue;
        any = true;
        lines.push(`    ${rowName(row).padEnd(26)} vs ${ratio.vs.padEnd(24)} ${formatRatio(ratio)}${note ? note(row) : ''}`);
      }
    }
    if (!any) lines.push('    not measured (native backend not available)');
  };
  const loopNote = (row: Row): string =>
    row.backend === 'native' ? `; loop p99 ${(row.loopDelayP99us / 1000).toFixed(2)} ms ${verdict(row.loopDelayP99us < 2000)} < 2 ms` : '';
  section('batch 1, syncs/s vs raw 4 KiB write+fdatasync (goal >= 95 %, loop p99 < 2 ms):', (row, r) => r.vs.startsWith('raw 4096') && row.backend !== 'raw', loopNote);
  section('records/s vs node-fs (goal >= 1.3x) and node-fs-async (goal >= 1.8x), every point:', (row, r) => r.vs.startsWith('node-fs') && row.backend !== 'raw');
  section('64 producers (single records) vs batch-1 records/s (goal >= 20x):', (row) => row.producers > 1);
  section('batch 256 x 4 KiB MB/s vs raw 1 MiB write+fdatasync (goal >= 80 %):', (_row, r) => r.vs.startsWith('raw 1048576'));
  section('context: the raw ceiling vs node-fs (native can only beat node-fs by what raw does):', (row) => row.backend === 'raw');
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------

const USAGE = 'usage: npm run bench:wal -- [--quick] [--json FILE] [--dir DIR] [--cycles N] [--seconds S]';

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    booleans: ['quick', 'help'],
    strings: ['json', 'dir', 'cycles', 'seconds'],
  });
  if (flags.booleans.has('help')) {
    console.log(USAGE);
    return;
  }
  const quick = flags.booleans.has('quick');
  const cycles = Number(flags.strings.get('cycles') ?? (quick ? 4 : 16));
  // Seconds per slice; a row gets cycles x this in total (raw 4 KiB: twice that).
  const sliceSeconds = Number(flags.strings.get('seconds') ?? (quick ? 0.25 : 0.3));
  if (!(Number.isInteger(cycles) && cycles >= 1)) throw new UsageError('--cycles must be a positive integer');
  if (!(sliceSeconds > 0)) throw new UsageError('--seconds must be a positive number');

  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const parent = flags.strings.get('dir') ?? path.join(repoRoot, 'bench-results');
  fs.mkdirSync(parent, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parent, 'wal-append-'));
  // Up to a GiB of scratch files: do not leave them behind on Ctrl-C.
  process.once('SIGINT', () => {
    fs.rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
  // Counting fdatasync calls makes the js group-commit row's syncs/s observable.
  let jsSyncs = 0;
  const js = createJsBackend('bench: pure TypeScript', {
    fs: {
      fdatasync: (fd, callback) => {
        jsSyncs++;
        fs.fdatasync(fd, callback);
      },
    },
  });
  const jsSyncCount = (): number => jsSyncs;
  const fsType = js.filesystemType(dir);

  const { native, why } = loadNativeBench();
  const directProbe = native?.backend.probeDirectIo(dir) ?? null;
  console.log(`WAL append benchmark — node ${process.version}, ${dir} on ${fsType}`);
  console.log(`  native: ${native ? `loaded (${why})` : `NOT measured: ${why}`}`);
  if (directProbe) console.log(`  O_DIRECT: ${directProbe.usable ? `usable, block ${directProbe.blockSize}` : `not usable: ${directProbe.reason}`}`);
  if (fsType === 'tmpfs') console.log('  WARNING: tmpfs is not durable storage; numbers mean nothing for disks');
  console.log(
    `  ${cycles} cycles of ${sliceSeconds} s slices, compared rows alternating; loop delay resolution ${LOOP_DELAY_RESOLUTION_MS} ms`,
  );

  const segmentFiles = new Map<string, SharedSegmentFile>();
  const rows: Row[] = [];
  try {
    for (const name of ['native-buffered', 'native-direct', 'native-dsync', 'js-buffered']) {
      const file = new SharedSegmentFile(path.join(dir, `${name}.wal`));
      await file.create();
      segmentFiles.set(name, file);
    }
    const shared = (backend: WalBackend, mode: WalMode): SharedSegmentFile => segmentFiles.get(`${backend.name}-${mode}`)!;
    const nativeModes: WalMode[] = native
      ? (['buffered', ...(directProbe?.usable ? ['direct' as const] : []), 'dsync'] as WalMode[])
      : [];
    const nativeSyncCount = native?.syncCount ?? (() => null);

    // Comparison groups: each point's backends, with the raw ceiling its targets are read
    // against and, for batch 1, the 64-producer rows (their target is a ratio to batch 1).
    const raw4k = native ? rawTarget(native, 4096, dir) : null;
    const raw1m = native ? rawTarget(native, 1024 * 1024, dir) : null;
    const groups: Target[][] = [];
    for (const recordBytes of [256, 4096]) {
      for (const batch of [1, 16, 256]) {
        const point: Point = { recordBytes, batch, producers: 1 };
        const targets: Target[] = [];
        if (batch === 1 && raw4k) targets.push(raw4k);
        if (batch === 256 && recordBytes === 4096 && raw1m) targets.push(raw1m);
        for (const mode of nativeModes) {
          targets.push(walBackendTarget(native!.backend, mode, point, shared(native!.backend, mode), nativeSyncCount));
        }
        targets.push(walBackendTarget(js, 'buffered', point, shared(js, 'buffered'), jsSyncCount));
        targets.push(nodeFsTarget(point, dir), nodeFsAsyncTarget(point, dir));
        if (batch === 1) {
          const group: Point = { recordBytes, batch: 1, producers: 64 };
          for (const mode of nativeModes) {
            targets.push(walBackendTarget(native!.backend, mode, group, shared(native!.backend, mode), nativeSyncCount));
          }
          targets.push(walBackendTarget(js, 'buffered', group, shared(js, 'buffered'), jsSyncCount));
        }
        groups.push(targets);
      }
    }
    const slicesPerCycle = groups.reduce((sum, targets) => sum + targets.length, 0);

    // Warm up (JIT, page cache, addon thread) without recording.
    for (const target of groups[1]!) {
      await target.run(0.1, { latency: () => undefined, loopDelay: new LoopDelayMonitor() });
    }

    // What the loop delay looks like with nothing to do: the floor every row is read against.
    const idleBefore = await idleLoopDelayP99us();
    const started = performance.now();
    for (let cycle = 0; cycle < cycles; cycle++) {
      for (const [g, targets] of groups.entries()) {
        const order = targets.map((_, i) => targets[(i + cycle) % targets.length]!);
        for (const target of order) {
          const result = await target.run(sliceSeconds, sinkFor(target.accumulator));
          target.accumulator.add(result, `${cycle}:${g}`);
        }
      }
      process.stderr.write(`  cycle ${cycle + 1}/${cycles} done (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
    }

    const idleAfter = await idleLoopDelayP99us();
    console.log(`  idle event-loop delay p99 (no I/O): ${idleBefore.toFixed(0)} us before, ${idleAfter.toFixed(0)} us after`);
    console.log(`  ${cycles} cycles x ${slicesPerCycle} slices of ${sliceSeconds} s`);
    const accumulators: RowAccumulator[] = [];
    for (const targets of groups) {
      for (const target of targets) {
        if (!accumulators.includes(target.accumulator)) accumulators.push(target.accumulator);
      }
    }
    rows.push(...withRatios(accumulators));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const columns: Column<Row>[] = [
    { header: 'backend', value: (row) => row.backend, align: 'left' },
    { header: 'mode', value: (row) => row.mode, align: 'left' },
    { header: 'record B', value: (row) => row.recordBytes },
    { header: 'batch', value: (row) => row.batch },
    { header: 'prod', value: (row) => row.producers },
    { header: 'records/s', value: (row) => row.recordsPerSec },
    { header: 'syncs/s', value: (row) => row.syncsPerSec },
    { header: 'MB/s', value: (row) => row.mbPerSec, digits: 1 },
    { header: 'p50 us', value: (row) => row.p50us },
    { header: 'p99 us', value: (row) => row.p99us },
    { header: 'loop p99 us', value: (row) => row.loopDelayP99us },
    { header: 'records', value: (row) => row.records },
    { header: 's', value: (row) => row.seconds, digits: 1 },
  ];
  console.log('');
  console.log(formatTable(columns, rows));
  console.log(
    '(MB/s = 10^6 payload bytes/s (raw: bytes written); p50/p99 us = latency of one append call;\n ' +
      'loop p99 = event-loop delay p99 during the row; node-fs yields to the loop between appends, as a server would)',
  );
  console.log('');
  printTargets(rows);

  const jsonFile = flags.strings.get('json');
  if (jsonFile) {
    writeJsonRows(jsonFile, rows);
    console.log(`\nwrote ${rows.length} rows to ${jsonFile}`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`${error.message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
