/**
 * One suite, run against every WAL backend that loads (js always, native when its module is
 * present and its addon loads), on real files with real fsync. Ends with the cross-backend
 * check: native `buffered` files are byte-identical to the JS backend's.
 *
 * Deterministic: record contents and corruption positions come from a seeded PRNG
 * (RAFTKV_TEST_SEED, printed on failure).
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  COMMIT_FRAME_BYTES,
  RecordType,
  SegmentFailedError,
  type AppendResult,
  type RecordInput,
  type ScanResult,
  type ScannedRecord,
  type SegmentFile,
  type WalBackend,
} from '../../src/wal/backend.js';
import { crc32c } from '../../src/wal/crc32c.js';
import { decodeSegmentHeader, encodeSegmentHeader, frameBytes } from '../../src/wal/frame.js';
import { createJsBackend, filesystemTypeName } from '../../src/wal/js-backend.js';
import { loadNativeBackend, nativeSegmentTestHooks } from '../../src/wal/native-backend.js';
import { makeRandom, randomInt } from './fixtures/backends.js';

const SEED = Number(process.env.RAFTKV_TEST_SEED ?? 20240611);

function randomRecords(random: () => number, count: number, maxBytes: number): RecordInput[] {
  const types = [RecordType.Entry, RecordType.HardState, RecordType.Metadata, RecordType.Snapshot];
  return Array.from({ length: count }, () => {
    const payload = new Uint8Array(randomInt(random, 1, maxBytes));
    for (let i = 0; i < payload.length; i++) payload[i] = Math.floor(random() * 256);
    return { type: types[Math.floor(random() * types.length)]!, payload };
  });
}

function headerRecord(salt: number, prevCrc: number, seq = 1, firstIndex = 1): RecordInput {
  return {
    type: RecordType.SegmentHeader,
    payload: encodeSegmentHeader({ blockSize: 0, seq, firstIndex, salt, prevCrc }),
  };
}

/** One-shot fault injection into a backend's append path, with syscall counters. */
interface FaultKit {
  /** The next write or fdatasync of `segment` fails with EIO (an fdatasync really runs first). */
  failNext(segment: SegmentFile, op: 'write' | 'fdatasync'): void;
  calls(segment: SegmentFile): { writes: number; syncs: number };
}

interface LoadedBackend {
  backend: WalBackend;
  faults: FaultKit;
}

function loadJs(): LoadedBackend {
  const pending = { write: false, fdatasync: false };
  const counts = { writes: 0, syncs: 0 };
  const backend = createJsBackend('test suite', {
    fs: {
      writev: (fd, buffers, position, callback) => {
        counts.writes++;
        if (!pending.write) {
          fs.writev(fd, buffers, position, callback);
          return;
        }
        pending.write = false;
        callback(Object.assign(new Error('EIO: i/o error, writev (injected)'), { code: 'EIO' }), 0);
      },
      fdatasync: (fd, callback) => {
        counts.syncs++;
        if (!pending.fdatasync) {
          fs.fdatasync(fd, callback);
          return;
        }
        pending.fdatasync = false;
        // Really sync, then report what the kernel could have reported (lost writeback).
        fs.fdatasync(fd, () =>
          callback(Object.assign(new Error('EIO: i/o error, fdatasync (injected)'), { code: 'EIO' })),
        );
      },
    },
  });
  return {
    backend,
    faults: {
      failNext: (_segment, op) => {
        pending[op] = true;
      },
      calls: () => ({ ...counts }),
    },
  };
}

function loadNative(): { loaded: LoadedBackend | null; why: string } {
  let backend: WalBackend;
  try {
    backend = loadNativeBackend();
  } catch (error) {
    return { loaded: null, why: `native backend failed to load: ${(error as Error).message}` };
  }
  return {
    loaded: {
      backend,
      faults: {
        failNext: (segment, op) => nativeSegmentTestHooks(segment).setFault(op, 'EIO'),
        calls: (segment) => {
          const { writes, syncs } = nativeSegmentTestHooks(segment).stats();
          return { writes, syncs };
        },
      },
    },
    why: '',
  };
}

const native = loadNative();
if (!native.loaded) {
  if (process.env.RAFTKV_REQUIRE_NATIVE === '1') {
    throw new Error(`RAFTKV_REQUIRE_NATIVE=1 but ${native.why}`);
  }
  console.log(`      (WAL backend suite: native backend not tested: ${native.why})`);
}
const backends: LoadedBackend[] = native.loaded ? [loadJs(), native.loaded] : [loadJs()];

let scratchRoot = '';
before(() => {
  scratchRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'raftkv-backend-test-'));
});
after(() => {
  fs.rmSync(scratchRoot, { recursive: true, force: true });
});
afterEach(function () {
  if (this.currentTest?.state === 'failed') {
    console.log(`        seed: RAFTKV_TEST_SEED=${SEED}`);
  }
});

let fileCounter = 0;
function scratchPath(name: string): string {
  fileCounter++;
  return path.join(scratchRoot, `${fileCounter}-${name}`);
}

/** Create (preallocated) + open a buffered segment and write its header frame. */
async function freshSegment(
  backend: WalBackend,
  name: string,
  options: { salt: number; prevCrc: number; sizeBytes?: number; strategy?: 'zero' | 'none' },
): Promise<{ segment: SegmentFile; file: string; header: AppendResult }> {
  const file = scratchPath(name);
  await backend.createSegmentFile(file, options.sizeBytes ?? 256 * 1024, options.strategy ?? 'zero');
  const segment = await backend.openSegment(file, {
    mode: 'buffered',
    offset: 0,
    prevCrc: options.prevCrc,
    salt: options.salt,
  });
  const header = await segment.append([headerRecord(options.salt, options.prevCrc)], true);
  return { segment, file, header };
}

/** The scan's records, COMMIT frames left out, are `expected`; and the scan ends on a COMMIT. */
function assertScanMatches(scan: ScanResult, expected: readonly RecordInput[], context: string): void {
  const data = scan.records.filter((r) => r.type !== RecordType.Commit);
  assert.equal(data.length, expected.length, `${context}: record count (stop: ${scan.stop.detail})`);
  for (let i = 0; i < expected.length; i++) {
    assert.equal(data[i]!.type, expected[i]!.type, `${context}: type of record ${i}`);
    assert.deepEqual(Buffer.from(data[i]!.payload), Buffer.from(expected[i]!.payload), `${context}: payload of record ${i}`);
  }
  if (expected.length > 0) assert.equal(scan.records.at(-1)!.type, RecordType.Commit, `${context}: the last batch is committed`);
}

function frameEnd(record: ScannedRecord): number {
  return record.offset + frameBytes(record.payload.length);
}

/** crc of the frame ending at each offset (AppendResult.lastCrc is the one at its endOffset). */
function crcAtFrameEnds(scan: ScanResult): Map<number, number> {
  return new Map(scan.records.map((r) => [frameEnd(r), r.crc]));
}

/** Bytes one append of `records` adds: its frames and its COMMIT frame. */
function batchBytes(records: readonly RecordInput[]): number {
  return records.reduce((n, r) => n + frameBytes(r.payload.length), COMMIT_FRAME_BYTES);
}

/** A segment holding `records` (the first is its header), one synced batch per record. */
async function writeSegmentFile(
  backend: WalBackend,
  records: readonly RecordInput[],
  salt: number,
  prevCrc: number,
): Promise<string> {
  const { segment, file } = await freshSegment(backend, 'corrupt-base.wal', {
    salt,
    prevCrc,
    strategy: 'none',
    sizeBytes: 0,
  });
  for (const record of records.slice(1)) await segment.append([record], true);
  await segment.close();
  return file;
}

for (const { backend, faults } of backends) {
  describe(`WAL backend: ${backend.name}`, () => {
    it('crc32c matches the standard test vector and continues from a seed', () => {
      assert.equal(backend.crc32c(new TextEncoder().encode('123456789'), 0), 0xe3069283);
      const random = makeRandom(SEED);
      const data = new Uint8Array(1000).map(() => Math.floor(random() * 256));
      for (const cut of [0, 1, 7, 8, 333, 999, 1000]) {
        const continued = backend.crc32c(data.subarray(cut), backend.crc32c(data.subarray(0, cut), 0));
        assert.equal(continued, crc32c(data), `split at ${cut}`);
      }
    });

    it('round-trips appended records through a scan (zero-preallocated segment)', async () => {
      const random = makeRandom(SEED + 1);
      const salt = Math.floor(random() * 2 ** 32);
      const { segment, file, header } = await freshSegment(backend, 'roundtrip.wal', { salt, prevCrc: 0 });
      assert.equal(segment.mode, 'buffered');
      assert.equal(header.endOffset, frameBytes(40) + COMMIT_FRAME_BYTES);
      const records = randomRecords(random, 40, 3000);
      let last = header;
      for (let i = 0; i < records.length; i += 5) {
        last = await segment.append(records.slice(i, i + 5), true);
      }
      await segment.close();

      const scan = await backend.scanSegment(file, { prevCrc: 0 });
      assert.equal(scan.path, file);
      assert.equal(scan.fileBytes, 256 * 1024);
      assertScanMatches(scan, [headerRecord(salt, 0), ...records], 'roundtrip');
      assert.equal(scan.stop.reason, 'zero');
      assert.equal(scan.stop.offset, last.endOffset);
      assert.equal(scan.validEndOffset, last.endOffset);
      assert.equal(scan.lastCrc, last.lastCrc);
      assert.deepEqual(decodeSegmentHeader(scan.records[0]!.payload), {
        blockSize: 0,
        seq: 1,
        firstIndex: 1,
        salt,
        prevCrc: 0,
      });
    });

    it('round-trips into an unpreallocated file, ending exactly at eof', async () => {
      const random = makeRandom(SEED + 2);
      const { segment, file } = await freshSegment(backend, 'grow.wal', {
        salt: 7,
        prevCrc: 99,
        sizeBytes: 0,
        strategy: 'none',
      });
      const records = randomRecords(random, 10, 500);
      const result = await segment.append(records, true);
      await segment.close();
      assert.equal(fs.statSync(file).size, result.endOffset);
      const scan = await backend.scanSegment(file, { prevCrc: 99 });
      assertScanMatches(scan, [headerRecord(7, 99), ...records], 'grow');
      assert.equal(scan.stop.reason, 'eof');
      assert.equal(scan.validEndOffset, result.endOffset);
    });

    it('creates segment files by each preallocation strategy, refusing an existing path', async () => {
      for (const strategy of ['zero', 'none', 'fallocate'] as const) {
        const file = scratchPath(`create-${strategy}.wal`);
        await backend.createSegmentFile(file, 3 * 1024 * 1024 + 8, strategy);
        assert.equal(fs.statSync(file).size, 3 * 1024 * 1024 + 8, strategy);
        const bytes = fs.readFileSync(file);
        assert.equal(bytes.indexOf(1), -1, `${strategy}: all zeros`);
        await assert.rejects(backend.createSegmentFile(file, 4096, strategy), /EEXIST/);
      }
    });

    it('chains crcs across appends, reopenings and segments', async () => {
      const random = makeRandom(SEED + 3);
      const first = await freshSegment(backend, 'chain-1.wal', { salt: 0x1234, prevCrc: 0 });
      const batchA = randomRecords(random, 3, 200);
      const a = await first.segment.append(batchA, true);
      await first.segment.close();

      // Reopen where a scan says the log ends and continue the chain from its lastCrc.
      const scanA = await backend.scanSegment(first.file, { prevCrc: 0 });
      assert.equal(scanA.lastCrc, a.lastCrc);
      const reopened = await backend.openSegment(first.file, {
        mode: 'buffered',
        offset: scanA.validEndOffset,
        prevCrc: scanA.lastCrc,
        salt: 0x1234,
      });
      const batchB = randomRecords(random, 4, 200);
      const b = await reopened.append(batchB, true);
      await reopened.close();
      const scanB = await backend.scanSegment(first.file, { prevCrc: 0 });
      assertScanMatches(scanB, [headerRecord(0x1234, 0), ...batchA, ...batchB], 'reopened');
      assert.equal(scanB.lastCrc, b.lastCrc);
      // Each append's lastCrc is the crc of its COMMIT frame, where the chain went on.
      assert.equal(crcAtFrameEnds(scanB).get(a.endOffset), a.lastCrc);
      assert.equal(scanB.records.find((r) => frameEnd(r) === a.endOffset)?.type, RecordType.Commit);

      // The next segment's chain starts from this one's last crc.
      const second = await freshSegment(backend, 'chain-2.wal', { salt: 0x5678, prevCrc: b.lastCrc });
      const batchC = randomRecords(random, 2, 200);
      await second.segment.append(batchC, true);
      await second.segment.close();
      const scanC = await backend.scanSegment(second.file, { prevCrc: b.lastCrc });
      assertScanMatches(scanC, [headerRecord(0x5678, b.lastCrc), ...batchC], 'second segment');
      // With the wrong seed not even the header validates: the chain is broken.
      const broken = await backend.scanSegment(second.file, { prevCrc: (b.lastCrc ^ 1) >>> 0 });
      assert.equal(broken.records.length, 0);
      assert.equal(broken.stop.reason, 'crc');
      assert.equal(broken.stop.offset, 0);

      // A frame chained from the wrong crc stops the scan right there.
      const wrongChain = await backend.openSegment(first.file, {
        mode: 'buffered',
        offset: b.endOffset,
        prevCrc: (b.lastCrc ^ 0x80) >>> 0,
        salt: 0x1234,
      });
      await wrongChain.append(randomRecords(random, 1, 50), true);
      await wrongChain.close();
      const scanWrong = await backend.scanSegment(first.file, { prevCrc: 0 });
      assertScanMatches(scanWrong, [headerRecord(0x1234, 0), ...batchA, ...batchB], 'wrong chain');
      assert.equal(scanWrong.stop.reason, 'crc');
      assert.equal(scanWrong.stop.offset, b.endOffset);
      assert.equal(scanWrong.stop.laterCommit, null);
    });

    it('group-commits many concurrent appends in call order with exact end offsets', async () => {
      const random = makeRandom(SEED + 4);
      const { segment, file, header } = await freshSegment(backend, 'group.wal', {
        salt: 42,
        prevCrc: 0,
        sizeBytes: 4 * 1024 * 1024,
      });
      const batches = Array.from({ length: 300 }, () =>
        randomRecords(random, randomInt(random, 1, 3), 2000),
      );
      const resolvedOrder: number[] = [];
      const pending = batches.map((batch, i) =>
        segment.append(batch, i % 7 !== 3).then((result) => {
          resolvedOrder.push(i);
          return result;
        }),
      );
      const results = await Promise.all(pending);
      await segment.close();

      assert.deepEqual(resolvedOrder, batches.map((_, i) => i), 'promises resolve in call order');
      let expectedEnd = header.endOffset;
      for (let i = 0; i < batches.length; i++) {
        expectedEnd += batchBytes(batches[i]!);
        assert.equal(results[i]!.endOffset, expectedEnd, `end offset of batch ${i}`);
      }
      const scan = await backend.scanSegment(file, { prevCrc: 0 });
      assertScanMatches(scan, [headerRecord(42, 0), ...batches.flat()], 'group commit');
      assert.equal(scan.lastCrc, results.at(-1)!.lastCrc);
      // Each batch's lastCrc is the crc of its COMMIT frame, the last of its frames in the file.
      const crcs = crcAtFrameEnds(scan);
      for (let i = 0; i < batches.length; i++) assert.equal(crcs.get(results[i]!.endOffset), results[i]!.lastCrc, `lastCrc of batch ${i}`);
      assert.equal(scan.records.filter((r) => r.type === RecordType.Commit).length, batches.length + 1, 'one COMMIT frame per append');
    });

    it('accepts sync=false batches and makes them durable with sync()', async () => {
      const random = makeRandom(SEED + 5);
      const { segment, file, header } = await freshSegment(backend, 'nosync.wal', { salt: 5, prevCrc: 0 });
      const records = randomRecords(random, 12, 700);
      const results: AppendResult[] = [];
      for (let i = 0; i < records.length; i += 3) {
        results.push(await segment.append(records.slice(i, i + 3), false));
      }
      let expectedEnd = header.endOffset;
      for (let i = 0; i < results.length; i++) {
        expectedEnd += batchBytes(records.slice(i * 3, i * 3 + 3));
        assert.equal(results[i]!.endOffset, expectedEnd);
      }
      await segment.sync();
      await segment.close();
      const scan = await backend.scanSegment(file, { prevCrc: 0 });
      assertScanMatches(scan, [headerRecord(5, 0), ...records], 'sync=false');
      assert.equal(scan.validEndOffset, expectedEnd);
    });

    it('rejects bad input without failing the segment', async () => {
      const { segment, file } = await freshSegment(backend, 'badinput.wal', { salt: 1, prevCrc: 0 });
      await assert.rejects(segment.append([{ type: RecordType.Entry, payload: new Uint8Array(0) }], true));
      await assert.rejects(
        segment.append([{ type: 99 as RecordType, payload: new Uint8Array(3) }], true),
      );
      // COMMIT frames close batches; the backend writes them, callers cannot.
      await assert.rejects(segment.append([{ type: RecordType.Commit, payload: new Uint8Array(24) }], true), /COMMIT frames are added by the backend/);
      assert.equal(segment.failure, null);
      const good = { type: RecordType.Entry, payload: new Uint8Array([1, 2, 3]) };
      await segment.append([good], true);
      await segment.close();
      await assert.rejects(segment.append([good], true), /closed/);
      const scan = await backend.scanSegment(file, { prevCrc: 0 });
      assertScanMatches(scan, [headerRecord(1, 0), good], 'after bad input');
    });

    it('fails the segment on a real write error (ENOSPC from /dev/full) and keeps the first error', async () => {
      const segment = await backend.openSegment('/dev/full', {
        mode: 'buffered',
        offset: 0,
        prevCrc: 0,
        salt: 1,
      });
      const record = { type: RecordType.Entry, payload: new Uint8Array(100) };
      const outcomes = await Promise.allSettled([
        segment.append([record], true),
        segment.append([record], true),
        segment.append([record], false),
      ]);
      const firstError = segment.failure;
      assert.ok(firstError, 'segment is failed');
      assert.equal((firstError as NodeJS.ErrnoException).code, 'ENOSPC');
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        const reason = (outcome as PromiseRejectedResult).reason as Error;
        assert.ok(reason instanceof SegmentFailedError, String(reason));
        assert.equal(reason.cause, firstError);
      }
      for (const later of [segment.append([record], true), segment.sync()]) {
        await assert.rejects(later, (error: unknown) => {
          assert.ok(error instanceof SegmentFailedError);
          assert.equal(error.cause, firstError);
          return true;
        });
      }
      assert.equal(segment.failure, firstError);
      await segment.close();
    });

    it('fails the segment on a real fdatasync error (EINVAL on /dev/full)', async () => {
      const segment = await backend.openSegment('/dev/full', {
        mode: 'buffered',
        offset: 0,
        prevCrc: 0,
        salt: 1,
      });
      await assert.rejects(segment.sync(), (error: unknown) => {
        assert.ok(error instanceof SegmentFailedError);
        assert.equal((error.cause as NodeJS.ErrnoException).code, 'EINVAL');
        return true;
      });
      const firstError = segment.failure;
      assert.ok(firstError);
      await assert.rejects(segment.sync(), (error: unknown) => (error as Error).cause === firstError);
      await segment.close();
    });

    it('on a failed fdatasync of a real file: failed state, original error, never retried', async () => {
      const { segment } = await freshSegment(backend, 'fsyncfail.wal', { salt: 3, prevCrc: 0 });
      const record = { type: RecordType.Entry, payload: new Uint8Array([9, 9, 9]) };
      await segment.append([record], true);
      const before = faults.calls(segment);
      faults.failNext(segment, 'fdatasync');
      const outcomes = await Promise.allSettled(Array.from({ length: 10 }, () => segment.append([record], true)));
      const firstError = segment.failure;
      assert.ok(firstError, 'segment is failed');
      assert.equal((firstError as NodeJS.ErrnoException).code, 'EIO');
      for (const outcome of outcomes) {
        assert.equal(outcome.status, 'rejected');
        const reason = (outcome as PromiseRejectedResult).reason as Error;
        assert.ok(reason instanceof SegmentFailedError, String(reason));
        assert.equal(reason.cause, firstError);
      }
      await assert.rejects(segment.append([record], true), SegmentFailedError);
      await assert.rejects(segment.sync(), (error: unknown) => (error as Error).cause === firstError);
      assert.equal(segment.failure, firstError);
      const after = faults.calls(segment);
      assert.equal(after.syncs - before.syncs, 1, 'one failed fdatasync, never retried');
      assert.equal(after.writes - before.writes, 1, 'nothing written after the failure');
      await segment.close();
    });

    it('on a failed write of a real file: failed state, no sync, the write error is the cause', async () => {
      const { segment } = await freshSegment(backend, 'writefail.wal', { salt: 4, prevCrc: 0 });
      const before = faults.calls(segment);
      faults.failNext(segment, 'write');
      const record = { type: RecordType.Entry, payload: new Uint8Array(64) };
      await assert.rejects(segment.append([record], true), SegmentFailedError);
      const firstError = segment.failure;
      assert.equal((firstError as NodeJS.ErrnoException | null)?.code, 'EIO');
      await assert.rejects(segment.append([record], true), (error: unknown) => (error as Error).cause === firstError);
      const after = faults.calls(segment);
      assert.deepEqual(after, { writes: before.writes + 1, syncs: before.syncs }, 'no retry, no sync after a failed write');
      await segment.close();
    });

    it('syncs a real directory; fsync EINVAL from a FIFO reports supported:false', () => {
      const dir = scratchPath('dir');
      fs.mkdirSync(dir);
      assert.deepEqual(backend.syncDirectory(dir), { supported: true, errno: null });
      const fifo = scratchPath('fifo');
      execFileSync('mkfifo', [fifo]);
      // fsync(2) on a FIFO fails with a real kernel EINVAL, like vboxsf on a directory.
      assert.deepEqual(backend.syncDirectory(fifo), { supported: false, errno: 'EINVAL' });
      assert.throws(() => backend.syncDirectory(scratchPath('missing')), /ENOENT/);
    });

    it('reports direct-I/O capability and filesystem types', () => {
      const probe = backend.probeDirectIo(scratchRoot);
      assert.equal(typeof probe.usable, 'boolean');
      assert.equal(typeof probe.reason, 'string');
      if (backend.name === 'js') assert.deepEqual(probe, { usable: false, blockSize: 0, reason: 'JS backend has no O_DIRECT' });
      const type = backend.filesystemType(scratchRoot);
      assert.match(type, /^([a-z0-9]+|0x[0-9a-f]+)$/);
      // Cross-check against the kernel's own mount table where it names a type we map.
      const mounts = fs.readFileSync('/proc/mounts', 'utf8').split('\n').map((line) => line.split(' '));
      const shm = mounts.find((fields) => fields[1] === '/dev/shm');
      if (shm?.[2] === 'tmpfs') assert.equal(backend.filesystemType('/dev/shm'), 'tmpfs');
      if (backend.name === 'js') {
        assert.equal(filesystemTypeName(0xef53), 'ext4');
        assert.equal(filesystemTypeName(0x786f4256), 'vboxsf');
        assert.equal(filesystemTypeName(0x12345678), '0x12345678');
      }
    });

    if (backend.name === 'js') {
      it('js: refuses direct mode with a clear error; dsync mode round-trips', async () => {
        const file = scratchPath('modes.wal');
        await backend.createSegmentFile(file, 65536, 'zero');
        await assert.rejects(
          backend.openSegment(file, { mode: 'direct', offset: 0, prevCrc: 0, salt: 1 }),
          /JS backend/,
        );
        const auto = await backend.openSegment(file, { mode: 'auto', offset: 0, prevCrc: 0, salt: 1 });
        assert.equal(auto.mode, 'buffered');
        assert.match(auto.modeReason, /O_DIRECT/);
        await auto.close();
        const dsync = await backend.openSegment(file, { mode: 'dsync', offset: 0, prevCrc: 0, salt: 1 });
        assert.equal(dsync.mode, 'dsync');
        const record = { type: RecordType.Entry, payload: new Uint8Array([1]) };
        await dsync.append([headerRecord(1, 0), record], true);
        await dsync.close();
        assertScanMatches(await backend.scanSegment(file, { prevCrc: 0 }), [headerRecord(1, 0), record], 'dsync');
      });
    }

    describe('scan stop reasons on crafted corruption', () => {
      const random = makeRandom(SEED + 6);
      const salt = 0xa5a5a5a5;
      const prevCrc = 0x0badf00d;
      const records = [headerRecord(salt, prevCrc), ...randomRecords(random, 9, 60)];
      let baseFile = '';
      let base = Buffer.alloc(0);
      /** Every frame of the base file (one batch per record: the record, then its COMMIT). */
      let frames: ScannedRecord[] = [];

      before(async () => {
        baseFile = await writeSegmentFile(backend, records, salt, prevCrc);
        base = fs.readFileSync(baseFile);
        frames = (await backend.scanSegment(baseFile, { prevCrc })).records;
        assert.equal(frames.length, 2 * records.length);
        assert.equal(base.length, frameEnd(frames.at(-1)!));
      });

      async function scanBytes(bytes: Uint8Array): Promise<ScanResult> {
        const file = scratchPath('crafted.wal');
        fs.writeFileSync(file, bytes);
        const scan = await backend.scanSegment(file, { prevCrc });
        fs.rmSync(file);
        return scan;
      }

      /** How many frames the scan keeps when only the `whole` ones survived: up to the last
       * COMMIT frame before the first frame that is not whole. */
      function committedFrames(whole: (f: ScannedRecord) => boolean): number {
        let kept = 0;
        for (let i = 0; i < frames.length && whole(frames[i]!); i++) if (frames[i]!.type === RecordType.Commit) kept = i + 1;
        return kept;
      }

      function assertKeeps(scan: ScanResult, kept: number, context: string): void {
        assert.deepEqual(scan.records.map((r) => [r.offset, r.type, r.crc]), frames.slice(0, kept).map((r) => [r.offset, r.type, r.crc]), context);
        assert.equal(scan.validEndOffset, kept === 0 ? 0 : frameEnd(frames[kept - 1]!), context);
      }

      it('truncation at every byte offset of the last batches keeps exactly the whole batches', async () => {
        for (let cut = frames.at(-6)!.offset; cut <= base.length; cut++) {
          const scan = await scanBytes(base.subarray(0, cut));
          const context = `cut at ${cut}`;
          const whole = frames.filter((f) => frameEnd(f) <= cut);
          assertKeeps(scan, committedFrames((f) => frameEnd(f) <= cut), context);
          // The walk stops after the last whole frame, committed or not.
          assert.equal(scan.stop.offset, whole.length === 0 ? 0 : frameEnd(whole.at(-1)!), context);
          assert.equal(scan.stop.laterCommit, null, context);
          if (frames.some((f) => frameEnd(f) === cut)) assert.equal(scan.stop.reason, 'eof', context);
          else assert.ok(['torn', 'zero'].includes(scan.stop.reason), `${context}: ${scan.stop.reason}`);
        }
      });

      it('a zeroed tail (preallocated file) from every byte offset of the last batches keeps the whole batches', async () => {
        const padded = Buffer.alloc(base.length + 4096);
        base.copy(padded);
        for (let from = frames.at(-6)!.offset; from <= base.length; from++) {
          const bytes = Buffer.from(padded);
          bytes.fill(0, from);
          const scan = await scanBytes(bytes);
          // Zeroing bytes that are zero already (padding, a COMMIT frame's reserved word) changes nothing.
          const context = `zeroed from ${from}`;
          assertKeeps(scan, committedFrames((f) => base.subarray(Math.max(from, f.offset), frameEnd(f)).every((b) => b === 0)), context);
          assert.equal(scan.stop.laterCommit, null, `${context}: ${scan.stop.detail}`);
          // A partly zeroed header reads as a bad header (length), a zeroed payload as a crc
          // mismatch: with no later COMMIT proving it synced, either is a torn tail.
          assert.ok(['torn', 'crc', 'length', 'zero'].includes(scan.stop.reason), `${context}: ${scan.stop.reason}`);
        }
      });

      it('a bit flip anywhere in a middle batch stops there; a later COMMIT frame proves it was synced', async () => {
        for (const victim of [8, 9]) {
          // A record, then its batch's COMMIT frame.
          const start = frames[victim]!.offset;
          const end = start + 16 + frames[victim]!.payload.length; // padding is not covered by the crc
          for (let at = start; at < end; at++) {
            const bytes = Buffer.from(base);
            bytes[at]! ^= 1 << Math.floor(random() * 8);
            const scan = await scanBytes(bytes);
            const context = `bit flip at ${at}`;
            assertKeeps(scan, 8, context);
            assert.equal(scan.stop.offset, start, context);
            // (a flipped length bit can make it run past the end of this unpreallocated file: torn)
            assert.ok(['crc', 'length', 'commit', 'torn'].includes(scan.stop.reason), `${context}: ${scan.stop.reason} ${scan.stop.detail}`);
            // Batch 5's COMMIT frame (written after batch 4 was synced) says so.
            assert.equal(scan.stop.laterCommit?.offset, frames[11]!.offset, `${context}: ${scan.stop.detail}`);
            assert.ok(scan.stop.laterCommit!.durableOffset > frameEnd(frames[7]!), context);
          }
        }
      });

      it('a bit flip in the last batch stops there with no later COMMIT frame', async () => {
        const victim = frames.length - 2;
        const start = frames[victim]!.offset;
        const end = frameEnd(frames.at(-1)!);
        for (let at = start; at < end; at++) {
          const bytes = Buffer.from(base);
          bytes[at]! ^= 1 << Math.floor(random() * 8);
          const scan = await scanBytes(bytes);
          const context = `bit flip at ${at}`;
          if (at >= start + 16 + frames[victim]!.payload.length && at < frames.at(-1)!.offset) continue; // padding
          assertKeeps(scan, victim, context);
          assert.equal(scan.stop.laterCommit, null, `${context}: ${scan.stop.detail}`);
        }
      });

      it('a COMMIT frame with a valid crc but wrong fields stops the scan (commit)', async () => {
        const commit = frames[9]!;
        for (const [field, at, value] of [
          ['frameOffset', 0, commit.offset + 8],
          ['durableOffset', 8, commit.offset + 8],
          ['reserved', 20, 1],
        ] as const) {
          const bytes = Buffer.from(base);
          const payload = commit.offset + 16;
          bytes.writeUInt32LE(value, payload + at);
          // Re-seal it, so only its fields are wrong.
          const seed = bytes.readUInt32LE(payload + 16);
          const prefix = Buffer.alloc(4);
          prefix.writeUInt32LE(salt);
          let crc = crc32c(prefix, seed);
          crc = crc32c(bytes.subarray(commit.offset, commit.offset + 8), crc);
          crc = crc32c(bytes.subarray(payload, payload + 24), crc);
          bytes.writeUInt32LE(crc, commit.offset + 8);
          const scan = await scanBytes(bytes);
          assert.equal(scan.stop.reason, 'commit', `${field}: ${scan.stop.detail}`);
          assert.equal(scan.stop.offset, commit.offset, field);
          assertKeeps(scan, 8, field);
        }
      });

      it('a zeroed hole in the middle followed by committed batches is not a clean end', async () => {
        const bytes = Buffer.from(base);
        bytes.fill(0, frames[6]!.offset, frameEnd(frames[9]!));
        const scan = await scanBytes(bytes);
        assertKeeps(scan, 6, 'hole');
        assert.equal(scan.stop.offset, frames[6]!.offset);
        assert.equal(scan.stop.reason, 'torn');
        assert.equal(scan.stop.laterCommit?.offset, frames[11]!.offset);
      });

      it('stale frames of an older incarnation (other salt) never validate', async () => {
        // Recycle the file: new header and fewer records over the old bytes.
        const newSalt = 0x5a5a5a5a;
        const file = scratchPath('recycled.wal');
        fs.writeFileSync(file, base);
        const segment = await backend.openSegment(file, { mode: 'buffered', offset: 0, prevCrc, salt: newSalt });
        const fresh = [headerRecord(newSalt, prevCrc), { type: RecordType.Entry, payload: new Uint8Array(24) }];
        const result = await segment.append(fresh, true);
        await segment.close();
        const scan = await backend.scanSegment(file, { prevCrc });
        assertScanMatches(scan, fresh, 'recycled');
        assert.equal(scan.validEndOffset, result.endOffset);
        assert.notEqual(scan.stop.reason, 'eof');
        assert.equal(scan.stop.laterCommit, null, scan.stop.detail);
      });
    });
  });
}

describe('WAL backends: cross-backend', () => {
  const random = makeRandom(SEED + 7);

  it('scans of one file agree across backends', async () => {
    const records = [headerRecord(77, 5), ...randomRecords(random, 20, 400)];
    for (const writer of backends) {
      const file = await writeSegmentFile(writer.backend, records, 77, 5);
      const bytes = fs.readFileSync(file);
      bytes[Math.floor(bytes.length / 2)]! ^= 4;
      fs.writeFileSync(file, bytes);
      const scans = await Promise.all(backends.map(({ backend }) => backend.scanSegment(file, { prevCrc: 5 })));
      for (const scan of scans.slice(1)) {
        assert.deepEqual(scan.stop, scans[0]!.stop);
        assert.equal(scan.records.length, scans[0]!.records.length);
        assert.equal(scan.lastCrc, scans[0]!.lastCrc);
      }
    }
  });

  if (native.loaded) {
    it('native buffered and js write byte-identical files for the same records and salt', async () => {
      for (const strategy of ['zero', 'none'] as const) {
        const salt = Math.floor(random() * 2 ** 32);
        const prevCrc = Math.floor(random() * 2 ** 32);
        const batches = Array.from({ length: 30 }, () => randomRecords(random, randomInt(random, 1, 8), 5000));
        const files: Buffer[] = [];
        for (const { backend } of backends) {
          const { segment, file } = await freshSegment(backend, `identical-${backend.name}.wal`, {
            salt,
            prevCrc,
            sizeBytes: strategy === 'zero' ? 2 * 1024 * 1024 : 0,
            strategy,
          });
          // Concurrent batches too: group commit must not change the bytes.
          await Promise.all(batches.map((batch, i) => segment.append(batch, i % 3 === 0)));
          await segment.sync();
          await segment.close();
          files.push(fs.readFileSync(file));
        }
        assert.equal(files[0]!.length, files[1]!.length, `${strategy}: file sizes`);
        assert.ok(files[0]!.equals(files[1]!), `${strategy}: js and native files differ`);
      }
    });
  }
});
