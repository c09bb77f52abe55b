/**
 * The TS side of the native WAL backend's append path (src/wal/native-backend.ts), on real files:
 * frames are copied into pooled native buffers when append() returns, same-tick appends merge
 * into one batch, each append gets its own end offset/crc from one completion per writer group,
 * sync()/close() issued in the same tick as appends, batches bigger than a pooled buffer, byte
 * identity with the js backend, and no fd/thread/memory growth over many segments.
 *
 * Files live under os.tmpdir(). Direct mode runs only where the backend's own probe says O_DIRECT
 * works there (the test names say which); otherwise a test asserts the probe's reason.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  RecordType,
  type AppendResult,
  type OpenSegmentOptions,
  type RecordInput,
  type ScanResult,
  type SegmentFile,
  type WalBackend,
  type WalMode,
} from '../../src/wal/backend.js';
import { encodeBatch, encodeSegmentHeader, frameBytes, scanBuffer } from '../../src/wal/frame.js';
import { createJsBackend } from '../../src/wal/js-backend.js';
import { loadNativeBackend, nativeSegmentTestHooks } from '../../src/wal/native-backend.js';
import { SEED, makeRandom, randomInt, tempRoot } from '../wal/fixtures/backends.js';

/** Bigger than anything the frame-buffer pool keeps (32 MiB), under RECORD_BYTES_MAX (64 MiB). */
const UNPOOLED_RECORD_BYTES = 33 * 1024 * 1024 + 5;

/** Writes a pattern unique to `tag` into bytes[0, length) (word-wise when aligned: tens of MiB stay fast). */
function fillPattern(bytes: Uint8Array, length: number, tag: number): void {
  let x = (tag * 0x9e3779b1 + 1) >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, Math.floor(length / 4));
    for (let w = 0; w < words.length; w++) words[w] = next();
    i = words.length * 4;
  }
  for (; i < length; i++) bytes[i] = next() & 0xff;
}

function patterned(length: number, tag: number): Uint8Array {
  // Backed by an ArrayBuffer of a multiple of 4 so the Uint32Array view in fillPattern fits.
  const bytes = new Uint8Array(new ArrayBuffer(Math.ceil(length / 4) * 4), 0, length);
  fillPattern(bytes, length, tag);
  return bytes;
}

function entry(payload: Uint8Array): RecordInput {
  return { type: RecordType.Entry, payload };
}

/** The first index where a and b differ (-1 when equal), for failure messages. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/** One append() call as the test issued it: the payloads as they were at call time. */
interface Issued {
  payloads: Uint8Array[];
  result: AppendResult;
}

/**
 * The file holds exactly the issued appends, in order, with the bytes they had at call time; each
 * append's endOffset is a frame end past its own records (and before the next append's), strictly
 * increasing, and its lastCrc is the crc of the frame ending there. The TypeScript scanner agrees.
 */
function assertAppendsInFile(scan: ScanResult, header: AppendResult, issued: readonly Issued[], label: string): void {
  assert.ok(scan.stop.reason === 'zero' || scan.stop.reason === 'eof', `${label}: scan stopped on ${scan.stop.reason} at ${scan.stop.offset}: ${scan.stop.detail}`);
  const crcAtFrameEnd = new Map<number, number>();
  for (const r of scan.records) crcAtFrameEnd.set(r.offset + frameBytes(r.payload.length), r.crc);
  const data = scan.records.filter((r) => r.type !== RecordType.Pad && r.type !== RecordType.SegmentHeader && r.type !== RecordType.Commit);
  assert.equal(data.length, issued.reduce((n, a) => n + a.payloads.length, 0), `${label}: record count`);
  let previousEnd = header.endOffset;
  let k = 0;
  issued.forEach((append, i) => {
    const { endOffset, lastCrc } = append.result;
    assert.ok(endOffset > previousEnd, `${label}: append ${i} ends at ${endOffset}, not after ${previousEnd}`);
    for (const expected of append.payloads) {
      const record = data[k]!;
      assert.equal(record.type, RecordType.Entry, `${label}: record ${k} type`);
      assert.ok(record.offset >= previousEnd && record.offset + frameBytes(record.payload.length) <= endOffset,
        `${label}: record ${k} at ${record.offset} lies outside append ${i}'s range (${previousEnd}, ${endOffset}]`);
      const diff = firstDifference(record.payload, expected);
      assert.equal(diff, -1, `${label}: append ${i} record ${k} (${expected.length} bytes) differs at byte ${diff}`);
      k++;
    }
    assert.equal(crcAtFrameEnd.get(endOffset), lastCrc, `${label}: append ${i}: lastCrc is the crc of the frame ending at ${endOffset}`);
    previousEnd = endOffset;
  });
  assert.equal(previousEnd, scan.validEndOffset, `${label}: the last append ends where the valid log ends`);
  const reference = scanBuffer(fs.readFileSync(scan.path), { prevCrc: 0, path: scan.path });
  assert.deepEqual(reference.records.map((r) => [r.offset, r.type, r.crc]), scan.records.map((r) => [r.offset, r.type, r.crc]), `${label}: TS scanner`);
  assert.equal(reference.validEndOffset, scan.validEndOffset);
}

const native: WalBackend = loadNativeBackend();
const TMP = os.tmpdir();
const TMP_FS = native.filesystemType(TMP);
const PROBE = native.probeDirectIo(TMP);
/** Modes exercised below: direct only where this backend's probe says O_DIRECT works in TMP. */
const MODES: readonly WalMode[] = PROBE.usable ? ['buffered', 'dsync', 'direct'] : ['buffered', 'dsync'];

function modeLabel(mode: WalMode): string {
  return mode === 'direct' ? `direct (O_DIRECT usable on ${TMP_FS} per probe, block ${PROBE.blockSize})` : mode;
}

describe(`native backend: append batching and frame-buffer pool (files on ${TMP_FS} under ${TMP})`, function () {
  let dir: string;
  let fileNumber = 0;
  /** Every segment a test opened: closed after it even when it failed half-way (held or not),
   * so a failed assertion leaves no writer thread or file behind for the next test. */
  let opened: SegmentFile[] = [];

  beforeEach(function () {
    dir = tempRoot('batching');
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.log(`      seed: RAFTKV_TEST_SEED=${SEED}`);
    for (const segment of opened) {
      try {
        nativeSegmentTestHooks(segment).hold(false);
      } catch {
        // a js-backend segment: no hooks
      }
      await segment.close().catch(() => undefined);
    }
    opened = [];
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function open(backend: WalBackend, file: string, options: OpenSegmentOptions): Promise<SegmentFile> {
    const segment = await backend.openSegment(file, options);
    opened.push(segment);
    return segment;
  }

  /** A fresh segment with its SEGMENT_HEADER written (synced). */
  async function openFresh(
    backend: WalBackend,
    mode: WalMode,
    sizeBytes = 1 << 20,
    salt = 0x5eed,
  ): Promise<{ segment: SegmentFile; header: AppendResult; headerRecord: RecordInput }> {
    const file = path.join(dir, `seg-${backend.name}-${mode}-${fileNumber++}.wal`);
    await backend.createSegmentFile(file, sizeBytes, sizeBytes > 8 << 20 ? 'fallocate' : 'zero');
    const segment = await open(backend, file, { mode, offset: 0, prevCrc: 0, salt });
    assert.equal(segment.mode, mode);
    const headerRecord: RecordInput = {
      type: RecordType.SegmentHeader,
      payload: encodeSegmentHeader({ blockSize: segment.blockSize, seq: 0, firstIndex: 1, salt, prevCrc: 0 }),
    };
    const header = await segment.append([headerRecord], true);
    return { segment, header, headerRecord };
  }

  if (PROBE.usable) {
    it(`direct mode runs below: the probe found O_DIRECT usable on ${TMP_FS} (block ${PROBE.blockSize})`, async function () {
      assert.ok(PROBE.reason.length > 0, 'the probe says why');
      assert.ok(PROBE.blockSize >= 512 && (PROBE.blockSize & (PROBE.blockSize - 1)) === 0, `block size ${PROBE.blockSize}`);
      const { segment } = await openFresh(native, 'direct');
      assert.equal(segment.blockSize, PROBE.blockSize);
      await segment.close();
    });
  } else {
    it(`direct mode not exercised: the probe refuses O_DIRECT on ${TMP_FS} and says why`, async function () {
      assert.equal(PROBE.usable, false);
      assert.ok(PROBE.reason.length > 0, 'the probe gives a reason');
      const file = path.join(dir, 'auto.wal');
      await native.createSegmentFile(file, 64 * 1024, 'zero');
      const segment = await open(native, file, { mode: 'auto', offset: 0, prevCrc: 0, salt: 1 });
      assert.equal(segment.mode, 'buffered', `auto falls back to buffered: ${segment.modeReason}`);
      await segment.close();
    });
  }

  for (const mode of MODES) {
    describe(modeLabel(mode), function () {
      it('the caller may overwrite a payload buffer as soon as append() returns (writer held, so nothing was written yet)', async function () {
        const random = makeRandom(SEED);
        const { segment, header } = await openFresh(native, mode);
        const hooks = nativeSegmentTestHooks(segment);
        // With the writer held, a batch that still referred to the caller's memory (instead of
        // a copy made in append()) would be written with the scribbled bytes below.
        hooks.hold(true);
        const scratch = new Uint8Array(16 * 1024);
        const promises: Promise<AppendResult>[] = [];
        const expected: Uint8Array[][] = [];
        // Same tick: one buffer for every append, at varying offsets, overwritten after each.
        for (let i = 0; i < 12; i++) {
          const offset = randomInt(random, 0, 64);
          const length = randomInt(random, 1, 9000);
          const view = scratch.subarray(offset, offset + length);
          fillPattern(view, length, 1000 + i);
          expected.push([view.slice()]);
          promises.push(segment.append([entry(view)], i % 3 === 0));
          scratch.fill(0xee);
        }
        // One append carrying the same buffer twice, then overwritten.
        fillPattern(scratch, 300, 77);
        expected.push([scratch.slice(0, 300), scratch.slice(0, 300)]);
        promises.push(segment.append([entry(scratch.subarray(0, 300)), entry(scratch.subarray(0, 300))], true));
        scratch.fill(0xab);
        // Across ticks: each tick's batch is already queued to the (held) writer when overwritten.
        for (let i = 0; i < 4; i++) {
          const length = randomInt(random, 1, 12000);
          fillPattern(scratch, length, 2000 + i);
          expected.push([scratch.slice(0, length)]);
          promises.push(segment.append([entry(scratch.subarray(0, length))], true));
          scratch.fill(0xdd);
          await new Promise<void>((resolve) => setImmediate(resolve));
          scratch.fill(0xcc);
        }
        hooks.hold(false);
        const results = await Promise.all(promises);
        scratch.fill(0x11);
        await segment.close();
        const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
        assertAppendsInFile(scan, header, results.map((result, i) => ({ payloads: expected[i]!, result })), `${mode}/reuse`);
      });

      it('appends in the same tick and across ticks resolve in order with strictly increasing end offsets (seeded)', async function () {
        const random = makeRandom(SEED ^ 0x2a);
        const { segment, header } = await openFresh(native, mode, 4 << 20);
        const hooks = nativeSegmentTestHooks(segment);
        const before = hooks.stats();
        const issued: { payloads: Uint8Array[]; promise: Promise<AppendResult> }[] = [];
        const resolvedOrder: number[] = [];
        let tag = 0;
        for (let round = 0; round < 24; round++) {
          const count = randomInt(random, 1, 16);
          for (let i = 0; i < count; i++) {
            const payloads = Array.from({ length: random() < 0.2 ? randomInt(random, 2, 4) : 1 }, () =>
              patterned(random() < 0.1 ? randomInt(random, 10_000, 40_000) : randomInt(random, 1, 3000), tag++),
            );
            const index = issued.length;
            const promise = segment.append(payloads.map(entry), random() < 0.7).then((result) => {
              resolvedOrder.push(index);
              return result;
            });
            issued.push({ payloads, promise });
          }
          // Let batches pile up behind the writer, or wait for this round, or just yield.
          const pause = random();
          if (pause < 0.3) await issued[issued.length - 1]!.promise;
          else if (pause < 0.7) await new Promise<void>((resolve) => setImmediate(resolve));
          else await Promise.resolve();
        }
        // One tick's appends go out as one batch: with the writer held, 10 of them are one group
        // (everything earlier settled first, so no group in progress is counted).
        await Promise.all(issued.map((a) => a.promise));
        hooks.hold(true);
        const groupsBefore = hooks.stats().groups;
        for (let i = 0; i < 10; i++) {
          const payloads = [patterned(randomInt(random, 1, 500), tag++)];
          const index = issued.length;
          const promise = segment.append(payloads.map(entry), i === 9).then((result) => {
            resolvedOrder.push(index);
            return result;
          });
          issued.push({ payloads, promise });
        }
        hooks.hold(false);
        const results = await Promise.all(issued.map((a) => a.promise));
        const after = hooks.stats();
        assert.equal(after.groups - groupsBefore, 1, 'ten same-tick appends: one writer group');
        assert.ok(after.writes - before.writes < issued.length, `merged: ${after.writes - before.writes} writes for ${issued.length} appends`);
        assert.deepEqual(resolvedOrder, issued.map((_, i) => i), 'promises resolve in issue order');
        await segment.close();
        const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
        assertAppendsInFile(scan, header, issued.map((a, i) => ({ payloads: a.payloads, result: results[i]! })), `${mode}/order`);
      });

      it('sync() and close() issued in the same tick as appends: appends resolve first, the records are in the file and it reopens', async function () {
        const { segment, header } = await openFresh(native, mode);
        const events: string[] = [];
        const a = patterned(100, 1);
        const b = patterned(5000, 2);
        const c = patterned(7, 3);
        const pa = segment.append([entry(a)], false).then((r) => (events.push('append a'), r));
        const ps = segment.sync().then(() => events.push('sync'));
        const pb = segment.append([entry(b)], false).then((r) => (events.push('append b'), r));
        const pc = segment.append([entry(c)], false).then((r) => (events.push('append c'), r));
        const pClose = segment.close().then(() => events.push('close'));
        // Appends after close() in the same tick are refused and never reach the file.
        const late = await segment.append([entry(patterned(9, 4))], true).then(
          () => assert.fail('append after close() must reject'),
          (error: unknown) => error as NodeJS.ErrnoException,
        );
        assert.equal(late.code, 'ECLOSED');
        await assert.rejects(segment.sync(), { code: 'ECLOSED' });
        const [ra, , rb, rc] = await Promise.all([pa, ps, pb, pc, pClose]);
        assert.deepEqual(events, ['append a', 'sync', 'append b', 'append c', 'close']);
        assert.equal(segment.failure, null);
        const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
        const issued = [
          { payloads: [a], result: ra },
          { payloads: [b], result: rb },
          { payloads: [c], result: rc },
        ];
        assertAppendsInFile(scan, header, issued, `${mode}/close`);

        // Reopen where the scan says the log ends; append in one tick with close() right behind.
        const reopened = await open(native, segment.path, { mode, offset: scan.validEndOffset, prevCrc: scan.lastCrc, salt: 0x5eed });
        const d = patterned(3000, 5);
        const pd = reopened.append([entry(d)], true);
        await Promise.all([reopened.close(), pd]);
        const rescan = await native.scanSegment(segment.path, { prevCrc: 0 });
        assertAppendsInFile(rescan, header, [...issued, { payloads: [d], result: await pd }], `${mode}/reopen`);
      });

      it('a tick of several MiB (many pooled buffers) and one record larger than the pool keeps both round-trip exactly', async function () {
        const random = makeRandom(SEED ^ 0x4d);
        const { segment, header } = await openFresh(native, mode, 48 << 20);
        const issued: { payloads: Uint8Array[]; promise: Promise<AppendResult> }[] = [];
        // The first append is tiny, so this tick's first buffer is the pool's smallest; the rest
        // overflow it again and again (each overflow hands the batch so far to the writer).
        const sizes = [1, ...Array.from({ length: 60 }, () => randomInt(random, 1, 256 * 1024)), 3 * 1024 * 1024 + 3, 17];
        const scratch = new Uint8Array(new ArrayBuffer(4 << 20));
        sizes.forEach((size, i) => {
          fillPattern(scratch, size, 5000 + i);
          const payloads = [scratch.slice(0, size)];
          issued.push({ payloads, promise: segment.append([entry(scratch.subarray(0, size))], i === sizes.length - 1) });
          scratch.fill(0x5a, 0, size);
        });
        const tickResults = await Promise.all(issued.map((a) => a.promise));
        const tickBytes = tickResults[tickResults.length - 1]!.endOffset - header.endOffset;
        assert.ok(tickBytes > 6 << 20, `one tick wrote ${tickBytes} bytes`);
        // One record bigger than any buffer the pool keeps, then a small one (a pooled buffer again).
        const huge = patterned(UNPOOLED_RECORD_BYTES, 9001);
        const hugeExpected = huge.slice();
        const hugePromise = segment.append([entry(huge)], true);
        huge.fill(0);
        const small = patterned(33, 9002);
        const smallPromise = segment.append([entry(small)], true);
        const [hugeResult, smallResult] = await Promise.all([hugePromise, smallPromise]);
        await segment.close();
        const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
        assertAppendsInFile(
          scan,
          header,
          [
            ...issued.map((a, i) => ({ payloads: a.payloads, result: tickResults[i]! })),
            { payloads: [hugeExpected], result: hugeResult },
            { payloads: [small], result: smallResult },
          ],
          `${mode}/large`,
        );
      });
    });
  }

  it('buffered: the js and native backends write byte-identical files for the same same-tick-merged appends (seeded)', async function () {
    const js = createJsBackend('byte-identity comparison');
    const random = makeRandom(SEED ^ 0x51);
    // Rounds of appends issued in one tick; some rounds carry several records per append.
    const rounds = Array.from({ length: 30 }, () =>
      Array.from({ length: randomInt(random, 1, 12) }, () => ({
        sync: random() < 0.6,
        records: Array.from({ length: random() < 0.25 ? randomInt(random, 2, 3) : 1 }, () =>
          entry(patterned(randomInt(random, 1, random() < 0.1 ? 70_000 : 2000), Math.floor(random() * 2 ** 31))),
        ),
      })),
    );
    async function write(backend: WalBackend): Promise<{ bytes: Buffer; results: AppendResult[] }> {
      const { segment } = await openFresh(backend, 'buffered', 4 << 20, 0xc0ffee);
      const results: AppendResult[] = [];
      for (const round of rounds) {
        // Fresh copies per backend, overwritten once handed over: both must copy at append().
        const promises = round.map(({ records, sync }) => {
          const copies = records.map((r) => entry(r.payload.slice()));
          const promise = segment.append(copies, sync);
          for (const copy of copies) copy.payload.fill(0xff);
          return promise;
        });
        results.push(...(await Promise.all(promises)));
      }
      await segment.close();
      return { bytes: fs.readFileSync(segment.path), results };
    }
    const fromJs = await write(js);
    const fromNative = await write(native);
    assert.deepEqual(fromNative.results, fromJs.results, 'same end offsets and crcs per append');
    const diff = firstDifference(fromNative.bytes, fromJs.bytes);
    assert.equal(diff, -1, `segment files differ at byte ${diff}`);
    const header: RecordInput = {
      type: RecordType.SegmentHeader,
      payload: encodeSegmentHeader({ blockSize: 0, seq: 0, firstIndex: 1, salt: 0xc0ffee, prevCrc: 0 }),
    };
    // One batch per append; its COMMIT frame states the end of the last synced append that had
    // resolved when it was called (earlier rounds only: a round's appends are one tick).
    const parts: Uint8Array[] = [];
    let offset = 0;
    let crc = 0;
    let durableOffset = 0;
    for (const round of [[{ sync: true, records: [header] }], ...rounds]) {
      let roundDurable = durableOffset;
      for (const { sync, records } of round) {
        const encoded = encodeBatch(records, { prevCrc: crc, salt: 0xc0ffee, fileOffset: offset, durableOffset });
        parts.push(encoded.bytes);
        crc = encoded.lastCrc;
        offset += encoded.bytes.length;
        if (sync) roundDurable = offset;
      }
      durableOffset = roundDurable;
    }
    const expected = Buffer.concat(parts);
    assert.equal(firstDifference(fromNative.bytes.subarray(0, expected.length), expected), -1, 'matches the TS framing');
    assert.equal(fromNative.results[fromNative.results.length - 1]!.endOffset, expected.length);
  });

  it(`50 segments opened, written and closed in a row (${MODES.join('/')}) leave no fds, writer threads or frame buffers behind`, async function () {
    const collectGarbage = exposeGc();
    const scratch = patterned(256 * 1024, 42);
    async function oneSegment(i: number): Promise<void> {
      const mode = MODES[i % MODES.length]!;
      const { segment } = await openFresh(native, mode, 2 << 20);
      const hooks = nativeSegmentTestHooks(segment);
      // Several ticks queued behind a held writer: multi-batch groups (direct mode copies those
      // into a pooled huge-page buffer) plus a tick large enough to overflow a pooled buffer.
      hooks.hold(true);
      const promises: Promise<AppendResult>[] = [];
      for (let tick = 0; tick < 3; tick++) {
        for (let j = 0; j < 4; j++) promises.push(segment.append([entry(scratch.subarray(0, 1 + ((i * 131 + j * 977) % 200_000)))], j === 3));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      hooks.hold(false);
      await Promise.all(promises);
      await segment.close();
      opened = opened.filter((s) => s !== segment); // keep nothing of it alive while measuring
      fs.rmSync(segment.path);
    }
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const threads = () => fs.readdirSync('/proc/self/task').length;
    const memory = () => {
      collectGarbage();
      const usage = process.memoryUsage();
      return { rss: usage.rss, external: usage.external };
    };
    for (let i = 0; i < 10; i++) await oneSegment(i); // warm up the pools and libuv's threads
    const before = { fds: fds(), threads: threads(), ...memory() };
    for (let i = 0; i < 50; i++) await oneSegment(i);
    const after = { fds: fds(), threads: threads(), ...memory() };
    const summary = JSON.stringify({ before, after });
    // A leak per segment would show 50 of each; a couple of unrelated ones are tolerated.
    assert.ok(after.fds <= before.fds + 2, `open fds grew: ${summary}`);
    assert.ok(after.threads <= before.threads + 2, `threads grew (writer threads not joined?): ${summary}`);
    // Frame buffers count as external memory (allocateFrameBuffer reports them to V8): the pools
    // keep a bounded few, and each segment moves ~1.5-2.5 MiB through them, so 50 leaked
    // segments' worth would be ~100 MiB. RSS is not asserted: it moves by tens of MiB from run
    // to run (allocator and huge-page churn in direct mode) with no leak on the JS side.
    assert.ok(after.external - before.external < 16 << 20, `external memory grew: ${summary}`);
  });
});

/** global.gc without --expose-gc on the command line (mocha's config is not ours to change). */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc: unknown = vm.runInNewContext('gc');
  assert.equal(typeof gc, 'function');
  return () => {
    (gc as () => void)();
    (gc as () => void)();
  };
}
