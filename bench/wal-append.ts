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
 * zeros before timing. Backends are interleaved point by point, in rounds, with the order
 * rotated every round, because the machine is shared and noisy.
 *
 * Flags: --quick (about a second per point and backend), --json FILE (one object per row),
 * --dir DIR (default: a fresh directory under ./bench-results, i.e. on the repo's filesystem).
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
import { encodeFrames, encodeSegmentHeader, framesByteLength } from '../src/wal/frame.js';
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

/** One output row; exactly the keys issue 3 lists for --json. */
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

/** Accumulates a row over rounds. */
class RowAccumulator {
  records = 0;
  seconds = 0;
  syncs: number | null = 0;
  bytes = 0;
  readonly latenciesUs = new SampleRecorder();
  readonly loopDelay = new LoopDelayMonitor();
  /** Observed payload bytes/s, to size the next run's preallocated space. */
  bytesPerSec = 0;

  constructor(
    readonly backend: BackendName,
    readonly mode: string,
    readonly point: Point,
  ) {}

  add(run: RunResult): void {
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
// Preallocated space shared by every WalBackend run (runs are sequential). Overwriting blocks
// that are already written costs the same as writing into freshly zeroed ones, so the file is
// zero-filled once, grown when a run needs more, and reused.

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
  const framedPerRecord = framesByteLength(makeBatch({ ...point, batch: 1 }));
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
  const batchFrameBytes = framesByteLength(batch);
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
          const encoded = encodeFrames(batch, crc, salt);
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

function describeRow(row: Row): string {
  return `${row.backend}${row.backend === 'native' ? ` ${row.mode}` : ''}`;
}

function pct(numerator: number, denominator: number): string {
  return `${((100 * numerator) / denominator).toFixed(1)} %`;
}

function times(numerator: number, denominator: number): string {
  return `${(numerator / denominator).toFixed(2)}x`;
}

function verdict(ok: boolean): string {
  return ok ? 'meets' : 'MISSES';
}

function printTargets(rows: readonly Row[]): void {
  const find = (backend: BackendName, mode: string | null, point: Point): Row | undefined =>
    rows.find(
      (row) =>
        row.backend === backend &&
        (mode === null || row.mode === mode) &&
        row.recordBytes === point.recordBytes &&
        row.batch === point.batch &&
        row.producers === point.producers,
    );
  const nativeModes = [...new Set(rows.filter((row) => row.backend === 'native').map((row) => row.mode))];
  const lines: string[] = [];

  const raw4k = find('raw', null, { recordBytes: 4096, batch: 1, producers: 1 });
  const raw1m = find('raw', null, { recordBytes: 1024 * 1024, batch: 1, producers: 1 });
  lines.push('Targets (ratios within this run):');
  if (!raw4k || nativeModes.length === 0) {
    lines.push('  native vs raw: not measured (native backend not available)');
  } else {
    lines.push(`  native batch 1 vs raw 4 KiB write+fdatasync (${raw4k.syncsPerSec?.toFixed(0)} syncs/s); target >= 95 %, loop p99 < 2 ms:`);
    for (const mode of nativeModes) {
      for (const recordBytes of [256, 4096]) {
        const row = find('native', mode, { recordBytes, batch: 1, producers: 1 });
        if (!row || row.syncsPerSec === null) continue;
        const ratio = row.syncsPerSec / raw4k.syncsPerSec!;
        const loopOk = row.loopDelayP99us < 2000;
        lines.push(
          `    ${mode.padEnd(8)} ${String(recordBytes).padStart(4)} B: ${row.syncsPerSec.toFixed(0)} syncs/s = ${pct(row.syncsPerSec, raw4k.syncsPerSec!)} (${verdict(ratio >= 0.95)}), loop p99 ${(row.loopDelayP99us / 1000).toFixed(2)} ms (${verdict(loopOk)})`,
        );
      }
    }
  }

  lines.push('  records/s vs node-fs (target >= 1.3x) and node-fs-async (target >= 1.8x), every point:');
  const points = rows
    .filter((row) => row.backend === 'node-fs')
    .map((row) => ({ recordBytes: row.recordBytes, batch: row.batch, producers: 1 }));
  const contenders = [...nativeModes.map((mode) => ['native', mode] as const), ['js', 'buffered'] as const];
  for (const point of points) {
    const sync = find('node-fs', null, point);
    const async = find('node-fs-async', null, point);
    const parts: string[] = [];
    for (const [backend, mode] of contenders) {
      const row = find(backend, mode, point);
      if (!row || !sync || !async) continue;
      const a = row.recordsPerSec / sync.recordsPerSec;
      const b = row.recordsPerSec / async.recordsPerSec;
      const judged = backend === 'native' ? ` ${a >= 1.3 && b >= 1.8 ? 'ok' : 'MISS'}` : '';
      parts.push(`${backend === 'native' ? mode : 'js'} ${times(row.recordsPerSec, sync.recordsPerSec)}/${times(row.recordsPerSec, async.recordsPerSec)}${judged}`);
    }
    lines.push(`    ${String(point.recordBytes).padStart(4)} B x ${String(point.batch).padStart(3)}: ${parts.join('  ')}`);
  }

  lines.push('  64 producers (single records) vs batch-1 records/s; target >= 20x:');
  for (const [backend, mode] of contenders) {
    for (const recordBytes of [256, 4096]) {
      const group = find(backend, mode, { recordBytes, batch: 1, producers: 64 });
      const single = find(backend, mode, { recordBytes, batch: 1, producers: 1 });
      if (!group || !single) continue;
      const ratio = group.recordsPerSec / single.recordsPerSec;
      lines.push(
        `    ${describeRow(group).padEnd(16)} ${String(recordBytes).padStart(4)} B: ${group.recordsPerSec.toFixed(0)} vs ${single.recordsPerSec.toFixed(0)} rec/s = ${ratio.toFixed(1)}x${backend === 'native' ? ` (${verdict(ratio >= 20)})` : ''}`,
      );
    }
  }

  if (!raw1m) {
    lines.push('  bandwidth vs raw 1 MiB writes: not measured (native backend not available)');
  } else {
    lines.push(`  batch 256 x 4 KiB MB/s vs raw 1 MiB write+fdatasync (${raw1m.mbPerSec.toFixed(1)} MB/s); target >= 80 %:`);
    for (const [backend, mode] of contenders) {
      const row = find(backend, mode, { recordBytes: 4096, batch: 256, producers: 1 });
      if (!row) continue;
      const ratio = row.mbPerSec / raw1m.mbPerSec;
      lines.push(
        `    ${describeRow(row).padEnd(16)} ${row.mbPerSec.toFixed(1)} MB/s = ${pct(row.mbPerSec, raw1m.mbPerSec)}${backend === 'native' ? ` (${verdict(ratio >= 0.8)})` : ''}`,
      );
    }
  }
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------

const USAGE = 'usage: npm run bench:wal -- [--quick] [--json FILE] [--dir DIR] [--rounds N] [--seconds S]';

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2), {
    booleans: ['quick', 'help'],
    strings: ['json', 'dir', 'rounds', 'seconds'],
  });
  if (flags.booleans.has('help')) {
    console.log(USAGE);
    return;
  }
  const quick = flags.booleans.has('quick');
  const rounds = Number(flags.strings.get('rounds') ?? (quick ? 2 : 3));
  // Seconds per run; a point and backend gets rounds x this in total.
  const runSeconds = Number(flags.strings.get('seconds') ?? (quick ? 0.5 : 2));
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new UsageError('--rounds must be a positive integer');
  if (!(runSeconds > 0)) throw new UsageError('--seconds must be a positive number');

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
    `  ${rounds} rounds x ${runSeconds} s per point and backend, interleaved; loop delay resolution ${LOOP_DELAY_RESOLUTION_MS} ms`,
  );

  const shared = new SharedSegmentFile(path.join(dir, 'segment.wal'));
  const rows: Row[] = [];
  try {
    await shared.create();
    const nativeModes: WalMode[] = native
      ? (['buffered', ...(directProbe?.usable ? ['direct' as const] : []), 'dsync'] as WalMode[])
      : [];
    const nativeSyncCount = native?.syncCount ?? (() => null);

    // Each point lists its targets; raw ceilings sit next to the points they are compared with.
    const pointTargets: Target[][] = [];
    const rawTargets: Target[] = [];
    const raw4k = native ? rawTarget(native, 4096, dir) : null;
    const raw1m = native ? rawTarget(native, 1024 * 1024, dir) : null;
    if (raw4k && raw1m) rawTargets.push(raw4k, raw1m);
    for (const recordBytes of [256, 4096]) {
      for (const batch of [1, 16, 256]) {
        const point: Point = { recordBytes, batch, producers: 1 };
        const targets: Target[] = [];
        if (batch === 1 && recordBytes === 4096 && raw4k) targets.push(raw4k);
        if (batch === 256 && recordBytes === 4096 && raw1m) targets.push(raw1m);
        for (const mode of nativeModes) targets.push(walBackendTarget(native!.backend, mode, point, shared, nativeSyncCount));
        targets.push(walBackendTarget(js, 'buffered', point, shared, jsSyncCount));
        targets.push(nodeFsTarget(point, dir), nodeFsAsyncTarget(point, dir));
        pointTargets.push(targets);
      }
      const group: Point = { recordBytes, batch: 1, producers: 64 };
      const groupTargets: Target[] = [];
      for (const mode of nativeModes) groupTargets.push(walBackendTarget(native!.backend, mode, group, shared, nativeSyncCount));
      groupTargets.push(walBackendTarget(js, 'buffered', group, shared, jsSyncCount));
      pointTargets.push(groupTargets);
    }

    // Warm up (JIT, page cache, addon thread) without recording.
    for (const target of pointTargets[1]!) {
      await target.run(0.1, { latency: () => undefined, loopDelay: new LoopDelayMonitor() });
    }

    // What the loop delay looks like with nothing to do: the floor every row is read against.
    const idleBefore = await idleLoopDelayP99us();
    const started = performance.now();
    for (let round = 0; round < rounds; round++) {
      for (const targets of pointTargets) {
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const target of order) {
          const result = await target.run(runSeconds, sinkFor(target.accumulator));
          target.accumulator.add(result);
        }
      }
      process.stderr.write(`  round ${round + 1}/${rounds} done (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
    }

    const idleAfter = await idleLoopDelayP99us();
    console.log(`  idle event-loop delay p99 (no I/O): ${idleBefore.toFixed(0)} us before, ${idleAfter.toFixed(0)} us after`);
    const seen = new Set<RowAccumulator>();
    for (const targets of pointTargets) {
      for (const target of targets) {
        if (seen.has(target.accumulator)) continue;
        seen.add(target.accumulator);
        rows.push(target.accumulator.row());
      }
    }
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
