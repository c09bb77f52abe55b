/**
 * The native addon through src/wal/native-backend.ts, on real files: every mode, auto on tmpfs,
 * group commit ordering, the failed state (test-only fault hook), directory sync on a FIFO
 * (a real kernel EINVAL), scans of crafted corruptions (checked against the TypeScript scanner
 * in src/wal/frame.ts), and direct-mode padding.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import {
  FORMAT_CONSTANTS,
  RecordType,
  SegmentFailedError,
  type RecordInput,
  type ScanResult,
  type SegmentFile,
  type WalBackend,
  type WalModeOption,
} from '../../src/wal/backend.js';
import { batchByteLength, encodeBatch, encodeFrames, encodeSegmentHeader, scanBuffer } from '../../src/wal/frame.js';
import { createJsBackend } from '../../src/wal/js-backend.js';
import {
  assertAddonFormat,
  loadNativeBackend,
  nativeSegmentTestHooks,
  rawWriteSyncLoop,
} from '../../src/wal/native-backend.js';
import { SEED, makeRandom, tempRoot } from '../wal/fixtures/backends.js';

function payload(length: number, fill: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (fill * 31 + i * 17) & 0xff;
  return bytes;
}

function entry(length: number, fill: number): RecordInput {
  return { type: RecordType.Entry, payload: payload(length, fill) };
}

/**
 * The bytes the backends write for `batches` appended one after another, each synced before the
 * next (so each COMMIT frame states the previous batch's end as durable).
 */
function framedBatches(batches: readonly RecordInput[][], prevCrc: number, salt: number): { bytes: Uint8Array; ends: number[] } {
  const parts: Uint8Array[] = [];
  const ends: number[] = [];
  let offset = 0;
  let durableOffset = 0;
  let crc = prevCrc;
  for (const batch of batches) {
    const encoded = encodeBatch(batch, { prevCrc: crc, salt, fileOffset: offset, durableOffset });
    parts.push(encoded.bytes);
    crc = encoded.lastCrc;
    offset += encoded.bytes.length;
    durableOffset = offset;
    ends.push(offset);
  }
  return { bytes: new Uint8Array(Buffer.concat(parts)), ends }; // (own ArrayBuffer: offset 0)
}

function headerRecord(salt: number, prevCrc: number, blockSize = 0): RecordInput {
  return {
    type: RecordType.SegmentHeader,
    payload: encodeSegmentHeader({ blockSize, seq: 0, firstIndex: 1, salt, prevCrc }),
  };
}

/** Only what both scanners must agree on (payloads compared by content). */
function comparable(scan: ScanResult) {
  return {
    fileBytes: scan.fileBytes,
    records: scan.records.map((r) => ({
      offset: r.offset,
      type: r.type,
      crc: r.crc,
      payload: Buffer.from(r.payload).toString('hex'),
    })),
    validEndOffset: scan.validEndOffset,
    lastCrc: scan.lastCrc,
    stop: scan.stop,
  };
}

describe('native addon (src/wal/native-backend.ts)', function () {
  let native: WalBackend;
  let dir: string;

  before(function () {
    native = loadNativeBackend();
    assert.equal(native.name, 'native');
  });
  beforeEach(function () {
    // On the checkout's filesystem (disk-backed: O_DIRECT works there), not tmpfs.
    const base = path.join(process.cwd(), 'build');
    fs.mkdirSync(base, { recursive: true });
    dir = fs.mkdtempSync(path.join(base, 'native-test-'));
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`      seed: RAFTKV_TEST_SEED=${SEED}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function openFresh(mode: WalModeOption, salt = 0x5eed, size = 1 << 20): Promise<SegmentFile> {
    const file = path.join(dir, `seg-${mode}-${Math.floor(Math.random() * 1e9)}.wal`);
    await native.createSegmentFile(file, size, 'zero');
    return native.openSegment(file, { mode, offset: 0, prevCrc: 0, salt });
  }

  it('crc32c matches the known vector and the TypeScript implementation', function () {
    assert.equal(native.crc32c(Buffer.from('123456789'), 0), 0xe3069283);
    const js = createJsBackend('comparison');
    const random = makeRandom(SEED);
    for (let i = 0; i < 200; i++) {
      const data = payload(Math.floor(random() * 3000), i);
      const seed = Math.floor(random() * 2 ** 32);
      assert.equal(native.crc32c(data, seed), js.crc32c(data, seed));
    }
  });

  for (const mode of ['buffered', 'direct', 'dsync'] as const) {
    it(`writes, syncs and scans back a segment in ${mode} mode on a real file`, async function () {
      const segment = await openFresh(mode, 77);
      assert.equal(segment.mode, mode);
      assert.match(segment.modeReason, new RegExp(mode));
      assert.equal(segment.blockSize, mode === 'direct' ? segment.blockSize : 0);
      if (mode === 'direct') assert.ok(segment.blockSize >= 4096);
      const first = await segment.append([headerRecord(77, 0, segment.blockSize)], true);
      const batches = [[entry(10, 1)], [entry(4000, 2), entry(1, 3)], [entry(300, 4)]];
      let last = first;
      for (const batch of batches) {
        last = await segment.append(batch, true);
        assert.ok(last.endOffset > first.endOffset);
      }
      await segment.close();
      const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
      assert.equal(scan.stop.reason, 'zero');
      assert.equal(scan.validEndOffset, last.endOffset);
      assert.equal(scan.lastCrc, last.lastCrc);
      const written = scan.records.filter((r) => r.type !== RecordType.Pad && r.type !== RecordType.Commit);
      const expected = [headerRecord(77, 0, segment.blockSize), ...batches.flat()];
      assert.deepEqual(
        written.map((r) => Buffer.from(r.payload).toString('hex')),
        expected.map((r) => Buffer.from(r.payload).toString('hex')),
      );
      assert.deepEqual(comparable(scan), comparable(scanBuffer(fs.readFileSync(segment.path), { prevCrc: 0, path: segment.path })));
    });
  }

  it('buffered files are byte-identical to the TypeScript framing of the same records', async function () {
    const segment = await openFresh('buffered', 0xabcdef, 64 * 1024);
    const batches = [[headerRecord(0xabcdef, 0)], [entry(5, 1), entry(8, 2)], [entry(1000, 3)]];
    for (const batch of batches) await segment.append(batch, true);
    await segment.close();
    const expected = framedBatches(batches, 0, 0xabcdef).bytes;
    const bytes = fs.readFileSync(segment.path);
    assert.deepEqual(bytes.subarray(0, expected.length), Buffer.from(expected));
    assert.ok(bytes.subarray(expected.length).every((b) => b === 0));
  });

  it('auto on tmpfs (/dev/shm) picks buffered and says why', async function () {
    assert.equal(native.filesystemType('/dev/shm'), 'tmpfs');
    const shm = fs.mkdtempSync('/dev/shm/raftkv-native-test-');
    try {
      const file = path.join(shm, 'seg.wal');
      await native.createSegmentFile(file, 64 * 1024, 'zero');
      const segment = await native.openSegment(file, { mode: 'auto', offset: 0, prevCrc: 0, salt: 1 });
      assert.equal(segment.mode, 'buffered');
      assert.equal(segment.blockSize, 0);
      assert.match(segment.modeReason, /^auto: buffered on tmpfs \(.+\)$/);
      await segment.close();
    } finally {
      fs.rmSync(shm, { recursive: true, force: true });
    }
  });

  it('auto on a disk-backed filesystem picks direct where O_DIRECT works', async function () {
    const probe = native.probeDirectIo(dir);
    const segment = await openFresh('auto');
    assert.equal(segment.mode, probe.usable ? 'direct' : 'buffered');
    assert.match(segment.modeReason, /^auto: (direct|buffered) on \S+ \(.+\)$/);
    await segment.close();
  });

  it('group commit: batches queued while the writer is busy go out in one write + one sync, in order', async function () {
    const segment = await openFresh('buffered', 9, 4 << 20);
    await segment.append([headerRecord(9, 0)], true);
    const hooks = nativeSegmentTestHooks(segment);
    const before = hooks.stats();
    hooks.hold(true);
    const resolvedOrder: number[] = [];
    const promises = Array.from({ length: 200 }, (_, i) =>
      segment.append([entry(1 + ((i * 37) % 500), i)], i % 2 === 0).then((result) => {
        resolvedOrder.push(i);
        return result;
      }),
    );
    hooks.hold(false);
    const results = await Promise.all(promises);
    const after = hooks.stats();
    assert.equal(after.writes - before.writes, 1, 'one write for 200 batches');
    assert.equal(after.syncs - before.syncs, 1, 'one fdatasync for 200 batches');
    assert.deepEqual(resolvedOrder, Array.from({ length: 200 }, (_, i) => i));
    for (let i = 1; i < results.length; i++) assert.ok(results[i]!.endOffset > results[i - 1]!.endOffset);
    await segment.close();
    const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
    assert.equal(scan.records.length, 2 * 201, 'each append: its record and a COMMIT frame');
    // Each append's endOffset is exactly where its COMMIT frame ends and the next record starts;
    // its lastCrc is that frame's crc.
    results.forEach((result, i) => {
      const commit = scan.records[2 * i + 3]!;
      assert.equal(commit.type, RecordType.Commit);
      const next = scan.records[2 * i + 4];
      assert.equal(result.endOffset, next === undefined ? scan.validEndOffset : next.offset);
      assert.equal(result.lastCrc, commit.crc);
    });
  });

  it('group commit: 1000 concurrent single-record appends resolve in order and all land', async function () {
    const segment = await openFresh('buffered', 10, 4 << 20);
    await segment.append([headerRecord(10, 0)], true);
    const hooks = nativeSegmentTestHooks(segment);
    const before = hooks.stats();
    const order: number[] = [];
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        segment.append([entry(64, i)], true).then((r) => {
          order.push(i);
          return r;
        }),
      ),
    );
    assert.deepEqual(order, Array.from({ length: 1000 }, (_, i) => i));
    for (let i = 1; i < results.length; i++) assert.equal(results[i]!.endOffset - results[i - 1]!.endOffset, 80 + 40);
    const syncs = hooks.stats().syncs - before.syncs;
    assert.ok(syncs >= 1 && syncs < 1000, `merged into fewer syncs (${syncs})`);
    await segment.close();
    const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
    const data = scan.records.filter((r) => r.type === RecordType.Entry);
    assert.equal(data.length, 1000);
    data.forEach((r, i) => assert.deepEqual(r.payload, payload(64, i)));
  });

  it('a failed fdatasync fails the segment: the original error every later time, never retried', async function () {
    const segment = await openFresh('buffered');
    await segment.append([headerRecord(0x5eed, 0)], true);
    const hooks = nativeSegmentTestHooks(segment);
    hooks.setFault('fdatasync', 'EIO');
    const first = await segment.append([entry(10, 1)], true).then(
      () => assert.fail('append must reject'),
      (error: unknown) => error,
    );
    assert.ok(first instanceof SegmentFailedError);
    const cause = first.cause as NodeJS.ErrnoException;
    assert.equal(cause.code, 'EIO');
    assert.equal(cause.syscall, 'fdatasync');
    assert.equal(cause.path, segment.path);
    assert.equal(segment.failure, cause);
    const stats = hooks.stats();
    // The fault was one-shot: a retry would now succeed, so any success below means a retry.
    for (const attempt of [() => segment.append([entry(5, 2)], true), () => segment.sync(), () => segment.append([entry(5, 3)], false)]) {
      await assert.rejects(attempt(), (error: unknown) => {
        assert.ok(error instanceof SegmentFailedError);
        assert.equal(error.cause, cause, 'the same original error object');
        return true;
      });
    }
    assert.deepEqual(hooks.stats(), { ...stats, groups: hooks.stats().groups }, 'no write or sync after the failure');
    await segment.close();
  });

  it('a failed write fails the segment too, and queued batches share the failure', async function () {
    const segment = await openFresh('buffered');
    const hooks = nativeSegmentTestHooks(segment);
    hooks.hold(true);
    hooks.setFault('write', 'ENOSPC');
    const outcomes = [segment.append([headerRecord(0x5eed, 0)], true), segment.append([entry(8, 1)], true)].map((p) =>
      p.then(
        () => null,
        (error: unknown) => error,
      ),
    );
    hooks.hold(false);
    const [a, b] = await Promise.all(outcomes);
    assert.ok(a instanceof SegmentFailedError && b instanceof SegmentFailedError);
    assert.equal((a.cause as NodeJS.ErrnoException).code, 'ENOSPC');
    assert.equal(a.cause, b.cause);
    assert.equal(hooks.stats().syncs, 0);
    await segment.close();
    await assert.rejects(segment.append([entry(1, 1)], true), SegmentFailedError);
  });

  it('directory sync: a FIFO gives a real kernel EINVAL → supported:false; other errors throw', function () {
    assert.deepEqual(native.syncDirectory(dir), { supported: true, errno: null });
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    assert.deepEqual(native.syncDirectory(fifo), { supported: false, errno: 'EINVAL' });
    assert.throws(
      () => native.syncDirectory(path.join(dir, 'missing')),
      (error: NodeJS.ErrnoException) => error.code === 'ENOENT' && error.syscall === 'open' && error.path === path.join(dir, 'missing'),
    );
  });

  it('direct mode: every synced batch ends on a block boundary, padded by one PAD frame unless it already did', async function () {
    const segment = await openFresh('direct', 31, 4 << 20);
    const block = segment.blockSize;
    // A group needs a PAD frame exactly when its frames do not already end on a block boundary.
    let expectedPads = 0;
    const track = (start: number, records: RecordInput[]): void => {
      if ((start + batchByteLength(records)) % block !== 0) expectedPads++;
    };
    const header = [headerRecord(31, 0, block)];
    track(0, header);
    let end = (await segment.append(header, true)).endOffset;
    const random = makeRandom(SEED);
    for (let i = 0; i < 30; i++) {
      const batch = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, j) => entry(1 + Math.floor(random() * 6000), i * 10 + j));
      track(end, batch);
      const result = await segment.append(batch, true);
      assert.equal(result.endOffset % block, 0, `batch ${i} ends at ${result.endOffset}`);
      end = result.endOffset;
    }
    // Merged batches: only the group's end is padded, and it is still block aligned.
    const hooks = nativeSegmentTestHooks(segment);
    hooks.hold(true);
    const mergedRecords = [[entry(100, 1)], [entry(200, 2)]];
    if ((end + batchByteLength(mergedRecords[0]!) + batchByteLength(mergedRecords[1]!)) % block !== 0) expectedPads++;
    const merged = mergedRecords.map((records) => segment.append(records, true));
    hooks.hold(false);
    const [m1, m2] = await Promise.all(merged);
    assert.notEqual(m1!.endOffset % block, 0);
    assert.equal(m2!.endOffset % block, 0);
    await segment.close();
    const scan = await native.scanSegment(segment.path, { prevCrc: 0 });
    assert.equal(scan.stop.reason, 'zero');
    const pads = scan.records.filter((r) => r.type === RecordType.Pad);
    assert.ok(expectedPads >= 25, `the sizes are random: most groups need a pad (${expectedPads})`);
    assert.equal(pads.length, expectedPads);
    for (const pad of pads) {
      assert.equal((pad.offset + 16 + pad.payload.length) % block, 0);
      assert.ok(pad.payload.every((b) => b === 0));
    }
    assert.deepEqual(comparable(scan), comparable(scanBuffer(fs.readFileSync(segment.path), { prevCrc: 0 })));
  });

  describe('scan of crafted corruptions agrees with the TypeScript scanner', function () {
    const salt = 0x1234567;
    // One synced batch per record: [header, COMMIT], [entry, COMMIT], …
    const records = [headerRecord(salt, 42), ...Array.from({ length: 12 }, (_, i) => entry(1 + ((i * 53) % 150), i))];
    const { bytes: clean } = framedBatches(records.map((r) => [r]), 42, salt);
    const offsets: number[] = [];
    for (let at = 0; at < clean.length; ) {
      offsets.push(at);
      at += 16 + Math.ceil(new DataView(clean.buffer).getUint32(at, true) / 8) * 8;
    }
    /** Where the frames of record i (and its COMMIT frame) start. */
    const recordAt = (i: number) => offsets[2 * i]!;
    const commitAt = (i: number) => offsets[2 * i + 1]!;

    async function scanBoth(bytes: Uint8Array, label: string): Promise<ScanResult> {
      const file = path.join(dir, 'crafted.wal');
      fs.writeFileSync(file, bytes);
      const ours = await native.scanSegment(file, { prevCrc: 42 });
      const reference = scanBuffer(bytes, { prevCrc: 42, path: file });
      assert.deepEqual(comparable(ours), comparable(reference), label);
      return ours;
    }

    function withTail(extra: number): Uint8Array {
      const bytes = new Uint8Array(clean.length + extra);
      bytes.set(clean);
      return bytes;
    }

    it('clean, zero tail, eof, wrong seed', async function () {
      assert.equal((await scanBoth(withTail(4096), 'zero tail')).stop.reason, 'zero');
      assert.equal((await scanBoth(clean, 'eof')).stop.reason, 'eof');
      const file = path.join(dir, 'seed.wal');
      fs.writeFileSync(file, clean);
      const wrongSeed = await native.scanSegment(file, { prevCrc: 41 });
      assert.equal(wrongSeed.stop.reason, 'crc');
      assert.equal(wrongSeed.records.length, 0);
    });

    it('a bit flip mid-log: a crc stop that a later COMMIT frame proves synced; in the last batch: not proven', async function () {
      const mid = withTail(512);
      mid[recordAt(5) + 18]! ^= 0x04;
      const m = await scanBoth(mid, 'mid flip');
      assert.equal(m.stop.reason, 'crc');
      assert.equal(m.stop.offset, recordAt(5));
      assert.equal(m.validEndOffset, recordAt(5));
      assert.equal(m.stop.laterCommit?.offset, commitAt(6), 'the next batch says batch 5 was durable');
      assert.equal(m.stop.laterCommit?.durableOffset, recordAt(6));
      const tail = withTail(512);
      tail[recordAt(12) + 16]! ^= 0x80;
      const t = await scanBoth(tail, 'tail flip');
      assert.equal(t.stop.reason, 'crc');
      assert.equal(t.stop.laterCommit, null);
      // The torn batch's own COMMIT frame validates on its own but proves nothing about itself.
      assert.equal(t.validEndOffset, recordAt(12));
    });

    it('bad length, reserved bytes, zero hole, garbage after zeros, truncation, a COMMIT frame with wrong fields', async function () {
      const badLength = withTail(256);
      new DataView(badLength.buffer).setUint32(recordAt(4), 64 * 1024 * 1024 + 1, true);
      const l = await scanBoth(badLength, 'bad length');
      assert.equal(l.stop.reason, 'length');
      assert.equal(l.stop.laterCommit?.offset, commitAt(5));
      const reserved = withTail(256);
      reserved[recordAt(3) + 6] = 1;
      assert.equal((await scanBoth(reserved, 'reserved')).stop.reason, 'length');
      const hole = withTail(256);
      hole.fill(0, recordAt(3), recordAt(6));
      const h = await scanBoth(hole, 'hole');
      assert.equal(h.stop.reason, 'torn');
      assert.equal(h.stop.laterCommit?.offset, commitAt(6));
      const garbage = withTail(256);
      garbage[clean.length + 77] = 0x42;
      const g = await scanBoth(garbage, 'garbage');
      assert.equal(g.stop.reason, 'torn');
      assert.equal(g.records.length, 2 * records.length);
      assert.equal(g.stop.laterCommit, null);
      for (let cut = recordAt(11); cut <= clean.length; cut++) {
        const s = await scanBoth(clean.subarray(0, cut), `cut at ${cut}`);
        assert.ok(s.stop.reason === 'torn' || s.stop.reason === 'eof', `cut ${cut}: ${s.stop.reason}`);
      }
      const wrongOffset = withTail(0);
      new DataView(wrongOffset.buffer).setUint32(commitAt(7) + 16, commitAt(7) + 8, true);
      const w = await scanBoth(wrongOffset, 'commit frame offset (crc now wrong too)');
      assert.equal(w.stop.offset, commitAt(7));
    });

    it('seeded random corruptions (bit flips, zeroed ranges, truncations)', async function () {
      const random = makeRandom(SEED);
      for (let round = 0; round < 150; round++) {
        const bytes = withTail(Math.floor(random() * 600));
        const kind = round % 3;
        if (kind === 0) {
          const at = Math.floor(random() * clean.length);
          bytes[at]! ^= 1 << Math.floor(random() * 8);
        } else if (kind === 1) {
          const from = Math.floor(random() * clean.length);
          bytes.fill(0, from, from + 1 + Math.floor(random() * 200));
        }
        const length = kind === 2 ? Math.floor(random() * bytes.length) : bytes.length;
        await scanBoth(bytes.subarray(0, length), `round ${round} (seed ${SEED})`);
      }
    });

    it('a wrong magic in a crc-valid header is a clear error naming the file', async function () {
      const wrong = encodeFrames([{ type: RecordType.SegmentHeader, payload: new Uint8Array(40).fill(1) }], 42, 0x01010101).bytes;
      const file = path.join(dir, 'wrong.wal');
      fs.writeFileSync(file, wrong);
      await assert.rejects(native.scanSegment(file, { prevCrc: 42 }), new RegExp(`${file}: not a raftkv WAL segment`));
    });
  });

  it('createSegmentFile: zero, fallocate and none reserve the size; an existing file is refused', async function () {
    for (const strategy of ['zero', 'fallocate', 'none'] as const) {
      const file = path.join(dir, `pre-${strategy}.wal`);
      await native.createSegmentFile(file, 2 << 20, strategy);
      assert.equal(fs.statSync(file).size, 2 << 20);
      if (strategy !== 'none') assert.ok(fs.statSync(file).blocks * 512 >= 2 << 20);
      await assert.rejects(native.createSegmentFile(file, 4096, strategy), { code: 'EEXIST', syscall: 'open', path: file });
    }
  });

  it('flock: a second holder gets ELOCKED until the first releases', function () {
    assert.ok(native.flock !== null);
    const lockFile = path.join(dir, 'LOCK');
    const release = native.flock(lockFile);
    assert.throws(() => native.flock!(lockFile), (error: NodeJS.ErrnoException) => error.code === 'ELOCKED' && error.path === lockFile);
    release();
    release(); // idempotent
    native.flock(lockFile)();
  });

  it('errors carry code, syscall and path; bad input is rejected, not a crash', async function () {
    const missing = path.join(dir, 'nope.wal');
    await assert.rejects(native.openSegment(missing, { mode: 'buffered', offset: 0, prevCrc: 0, salt: 0 }), {
      code: 'ENOENT',
      syscall: 'open',
      path: missing,
    });
    await assert.rejects(native.scanSegment(missing, { prevCrc: 0 }), { code: 'ENOENT' });
    const segment = await openFresh('buffered');
    await assert.rejects(segment.append([{ type: RecordType.Entry, payload: new Uint8Array(0) }], true), RangeError);
    await assert.rejects(segment.append([{ type: 99 as RecordType, payload: new Uint8Array(1) }], true), RangeError);
    await assert.rejects(
      segment.append([{ type: RecordType.Entry, payload: 'x' as unknown as Uint8Array }], true),
      TypeError,
    );
    await assert.rejects(native.openSegment(segment.path, { mode: 'bogus' as WalModeOption, offset: 0, prevCrc: 0, salt: 0 }), RangeError);
    await assert.rejects(native.openSegment(segment.path, { mode: 'buffered', offset: 1 << 30, prevCrc: 0, salt: 0 }), /past the end/);
    assert.equal(segment.failure, null, 'bad input does not fail the segment');
    await segment.append([headerRecord(0x5eed, 0)], true);
    await segment.close();
    await assert.rejects(segment.append([entry(1, 1)], true), { code: 'ECLOSED' });
  });

  it('rawWriteSyncLoop times every iteration of write + fdatasync', async function () {
    const result = await rawWriteSyncLoop(path.join(dir, 'raw'), 4096, 16);
    assert.equal(result.latenciesUs.length, 16);
    assert.ok(result.seconds > 0);
    assert.ok(result.latenciesUs.every((us) => us > 0));
    assert.equal(fs.statSync(path.join(dir, 'raw')).size, 16 * 4096);
  });
});

describe('WAL backend selection (src/wal/select-backend.ts)', function () {
  const script = `import { walBackend } from './src/index.ts'; console.log(JSON.stringify(walBackend()));`;

  /** Prints walBackend() from a child process (in `cwd`, default the repo) with extra env. */
  function run(env: Record<string, string>, cwd?: string): { stdout: string; stderr: string; status: number } {
    try {
      const stdout = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        ...(cwd !== undefined ? { cwd } : {}),
        env: { ...process.env, ...env },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { stdout, stderr: '', status: 0 };
    } catch (error) {
      const e = error as { stdout: string; stderr: string; status: number };
      return { stdout: e.stdout, stderr: e.stderr, status: e.status };
    }
  }

  it('picks native by default, js when forced, and refuses an unknown value', function () {
    assert.equal(JSON.parse(run({ RAFTKV_WAL_BACKEND: '' }).stdout).name, 'native');
    const js = run({ RAFTKV_WAL_BACKEND: 'js' });
    assert.deepEqual(JSON.parse(js.stdout), { name: 'js', reason: 'forced by RAFTKV_WAL_BACKEND=js' });
    const bogus = run({ RAFTKV_WAL_BACKEND: 'bogus' });
    assert.notEqual(bogus.status, 0);
    assert.match(bogus.stderr, /RAFTKV_WAL_BACKEND must be 'js' or 'native'/);
  });

  it('the addon exports the frame-format constants of src/wal/backend.ts; a copy that differs is refused, naming it', function () {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as { resolve(dir: string): string };
    const file = nodeGypBuild.resolve(process.cwd());
    const addon = require(file) as { formatConstants: Record<string, unknown> };
    assert.deepEqual({ ...addon.formatConstants }, { ...FORMAT_CONSTANTS });
    assert.ok(Object.isFrozen(addon.formatConstants));
    assertAddonFormat(addon.formatConstants, file);
    assert.throws(() => assertAddonFormat(undefined, file), new RegExp(`${file} is not a compatible raftkv addon: it exports no formatConstants`));
    assert.throws(
      () => assertAddonFormat({ ...FORMAT_CONSTANTS, formatVersion: 1, typeCommit: 9 }, file),
      /frames the WAL differently from this package \(src\/wal\/backend\.ts\): formatVersion 1 \(expected 2\), typeCommit 9 \(expected 7\); rebuild it/,
    );
    assert.throws(() => assertAddonFormat({ ...FORMAT_CONSTANTS, extra: 1 }, file), /extra \(unknown to this package\)/);
  });

  it('a package whose frame format differs from the addon it finds falls back to js and says why', function () {
    // A copy of the package whose backend.ts claims format 3, loading this checkout's build.
    const copy = tempRoot('format-mismatch');
    try {
      fs.cpSync(path.join(process.cwd(), 'src'), path.join(copy, 'src'), { recursive: true });
      const backendTs = path.join(copy, 'src', 'wal', 'backend.ts');
      const source = fs.readFileSync(backendTs, 'utf8');
      assert.match(source, /export const WAL_FORMAT_VERSION = 2;/);
      fs.writeFileSync(backendTs, source.replace('export const WAL_FORMAT_VERSION = 2;', 'export const WAL_FORMAT_VERSION = 3;'));
      fs.copyFileSync(path.join(process.cwd(), 'package.json'), path.join(copy, 'package.json'));
      fs.symlinkSync(path.join(process.cwd(), 'node_modules'), path.join(copy, 'node_modules'));
      // Whichever addon this checkout loads: its build/, or the shipped prebuilds/ (CI's
      // package step leaves no build/ behind).
      for (const dir of ['build', 'prebuilds']) {
        if (fs.existsSync(path.join(process.cwd(), dir))) fs.symlinkSync(path.join(process.cwd(), dir), path.join(copy, dir));
      }
      const fallback = run({ RAFTKV_WAL_BACKEND: '' }, copy);
      assert.equal(fallback.status, 0, fallback.stderr);
      const info = JSON.parse(fallback.stdout) as { name: string; reason: string };
      assert.equal(info.name, 'js');
      assert.match(info.reason, /native addon unavailable: .*frames the WAL differently from this package .*formatVersion 2 \(expected 3\)/);
      const forced = run({ RAFTKV_WAL_BACKEND: 'native' }, copy);
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, /RAFTKV_WAL_BACKEND=native but the native addon cannot be loaded: .*formatVersion 2 \(expected 3\)/);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('falls back to js with one stderr line when the addon cannot load; forced native then throws', function () {
    // A package copy without any binary: src/ and package.json only, node_modules linked.
    const copy = tempRoot('nobinary');
    try {
      fs.cpSync(path.join(process.cwd(), 'src'), path.join(copy, 'src'), { recursive: true });
      fs.copyFileSync(path.join(process.cwd(), 'package.json'), path.join(copy, 'package.json'));
      fs.symlinkSync(path.join(process.cwd(), 'node_modules'), path.join(copy, 'node_modules'));
      const runIn = (env: Record<string, string>) => run(env, copy);
      // stderr is only visible on failure with execFileSync; spawn through a shell to capture it.
      const fallback = execFileSync(
        'sh',
        ['-c', `"${process.execPath}" --import tsx --input-type=module -e "${script.replace(/"/g, '\\"')}" 2>stderr.txt`],
        { cwd: copy, env: { ...process.env, RAFTKV_WAL_BACKEND: '' }, encoding: 'utf8' },
      );
      assert.equal(JSON.parse(fallback).name, 'js');
      const stderr = fs.readFileSync(path.join(copy, 'stderr.txt'), 'utf8').trim().split('\n');
      assert.equal(stderr.length, 1, `one warning line, got: ${stderr.join(' | ')}`);
      assert.match(stderr[0]!, /^raftkv: native WAL addon unavailable \(.+\); using the slower pure-TypeScript WAL backend$/);
      const forced = runIn({ RAFTKV_WAL_BACKEND: 'native' });
      assert.notEqual(forced.status, 0);
      assert.match(forced.stderr, /RAFTKV_WAL_BACKEND=native but the native addon cannot be loaded/);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});
