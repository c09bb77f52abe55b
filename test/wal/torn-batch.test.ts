/**
 * A torn final batch, by construction. A power loss during a batch's write + fdatasync can keep
 * any subset of its 512-byte sectors and lose the others (writeback and disk caches keep no
 * order within an unsynced write); a lost sector reads back what it held before the write:
 * zeros in a preallocated segment, or the previous batch's bytes in a sector it shares with it.
 * For final batches of 1 to N sectors, every subset of lost sectors (a seeded random sample where
 * N is large), in every mode of every backend:
 *  - the open succeeds; the final batch is kept when its bytes all survived, and otherwise
 *    dropped whole, copied to the .broken file and logged; every earlier (synced) batch is kept;
 *  - the log then takes appends and reopens cleanly.
 * Plus the multi-batch cases: an unsynced sync=false batch and the batch written after it are
 * one torn final write; damage to a batch that a later batch proves synced refuses to open.
 *
 * Uses only the WAL's public API, the backend's scan and the file bytes, so it runs unchanged
 * against the format before COMMIT frames (where it fails: "crc stop followed by valid records").
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { RecordType, type WalMode } from '../../src/wal/backend.js';
import { WalCorruptionError } from '../../src/wal/errors.js';
import { frameBytes } from '../../src/wal/frame.js';
import { entryRecord, hardStateRecord } from '../../src/wal/records.js';
import { parseSegmentFileName } from '../../src/wal/segment-name.js';
import { Wal, type WalOptions } from '../../src/wal/wal.js';
import { backends, makeRandom, MemoryLogger, randomInt, SEED, tempRoot } from './fixtures/backends.js';

const SECTOR = 512;
const METADATA = { nodeId: 3, clusterId: 7 };
/** Every subset up to this many sectors; a random sample of SAMPLED_SUBSETS beyond. */
const EXHAUSTIVE_SECTORS = 8;
const SAMPLED_SUBSETS = 40;
/** The COMMIT frame a batch ends with (0 before the format had one): only for sizing batches. */
const BATCH_OVERHEAD_GUESS = 40;

interface Lost {
  /** Sector indexes (relative to the batch's first sector) that did not reach the disk. */
  sectors: number[];
  /** What a lost sector reads back as: its old contents, or (wholly new sectors) garbage. */
  as: 'old' | 'garbage';
}

/** A closed WAL whose last batch is the one under test, and the segment's bytes around it. */
interface Built {
  dir: string;
  file: string;
  before: Buffer;
  after: Buffer;
  /** Where the final batch starts (the log's end before it). */
  start: number;
  /** Where the final write ends (past a direct-mode PAD frame). */
  end: number;
  /** End of its last frame that is not PAD (its COMMIT frame). */
  commitEnd: number;
  entriesBefore: Entry[];
  hardStateBefore: HardState;
  entriesAfter: Entry[];
  hardStateAfter: HardState;
}

function segmentFile(dir: string): string {
  const names = fs.readdirSync(dir).filter((n) => parseSegmentFileName(n) !== null);
  assert.equal(names.length, 1, `one segment in ${dir}: ${names.join(', ')}`);
  return path.join(dir, names[0]!);
}

function copyDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

function randomData(random: () => number, length: number): Uint8Array {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = Math.floor(random() * 256);
  return data;
}

/** Bytes a save of these entries and hard state takes, given the per-batch overhead. */
function batchBytes(entries: readonly Entry[], hardState: HardState, overhead: number): number {
  let total = overhead + frameBytes(hardStateRecord(hardState).payload.length);
  for (const e of entries) total += frameBytes(entryRecord(e).payload.length);
  return total;
}

function sectorsSpanned(start: number, end: number): number {
  return Math.ceil(end / SECTOR) - Math.floor(start / SECTOR);
}

/** All subsets of 0..count-1, or a seeded sample of them (always with none and all lost). */
function subsets(count: number, random: () => number): number[][] {
  const all = (mask: number) => Array.from({ length: count }, (_, i) => i).filter((i) => (mask >> i) & 1);
  if (count <= EXHAUSTIVE_SECTORS) return Array.from({ length: 1 << count }, (_, mask) => all(mask));
  const picked: number[][] = [[], Array.from({ length: count }, (_, i) => i)];
  while (picked.length < SAMPLED_SUBSETS) picked.push(Array.from({ length: count }, (_, i) => i).filter(() => random() < 0.5));
  return picked;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

for (const { name, backend } of backends) {
  const probe = backend.probeDirectIo(os.tmpdir());
  const modes: WalMode[] = ['buffered', 'dsync', ...(probe.usable ? (['direct'] as const) : [])];
  for (const mode of modes) {
    describe(`torn final batch (${name} backend, ${mode}, seed ${SEED})`, function () {
      let root: string;
      let logger: MemoryLogger;
      const options = (): WalOptions => ({ backend, logger, mode, segmentBytes: 64 * 1024, preallocate: 'zero' });

      beforeEach(() => {
        root = tempRoot(`torn-${name}-${mode}`);
        logger = new MemoryLogger();
      });
      afterEach(function () {
        if (this.currentTest?.state === 'failed') console.log(`        seed: RAFTKV_TEST_SEED=${SEED}`);
        fs.rmSync(root, { recursive: true, force: true });
      });

      async function logEnd(file: string): Promise<number> {
        return (await backend.scanSegment(file, { prevCrc: 0 })).validEndOffset;
      }

      /**
       * A WAL with a few synced batches, then (direct mode aside) a filler batch that leaves the
       * log ending at a random offset inside a sector, then the final batch: `entryCount`
       * entries and a hard state spanning `sectors` sectors (direct: about `sectors` / 8 blocks).
       */
      async function build(random: () => number, sectors: number, entryCount: number, dirName: string): Promise<Built> {
        const dir = path.join(root, dirName);
        const wal = await Wal.create(dir, { ...options(), metadata: METADATA });
        const file = segmentFile(dir);
        const entries: Entry[] = [];
        let hardState: HardState = { term: 0, vote: 0, commit: 0 };
        const entry = (data: Uint8Array): Entry => ({ term: 1, index: entries.length + 1, type: EntryType.Normal, data });
        let overhead = BATCH_OVERHEAD_GUESS;
        for (let i = 0; i < 3; i++) {
          const e = entry(randomData(random, randomInt(random, 0, 60)));
          const hs = { term: 1, vote: 1, commit: entries.length };
          const from = await logEnd(file);
          await wal.save(hs, [e], { sync: true });
          entries.push(e);
          hardState = hs;
          // Learn what a batch adds besides its records (its COMMIT frame; not in direct mode, where
          // the PAD frame makes the size say nothing).
          if (mode !== 'direct') overhead = (await logEnd(file)) - from - batchBytes([e], hs, 0);
        }
        if (mode !== 'direct') {
          // A filler batch sized so the final batch starts at a random 8-aligned offset in its sector.
          // A one-sector final batch must fit in what is left of its sector: leave room for the
          // largest one drawn below (entryCount entries of at most 24 bytes, the last one empty
          // at first), or no length of it can stay within one sector.
          const finalRoom = sectors === 1
            ? batchBytes(
                Array.from({ length: entryCount }, (_, i) => ({ ...entry(new Uint8Array(24)), index: entries.length + 2 + i })),
                { term: 2, vote: 1, commit: entries.length + 1 },
                overhead,
              )
            : 0;
          const slots = Math.min(36, Math.floor((SECTOR - finalRoom) / 8));
          assert.ok(slots >= 1, `a one-sector final batch of ${entryCount} entries fits in a sector (needs ${finalRoom} bytes)`);
          const target = 8 * randomInt(random, 1, slots);
          const from = await logEnd(file);
          const hs = { term: 1, vote: 1, commit: entries.length };
          let filler: Entry | null = null;
          for (let length = 0; filler === null; length++) {
            const candidate = entry(randomData(random, length));
            if ((from + batchBytes([candidate], hs, overhead)) % SECTOR === target) filler = candidate;
            assert.ok(length < 2 * SECTOR, 'a filler size reaches every 8-aligned offset');
          }
          await wal.save(hs, [filler!], { sync: true });
          entries.push(filler!);
          hardState = hs;
        }
        const entriesBefore = [...entries];
        const hardStateBefore = hardState;
        const start = await logEnd(file);
        const before = fs.readFileSync(file);

        const hs = { term: 2, vote: 1, commit: entries.length };
        const small = Array.from({ length: entryCount - 1 }, () => randomData(random, randomInt(random, 0, 24)));
        let finals: Entry[] | null = null;
        const wanted = mode === 'direct' ? sectors * SECTOR - 64 : sectors;
        for (let length = 0; finals === null; length++) {
          const candidate = [...small, randomData(random, length)].map((data, i) => ({ ...entry(data), index: entries.length + 1 + i }));
          const bytes = batchBytes(candidate, hs, overhead);
          if (mode === 'direct' ? bytes >= wanted : sectorsSpanned(start, start + bytes) === wanted) finals = candidate;
          assert.ok(length < (sectors + 2) * SECTOR, `a final batch of ${sectors} sectors from offset ${start}`);
        }
        await wal.save(hs, finals!, { sync: true });
        await wal.close();
        const after = fs.readFileSync(file);
        const scan = await backend.scanSegment(file, { prevCrc: 0 });
        const lastData = scan.records.filter((r) => r.type !== RecordType.Pad).at(-1)!;
        const commitEnd = lastData.offset + frameBytes(lastData.payload.length);
        assert.ok(commitEnd > start && commitEnd <= scan.validEndOffset);
        return {
          dir,
          file,
          before,
          after,
          start,
          end: scan.validEndOffset,
          commitEnd,
          entriesBefore,
          hardStateBefore,
          entriesAfter: [...entries, ...finals!],
          hardStateAfter: hs,
        };
      }

      /** The segment as the crash left it: the final write with `lost` sectors not on disk. */
      function crashImage(built: Built, lost: Lost, random: () => number): Buffer {
        const image = Buffer.from(built.after);
        const first = Math.floor(built.start / SECTOR);
        for (const index of lost.sectors) {
          const from = (first + index) * SECTOR;
          const to = Math.min(from + SECTOR, image.length);
          // A sector holding older bytes (the previous batch's) can only read back old: a torn
          // write never garbles bytes that were synced before it... by this test's fault model.
          if (lost.as === 'garbage' && from >= built.start) image.set(randomData(random, to - from), from);
          else built.before.copy(image, from, from, to);
        }
        return image;
      }

      /** Open the crashed copy and check what the torn-batch rules promise; says what happened. */
      async function openCrashed(built: Built, lost: Lost, random: () => number, context: string, reopen: boolean): Promise<'kept' | 'vanished' | 'dropped'> {
        const work = path.join(root, 'work');
        copyDir(built.dir, work);
        const file = path.join(work, path.basename(built.file));
        const image = crashImage(built, lost, random);
        fs.writeFileSync(file, image);
        const whole = image.subarray(built.start, built.commitEnd).equals(built.after.subarray(built.start, built.commitEnd));
        const vanished = image.subarray(built.start, built.end).every((b) => b === 0);
        const warningsBefore = logger.warnings.length;
        const outcome = whole ? 'kept' : vanished ? 'vanished' : 'dropped';

        let opened;
        try {
          opened = await Wal.open(work, options());
        } catch (err) {
          assert.fail(`${context}: open failed: ${(err as Error).message}`);
        }
        const { wal, repair } = opened;
        const expectEntries = whole ? built.entriesAfter : built.entriesBefore;
        const expectHardState = whole ? built.hardStateAfter : built.hardStateBefore;
        try {
          assert.deepEqual(opened.entries, expectEntries, `${context}: entries (final batch ${whole ? 'kept' : 'dropped'})`);
          assert.ok(sameHardState(opened.hardState, expectHardState), `${context}: hard state`);
          if (whole) {
            // Intact: nothing to repair, or (garbage over a direct-mode PAD) only what follows it.
            if (repair !== null) assert.equal(repair.offset, built.commitEnd, `${context}: a repair keeps the intact batch`);
          } else if (vanished) {
            assert.equal(repair, null, `${context}: a batch that left no trace needs no repair`);
          } else {
            assert.ok(repair !== null, `${context}: the torn batch is repaired`);
            assert.equal(repair.offset, built.start, `${context}: the torn batch is dropped whole`);
            assert.ok(repair.brokenFile !== null && fs.existsSync(repair.brokenFile), `${context}: .broken copy kept`);
            assert.deepEqual(fs.readFileSync(repair.brokenFile), image.subarray(built.start, built.start + repair.droppedBytes), `${context}: .broken holds the dropped bytes`);
            assert.ok(logger.warnings.slice(warningsBefore).some((w) => w.includes('repaired torn tail') && w.includes(file)), `${context}: logged`);
            if (mode !== 'direct') {
              // (direct mode pads the log to the next block right after the repair)
              assert.ok(fs.readFileSync(file).subarray(built.start).every((b) => b === 0), `${context}: dropped bytes zeroed`);
            }
          }
          if (!reopen) return outcome;
          const next: Entry = { term: 3, index: expectEntries.length + 1, type: EntryType.Normal, data: randomData(random, 30) };
          await wal.save({ term: 3, vote: 1, commit: 1 }, [next], { sync: true });
        } finally {
          await wal.close();
        }
        const again = await Wal.open(work, options());
        try {
          assert.equal(again.repair, null, `${context}: the second open finds nothing to repair`);
          assert.equal(again.entries.length, expectEntries.length + 1, `${context}: appended after the repair`);
        } finally {
          await again.wal.close();
        }
        return outcome;
      }

      const sizes = mode === 'direct' ? [8, 16, 24] : [1, 2, 3, 4, 5, 6, 7, 8, 13, 29];
      for (const sectors of sizes) {
        it(`a final batch of ${sectors} sectors: every subset of lost sectors${sectors > EXHAUSTIVE_SECTORS ? ` (${SAMPLED_SUBSETS} sampled)` : ''} reads back old`, async function () {
          this.timeout(120_000);
          const random = makeRandom(SEED + sectors);
          const built = await build(random, sectors, randomInt(random, 1, 4), 'pristine');
          const count = sectorsSpanned(built.start, built.end);
          if (mode !== 'direct') assert.equal(count, sectors, `batch from ${built.start} to ${built.end}`);
          let n = 0;
          const outcomes = { kept: 0, vanished: 0, dropped: 0 };
          for (const lost of subsets(count, random)) {
            const context = `batch ${built.start}-${built.commitEnd} (write to ${built.end}), lost sectors [${lost.join(',')}], seed ${SEED}`;
            outcomes[await openCrashed(built, { sectors: lost, as: 'old' }, random, context, n++ % 5 === 0)]++;
          }
          assert.ok(outcomes.kept > 0 && (outcomes.dropped > 0 || count === 1), `both outcomes exercised: ${JSON.stringify(outcomes)}`);
        });
      }

      it(`lost sectors that read back garbage (${SAMPLED_SUBSETS} random subsets per size)`, async function () {
        this.timeout(120_000);
        const random = makeRandom(SEED + 1000);
        for (const sectors of mode === 'direct' ? [8, 16] : [3, 11]) {
          const built = await build(random, sectors, 2, `pristine-${sectors}`);
          const count = sectorsSpanned(built.start, built.end);
          for (let round = 0; round < SAMPLED_SUBSETS; round++) {
            const lost = Array.from({ length: count }, (_, i) => i).filter(() => random() < 0.4);
            const context = `garbage: batch ${built.start}-${built.commitEnd}, lost sectors [${lost.join(',')}], seed ${SEED}`;
            await openCrashed(built, { sectors: lost, as: 'garbage' }, random, context, round % 8 === 0);
          }
        }
      });

      it('one zeroed sector in the middle of the last batch: the batch is dropped, the node starts', async function () {
        // The reported case: frames after the hole validate against each other.
        const random = makeRandom(SEED + 2000);
        const built = await build(random, mode === 'direct' ? 24 : 6, 4, 'pristine');
        const count = sectorsSpanned(built.start, built.end);
        await openCrashed(built, { sectors: [Math.floor(count / 2) - 1], as: 'old' }, random, `middle sector of ${count}, seed ${SEED}`, true);
      });

      it('a sync=false batch and the batch written after it, before any sync covered them, are one torn write', async function () {
        const random = makeRandom(SEED + 3000);
        const dir = path.join(root, 'nosync');
        const wal = await Wal.create(dir, { ...options(), metadata: METADATA });
        const file = segmentFile(dir);
        const e1: Entry = { term: 1, index: 1, type: EntryType.Normal, data: randomData(random, 20) };
        await wal.save({ term: 1, vote: 1, commit: 0 }, [e1], { sync: true });
        const start = await logEnd(file);
        const before = fs.readFileSync(file);
        // A commit-only hard state (Ready.mustSync false), then entries that are synced.
        await wal.save({ term: 1, vote: 1, commit: 1 }, [], { sync: false });
        // Several records after the lost sector, so the frames past the hole validate against each other.
        const later = [2 * SECTOR, 10, 20].map((length, i): Entry => ({ term: 1, index: 2 + i, type: EntryType.Normal, data: randomData(random, length) }));
        await wal.save({ term: 1, vote: 1, commit: 1 }, later, { sync: true });
        await wal.close();
        const after = fs.readFileSync(file);
        const end = await logEnd(file);
        // The crash lost the sector holding the sync=false batch and kept the later one.
        const image = Buffer.from(after);
        const sector = Math.floor(start / SECTOR) * SECTOR;
        before.copy(image, sector, sector, sector + SECTOR);
        assert.ok(end - start > 2 * SECTOR, 'the later batch reaches past the lost sector');
        fs.writeFileSync(file, image);
        if (mode === 'dsync') {
          // With O_DSYNC the sync=false write was durable when it returned, and the later batch's
          // COMMIT frame says so: losing it is damage, not a torn write.
          await assert.rejects(Wal.open(dir, options()), (err: unknown) => err instanceof WalCorruptionError && err.offset === start);
          return;
        }
        const opened = await Wal.open(dir, options());
        try {
          assert.deepEqual(opened.entries, [e1]);
          assert.ok(sameHardState(opened.hardState, { term: 1, vote: 1, commit: 0 }));
          assert.equal(opened.repair?.offset, start, 'both unsynced batches dropped');
        } finally {
          await opened.wal.close();
        }
      });

      it('concurrent saves merged into one torn write are dropped together', async function () {
        const random = makeRandom(SEED + 4000);
        const dir = path.join(root, 'merged');
        const wal = await Wal.create(dir, { ...options(), metadata: METADATA });
        const file = segmentFile(dir);
        const e1: Entry = { term: 1, index: 1, type: EntryType.Normal, data: randomData(random, 20) };
        await wal.save({ term: 1, vote: 1, commit: 0 }, [e1], { sync: true });
        const start = await logEnd(file);
        const before = fs.readFileSync(file);
        const e2: Entry = { term: 1, index: 2, type: EntryType.Normal, data: randomData(random, 3 * SECTOR) };
        const e3: Entry = { term: 1, index: 3, type: EntryType.Normal, data: randomData(random, 30) };
        await Promise.all([wal.save(null, [e2], { sync: true }), wal.save({ term: 1, vote: 1, commit: 2 }, [e3], { sync: true })]);
        await wal.close();
        const image = fs.readFileSync(file);
        const lostSector = Math.floor(start / SECTOR) * SECTOR + SECTOR; // inside e2's payload
        before.copy(image, lostSector, lostSector, lostSector + SECTOR);
        fs.writeFileSync(file, image);
        const opened = await Wal.open(dir, options());
        try {
          assert.deepEqual(opened.entries, [e1]);
          assert.equal(opened.repair?.offset, start);
        } finally {
          await opened.wal.close();
        }
      });

      it('damage to a batch that a later batch proves synced refuses to open, naming file and offset', async function () {
        const random = makeRandom(SEED + 5000);
        const dir = path.join(root, 'synced');
        const wal = await Wal.create(dir, { ...options(), metadata: METADATA });
        const file = segmentFile(dir);
        const e1: Entry = { term: 1, index: 1, type: EntryType.Normal, data: randomData(random, 3 * SECTOR) };
        const start = await logEnd(file);
        await wal.save({ term: 1, vote: 1, commit: 0 }, [e1], { sync: true });
        const e2: Entry = { term: 1, index: 2, type: EntryType.Normal, data: randomData(random, 10) };
        await wal.save({ term: 1, vote: 1, commit: 1 }, [e2], { sync: true });
        await wal.close();
        const original = fs.readFileSync(file);
        for (const damage of ['zeroed sector', 'flipped bit'] as const) {
          const image = Buffer.from(original);
          const at = Math.floor(start / SECTOR) * SECTOR + SECTOR; // inside e1's batch, not shared
          if (damage === 'zeroed sector') image.fill(0, at, at + SECTOR);
          else image[at + 100] = image[at + 100]! ^ 0x10;
          fs.writeFileSync(file, image);
          await assert.rejects(Wal.open(dir, options()), (err: unknown) => {
            assert.ok(err instanceof WalCorruptionError, `${damage}: ${String(err)}`);
            assert.equal(err.file, file);
            assert.equal(err.offset, start, `${damage}: the damaged frame (e1's) starts the batch`);
            return true;
          });
          assert.deepEqual(fs.readFileSync(file), image, `${damage}: a refused open changes nothing`);
        }
      });
    });
  }
}
