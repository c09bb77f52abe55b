/**
 * Crash consistency by construction (docs/wal-format.md "Scanning and recovery"):
 *  - the last segment truncated at EVERY byte offset of its final records, or zeroed from there
 *    to its end: opening keeps exactly the batches that were whole (a batch whose COMMIT frame
 *    is damaged or missing is dropped whole), repairs the tail, and the log accepts appends and
 *    reopens cleanly afterwards;
 *  - damage anywhere else (a flipped bit mid-log, an earlier segment, a missing segment, a
 *    broken chain) refuses to open with a WalCorruptionError naming file and offset, and
 *    leaves the files untouched.
 * Runs against every backend that loads.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { RecordType, type ScannedRecord, type WalBackend } from '../../src/wal/backend.js';
import { WalCorruptionError } from '../../src/wal/errors.js';
import { frameCrc } from '../../src/wal/frame.js';
import { decodeEntry, decodeHardState } from '../../src/wal/records.js';
import { parseSegmentFileName } from '../../src/wal/segment-name.js';
import { Wal, type WalOptions } from '../../src/wal/wal.js';
import { backends, makeRandom, MemoryLogger, SEED, tempRoot } from './fixtures/backends.js';

const METADATA = { nodeId: 1, clusterId: 99 };

function smallEntry(index: number, random: () => number): Entry {
  const data = new Uint8Array(Math.floor(random() * 17));
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256);
  return { term: 1, index, type: EntryType.Normal, data };
}

function frameEnd(rec: ScannedRecord): number {
  return rec.offset + 16 + Math.ceil(rec.payload.length / 8) * 8;
}

/**
 * The committed prefix of `frames` when only the `whole` ones survived: up to the last COMMIT
 * frame (and PAD frames right after it) before the first frame that is not whole. `end` is
 * where the log then ends.
 */
function committedPrefix(frames: readonly ScannedRecord[], whole: (f: ScannedRecord) => boolean): { count: number; end: number } {
  let count = 0;
  let end = 0;
  for (let i = 0; i < frames.length && whole(frames[i]!); i++) {
    const f = frames[i]!;
    if (f.type === RecordType.Commit || (f.type === RecordType.Pad && f.offset === end)) {
      count = i + 1;
      end = frameEnd(f);
    }
  }
  return { count, end };
}

/** Where the last batch of `frames` begins: just after the COMMIT frame before its own. */
function lastBatchStart(frames: readonly ScannedRecord[]): number {
  const commits = frames.filter((f) => f.type === RecordType.Commit);
  assert.ok(commits.length >= 2, 'at least two batches');
  return frameEnd(commits[commits.length - 2]!);
}

function segmentPaths(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => parseSegmentFileName(n) !== null)
    .sort()
    .map((n) => path.join(dir, n));
}

/** What a replay of exactly these (whole) records yields. */
function expectedFrom(records: ScannedRecord[]): { entries: Entry[]; hardState: HardState } {
  let entries: Entry[] = [];
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  for (const r of records) {
    if (r.type === RecordType.Entry) {
      const e = decodeEntry(r.payload);
      entries = entries.slice(0, e.index - 1);
      entries.push(e);
    } else if (r.type === RecordType.HardState) hardState = decodeHardState(r.payload);
  }
  return { entries, hardState };
}

function copyDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

for (const { name, backend } of backends) {
  describe(`WAL recovery (${name} backend, seed ${SEED})`, function () {
    let root: string;
    let logger: MemoryLogger;
    /** Per-test overrides (the direct-mode variant). */
    let variant: Partial<WalOptions> = {};
    const options = (extra: Partial<WalOptions> = {}): WalOptions => ({
      backend,
      logger,
      mode: 'buffered',
      segmentBytes: 8192,
      preallocate: 'zero',
      ...variant,
      ...extra,
    });

    beforeEach(() => {
      root = tempRoot(`recovery-${name}`);
      logger = new MemoryLogger();
      variant = {};
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    /** A closed WAL whose last segment ends with a few small records, and its frames. */
    async function pristine(
      random: () => number,
      segments: 'one' | 'several' = 'one',
      dirName = 'pristine',
    ): Promise<{ dir: string; last: string; frames: ScannedRecord[]; count: number }> {
      const dir = path.join(root, dirName);
      const wal = await Wal.create(dir, { ...options(), metadata: METADATA });
      const count = segments === 'one' ? 12 : 600;
      for (let i = 1; i <= count; i++) {
        await wal.save(i % 4 === 0 ? { term: 1, vote: 1, commit: i - 1 } : null, [smallEntry(i, random)], { sync: true });
      }
      await wal.close();
      const files = segmentPaths(dir);
      if (segments === 'several') assert.ok(files.length >= 3, `expected several segments, got ${files.length}`);
      const last = files[files.length - 1]!;
      const previousCrc = await chainSeed(backend, files);
      const scan = await backend.scanSegment(last, { prevCrc: previousCrc });
      assert.equal(scan.stop.reason, 'zero', 'pristine segment ends in its zero preallocation');
      return { dir, last, frames: scan.records, count };
    }

    async function verifyOffsets(variant: 'truncate' | 'zero'): Promise<void> {
      const random = makeRandom(SEED);
      const { dir, last, frames } = await pristine(random);
      const original = fs.readFileSync(last);
      const tail = frames.filter((f) => f.type !== RecordType.Pad && f.type !== RecordType.Commit).slice(-3);
      const from = tail[0]!.offset;
      const to = frameEnd(frames[frames.length - 1]!);
      const work = path.join(root, 'work');
      const lastName = path.basename(last);
      let repairs = 0;
      // Every byte of the records; inside direct mode's PAD frames (up to 2 blocks of zeros
      // after a small header) a sample suffices.
      const cuts: number[] = [];
      for (let cut = from; cut <= to; cut++) {
        const pad = frames.find((f) => f.type === RecordType.Pad && cut > f.offset + 17 && cut < frameEnd(f) - 8);
        if (pad === undefined || (cut - pad.offset) % 1021 === 0) cuts.push(cut);
      }
      for (const cut of cuts) {
        copyDir(dir, work);
        const file = path.join(work, lastName);
        if (variant === 'truncate') {
          fs.truncateSync(file, cut);
        } else {
          const fd = fs.openSync(file, 'r+');
          fs.writeSync(fd, Buffer.alloc(original.length - cut), 0, original.length - cut, cut);
          fs.closeSync(fd);
        }
        // Whole = unchanged by the damage: ends before the cut, or (zeroing) only zeros after it.
        const whole = (f: ScannedRecord): boolean =>
          variant === 'truncate' ? frameEnd(f) <= cut : frameEnd(f) <= cut || original.subarray(Math.max(cut, f.offset), frameEnd(f)).every((b) => b === 0);
        // Kept = the batches before the first damaged frame (the scan stops there).
        const kept = committedPrefix(frames, whole);
        const expected = expectedFrom(frames.slice(0, kept.count));
        const context = `${variant} at offset ${cut} (frames ${tail.map((f) => `${f.offset}-${frameEnd(f)}`).join(', ')}, seed ${SEED})`;

        let replay;
        try {
          replay = await Wal.open(work, options());
        } catch (err) {
          assert.fail(`${context}: open failed: ${(err as Error).message}`);
        }
        assert.deepEqual(replay.entries, expected.entries, context);
        assert.deepEqual(replay.hardState, expected.hardState, context);
        if (replay.repair !== null) {
          repairs++;
          assert.equal(replay.repair.file, file, context);
          assert.equal(replay.repair.offset, kept.end, context);
          if (replay.repair.brokenFile !== null) assert.ok(fs.existsSync(replay.repair.brokenFile), context);
        }
        // The repaired log takes appends, and a second open finds no damage at all. (Every other
        // offset, to keep the suite's time sane: the opens above already cover every offset.)
        if (cuts.indexOf(cut) % 2 === 1) {
          await replay.wal.close();
          continue;
        }
        const nextIndex = expected.entries.length + 1;
        await replay.wal.save({ term: 2, vote: 1, commit: nextIndex }, [smallEntry(nextIndex, random), smallEntry(nextIndex + 1, random)]);
        await replay.wal.close();
        const again = await Wal.open(work, options());
        try {
          assert.equal(again.repair, null, `${context}: second open repaired again`);
          assert.equal(again.entries.length, nextIndex + 1, context);
          assert.deepEqual(again.entries.slice(0, expected.entries.length), expected.entries, context);
          assert.deepEqual(again.hardState, { term: 2, vote: 1, commit: nextIndex }, context);
        } finally {
          await again.wal.close();
        }
      }
      assert.ok(repairs > 0, 'some offsets needed a repair');
      assert.ok(logger.warnings.some((w) => /repaired torn tail.*dropped the unsynced final batch, \d+ byte/.test(w)), 'repairs are logged with the dropped byte count');
    }

    it('truncated at every byte offset of its last 3 records: keeps exactly the whole records', async () => {
      await verifyOffsets('truncate');
    });

    it('zeroed from every byte offset of its last 3 records to the end: keeps exactly the whole records', async () => {
      await verifyOffsets('zero');
    });

    if (backend.probeDirectIo(os.tmpdir()).usable) {
      it('direct mode: truncated at every byte offset of its last 3 records (PAD frames sampled)', async () => {
        variant = { mode: 'direct', segmentBytes: 256 * 1024 };
        await verifyOffsets('truncate');
      });
    }

    it('a repair keeps a copy of the dropped batch in <segment>.<offset>.broken and zeroes it in place', async () => {
      const { dir, last, frames } = await pristine(makeRandom(SEED + 1));
      const lastFrame = frames[frames.length - 1]!;
      assert.equal(lastFrame.type, RecordType.Commit);
      const batchStart = lastBatchStart(frames);
      const cut = lastFrame.offset + 5; // inside the last batch's COMMIT frame header: torn
      const original = fs.readFileSync(last);
      fs.truncateSync(last, cut);
      const replay = await Wal.open(dir, options());
      await replay.wal.close();
      assert.ok(replay.repair !== null);
      assert.equal(replay.repair.offset, batchStart, 'the whole batch is dropped, not just its damaged frame');
      assert.equal(replay.repair.brokenFile, `${last}.${batchStart.toString(16)}.broken`);
      assert.deepEqual(fs.readFileSync(replay.repair.brokenFile!), original.subarray(batchStart, cut));
      assert.equal(replay.repair.droppedBytes, cut - batchStart);
      const after = fs.readFileSync(last);
      assert.ok(after.subarray(batchStart).every((b) => b === 0), 'cut bytes are zeroed');
      assert.deepEqual(replay.entries, expectedFrom(frames.filter((f) => f.offset < batchStart)).entries);
    });

    it('a hole in the last batch followed by its other frames is a torn batch; a bit flip in the LAST batch too', async () => {
      const random = makeRandom(SEED + 2);
      const { dir, last, frames } = await pristine(random);
      const batchStart = lastBatchStart(frames);
      const bytes = fs.readFileSync(last);
      bytes.fill(0, batchStart, batchStart + 8); // zero length word, the rest of the batch after it
      fs.writeFileSync(last, bytes);
      const replay = await Wal.open(dir, options());
      const expected = expectedFrom(frames.filter((f) => f.offset < batchStart));
      assert.deepEqual(replay.entries, expected.entries);
      assert.deepEqual(replay.hardState, expected.hardState);
      assert.ok(replay.repair !== null);
      assert.equal(replay.repair.offset, batchStart);
      await replay.wal.close();

      const { dir: dir2, last: last2, frames: frames2 } = await pristine(makeRandom(SEED + 3), 'one', 'pristine2');
      const batchStart2 = lastBatchStart(frames2);
      const b2 = fs.readFileSync(last2);
      b2[batchStart2 + 16] = b2[batchStart2 + 16]! ^ 0x04;
      fs.writeFileSync(last2, b2);
      fs.rmSync(dir, { recursive: true });
      const replay2 = await Wal.open(dir2, options());
      assert.ok(replay2.repair !== null);
      assert.equal(replay2.repair.offset, batchStart2);
      await replay2.wal.close();
    });

    it('a flipped bit in a middle record refuses to open, naming file and offset, and changes nothing', async () => {
      const random = makeRandom(SEED + 4);
      const { dir, last, frames } = await pristine(random);
      const middle = frames[Math.floor(frames.length / 2)]!;
      for (const [what, at] of [
        ['payload', middle.offset + 16 + Math.floor(random() * middle.payload.length)],
        ['length field', middle.offset + 1],
        ['crc field', middle.offset + 9],
      ] as const) {
        const original = fs.readFileSync(last);
        const damaged = Buffer.from(original);
        damaged[at] = damaged[at]! ^ (1 << Math.floor(random() * 8));
        fs.writeFileSync(last, damaged);
        await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
          assert.ok(err instanceof WalCorruptionError, `${what}: ${String(err)}`);
          assert.equal(err.file, last, what);
          assert.equal(err.offset, middle.offset, what);
          assert.ok(err.message.includes(last) && err.message.includes(String(middle.offset)), err.message);
          return true;
        });
        assert.deepEqual(fs.readFileSync(last), damaged, `${what}: a refused open must not modify the segment`);
        assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.broken')).length, 0);
        fs.writeFileSync(last, original);
      }
      const ok = await Wal.open(dir, options());
      await ok.wal.close();
    });

    it('damage in an earlier segment (even at its tail) refuses to open', async () => {
      const random = makeRandom(SEED + 5);
      const { dir } = await pristine(random, 'several');
      const files = segmentPaths(dir);
      const target = files[1]!;
      const scan = await backend.scanSegment(target, { prevCrc: await chainSeed(backend, files.slice(0, 2)) });
      const victim = scan.records[scan.records.length - 1]!; // its LAST record: still not a torn tail
      const bytes = fs.readFileSync(target);
      bytes[victim.offset + 16] = bytes[victim.offset + 16]! ^ 0x80;
      fs.writeFileSync(target, bytes);
      await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
        assert.ok(err instanceof WalCorruptionError, String(err));
        assert.equal(err.file, target);
        assert.equal(err.offset, victim.offset);
        return true;
      });
    });

    it('a segment of format version 1 (no COMMIT frames) is refused, naming the version', async () => {
      const { dir, last } = await pristine(makeRandom(SEED + 8));
      const bytes = fs.readFileSync(last);
      bytes.writeUInt32LE(1, 16 + 8); // SEGMENT_HEADER payload: version
      const header = readSegmentHeaderFramePayload(bytes);
      bytes.writeUInt32LE(frameCrc(header.prevCrc, header.salt, bytes.subarray(0, 8), bytes.subarray(16, 56)), 8);
      fs.writeFileSync(last, bytes);
      await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
        assert.ok(!(err instanceof WalCorruptionError), 'not damage: a format this build does not read');
        assert.match(String(err), new RegExp(`${last}: unsupported raftkv WAL format version 1 \\(this build reads version 2 only: version 1 has no COMMIT frames`));
        return true;
      });
    });

    it('a missing segment (sequence gap) refuses to open, naming the file after the gap', async () => {
      const { dir } = await pristine(makeRandom(SEED + 6), 'several');
      const files = segmentPaths(dir);
      fs.rmSync(files[1]!);
      await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
        assert.ok(err instanceof WalCorruptionError, String(err));
        assert.equal(err.file, files[2]);
        assert.match(err.message, /sequence gap/);
        return true;
      });
    });

    it('a segment from another log (broken crc chain) refuses to open', async () => {
      // The same history written twice: same names and records, different salts, so a different chain.
      const { dir } = await pristine(makeRandom(SEED + 7), 'several');
      const { dir: other } = await pristine(makeRandom(SEED + 7), 'several', 'other');
      const mine = segmentPaths(dir);
      const theirs = segmentPaths(other);
      assert.equal(path.basename(theirs[1]!), path.basename(mine[1]!), 'same cut points');
      fs.copyFileSync(theirs[1]!, mine[1]!);
      await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
        assert.ok(err instanceof WalCorruptionError, String(err));
        assert.equal(err.file, mine[1]);
        assert.equal(err.offset, 0);
        return true;
      });
    });
  });
}

/** salt and prevCrc of a SEGMENT_HEADER frame at the start of `bytes` (whatever its version). */
function readSegmentHeaderFramePayload(bytes: Buffer): { salt: number; prevCrc: number } {
  return { salt: bytes.readUInt32LE(16 + 32), prevCrc: bytes.readUInt32LE(16 + 36) };
}

/** The crc chain value that the last of `files` starts from (the lastCrc of the one before). */
async function chainSeed(backend: WalBackend, files: string[]): Promise<number> {
  if (files.length < 2) return 0;
  const first = fs.readFileSync(files[0]!);
  let prevCrc = first.readUInt32LE(16 + 36); // header prevCrc of the oldest segment
  for (const f of files.slice(0, -1)) prevCrc = (await backend.scanSegment(f, { prevCrc })).lastCrc;
  return prevCrc;
}
