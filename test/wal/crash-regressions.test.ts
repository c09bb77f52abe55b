/**
 * Direct regressions for the WAL bugs the crash harness (test/sim/wal-crash.ts) found; each
 * test fails with its fix reverted:
 *  - replay from a snapshot truncates at a rewrite at or below it (staleTailAfterSnapshot);
 *  - a cut's new segment is named only once the batch that names it is durable
 *    (segmentNamedForLostBatch): a kill or power loss at any I/O step of a rewrite that cuts,
 *    then a snapshot and release, still reopens with every entry;
 *  - releaseTo leaves no sequence gap on a filesystem that persists unsynced unlinks out of
 *    order (releaseGap);
 *  - Wal.open makes the WAL directory's own entry durable (walDirEntryNotDurable), and
 *    Wal.create the directories it creates above it (mkdirDurable);
 *  - a js-backend writev/fdatasync that throws instead of calling back fails the segment and
 *    close() still resolves.
 * The first runs on real files with every backend; the crash tests on a SimDisk (the same js
 * backend code over a FileSystem that can lose power at a chosen I/O step).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EntryType, type Entry } from '../../src/raft/types.js';
import { RecordType, SegmentFailedError } from '../../src/wal/backend.js';
import { createJsBackend } from '../../src/wal/js-backend.js';
import { Wal, type OpenedWal } from '../../src/wal/wal.js';
import { SimDisk, type SimOp } from '../sim/disk.js';
import { SimRandom } from '../sim/prng.js';
import { backends, MemoryLogger, tempRoot } from './fixtures/backends.js';

const METADATA = { nodeId: 1, clusterId: 5 };

function entry(index: number, term: number, size = 16): Entry {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (index * 7 + term * 13 + i) & 0xff;
  return { index, term, type: EntryType.Normal, data };
}

function range(from: number, to: number, term: number, size?: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term, size));
  return out;
}

const indexTerms = (entries: readonly Entry[]): string => entries.map((e) => `${e.index}/${e.term}`).join(' ');

for (const { name, backend } of backends) {
  describe(`WAL replay from a snapshot after a rewrite below it (${name} backend)`, function () {
    it('a rewrite at or below the snapshot index truncates the older entries above it', async () => {
      const root = tempRoot(`stale-tail-${name}`);
      const dir = path.join(root, 'wal');
      const logger = new MemoryLogger();
      try {
        const wal = await Wal.create(dir, { backend, logger, metadata: METADATA, mode: 'buffered', segmentBytes: 1 << 20, preallocate: 'none' });
        await wal.save({ term: 3, vote: 1, commit: 89 }, range(1, 100, 3));
        // A new leader (term 4) overwrites from 90: 93..100 of term 3 are gone from the log.
        await wal.save({ term: 4, vote: 2, commit: 92 }, range(90, 92, 4));
        await wal.saveSnapshot({ index: 92, term: 4 });
        await wal.close();

        const opened = await Wal.open(dir, { backend, logger, mode: 'buffered', snapshot: { index: 92, term: 4 } });
        assert.equal(indexTerms(opened.entries), '', 'entries after snapshot 92/4: 93..100 of term 3 were superseded by the rewrite from 90');
        assert.deepEqual(opened.hardState, { term: 4, vote: 2, commit: 92 });
        await opened.wal.save(null, range(93, 94, 4));
        await opened.wal.close();
        const again = await Wal.open(dir, { backend, logger, mode: 'buffered', snapshot: { index: 92, term: 4 } });
        assert.equal(indexTerms(again.entries), '93/4 94/4');
        await again.wal.close();
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  });
}

const WAL_DIR = '/data/wal';
const SEGMENT_BYTES = 4096;
const small = { segmentBytes: SEGMENT_BYTES, preallocate: 'none' as const };

/** A disk whose /data exists durably; `crashAt` (settable) picks the I/O step that dies. */
class CrashingDisk {
  readonly disk: SimDisk;
  crashAt = Number.POSITIVE_INFINITY;
  how: 'kill' | 'power-loss' = 'kill';
  private died: () => void = () => undefined;
  dead = false;
  readonly death: Promise<'dead'>;

  constructor(seed: number, namespaceCrash: 'independent' | 'prefix' = 'independent') {
    this.death = new Promise((resolve) => (this.died = () => resolve('dead')));
    this.disk = new SimDisk({
      random: new SimRandom(seed),
      namespaceCrash,
      onOp: (op: SimOp) => {
        if (op.step !== this.crashAt) return;
        if (this.how === 'kill') this.disk.killProcesses();
        else this.disk.crash();
        this.dead = true;
        this.died();
      },
    });
    const setup = this.disk.mount('setup');
    setup.mkdirSync('/data', { recursive: true });
    this.disk.flushAll();
    this.disk.killProcesses();
  }

  /** `work`'s result, or 'dead' when the process died at `crashAt` meanwhile (its async calls
   * never complete; a synchronous one throws). */
  async run<T>(work: Promise<T>): Promise<T | 'dead'> {
    try {
      return await Promise.race([work, this.death]);
    } catch (err) {
      if (this.dead) return 'dead';
      throw err;
    }
  }
}

describe('WAL crash regressions on a simulated disk', function () {
  this.timeout(120_000);

  it('a rewrite that cuts a segment: killed or powered off at any step, a later snapshot + release keeps every entry', async () => {
    const logger = new MemoryLogger();
    const options = { logger, segmentBytes: SEGMENT_BYTES, preallocate: 'none' as const };
    // Term 1 fills the first segment (entries 1..N); term 2 rewrites from REWRITE_FROM with a
    // batch that does not fit, so it is the batch that names the new segment.
    const N = 10;
    const REWRITE_FROM = 7;
    const setup = async (c: CrashingDisk): Promise<{ wal: Wal; stepsBefore: number }> => {
      const wal = await Wal.create(WAL_DIR, { ...options, fs: c.disk.mount(), metadata: METADATA });
      for (let i = 1; i <= N; i++) await wal.save({ term: 1, vote: 1, commit: 2 }, [entry(i, 1, 250)]);
      assert.equal(wal.status().segments, 1, 'test premise: entries 1..N fit one segment');
      return { wal, stepsBefore: c.disk.steps };
    };
    const rewrite = range(REWRITE_FROM, REWRITE_FROM + 3, 2, 250);

    // A dry run: how many I/O steps the rewrite takes, and that it cuts.
    const dry = new CrashingDisk(1);
    const { wal: dryWal, stepsBefore } = await setup(dry);
    await dryWal.save({ term: 2, vote: 2, commit: 2 }, rewrite);
    assert.equal(dryWal.status().segments, 2, 'test premise: the rewrite cuts a new segment');
    const rewriteSteps = dry.disk.steps - stepsBefore;
    await dryWal.close();

    let checked = 0;
    for (const how of ['kill', 'power-loss'] as const) {
      for (let step = 1; step <= rewriteSteps; step++) {
        const c = new CrashingDisk(step);
        const { wal, stepsBefore: before } = await setup(c);
        c.how = how;
        c.crashAt = before + step;
        const outcome = await c.run(wal.save({ term: 2, vote: 2, commit: 2 }, rewrite));
        if (outcome !== 'dead') continue; // the save finished before that step
        c.crashAt = Number.POSITIVE_INFINITY;
        checked++;
        const where = `${how} at step ${step} of the rewrite`;

        // Restart: the log is entries 1..N of term 1, or the rewrite landed.
        const restarted = await Wal.open(WAL_DIR, { ...options, fs: c.disk.mount() });
        const log = restarted.entries;
        const rewritten = log.length === REWRITE_FROM + 3 && log[REWRITE_FROM - 1]!.term === 2;
        assert.ok(rewritten || indexTerms(log) === indexTerms(range(1, N, 1)), `${where}: replayed ${indexTerms(log)}`);
        // Go on: more entries, committed; a snapshot above the rewrite's index; release.
        const last = log[log.length - 1]!.index;
        const more = range(last + 1, last + 3, 3);
        await restarted.wal.save({ term: 3, vote: 3, commit: last + 3 }, more);
        const snapIndex = REWRITE_FROM + 1;
        const snapshot = { index: snapIndex, term: log[snapIndex - 1]!.term };
        await restarted.wal.saveSnapshot(snapshot);
        await restarted.wal.releaseTo(snapIndex);
        await restarted.wal.close();

        let reopened: OpenedWal;
        try {
          reopened = await Wal.open(WAL_DIR, { ...options, fs: c.disk.mount(), snapshot });
        } catch (err) {
          assert.fail(`${where}: reopening after the release failed: ${(err as Error).message}`);
        }
        assert.equal(indexTerms(reopened.entries), indexTerms([...log, ...more].filter((e) => e.index > snapIndex)), where);
        await reopened.wal.close();
      }
    }
    assert.ok(checked > 10, `only ${checked} crash points inside the rewrite`);
  });

  it('releaseTo: a power loss at any step leaves no segment sequence gap (unlinks persisting in any order)', async () => {
    const logger = new MemoryLogger();
    const options = { logger, segmentBytes: SEGMENT_BYTES, preallocate: 'none' as const };
    let crashes = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const c = new CrashingDisk(seed, 'independent');
      const wal = await Wal.create(WAL_DIR, { ...options, fs: c.disk.mount(), metadata: METADATA });
      for (let i = 1; i <= 60; i++) await wal.save({ term: 1, vote: 1, commit: i }, [entry(i, 1, 250)]);
      assert.ok(wal.status().segments >= 5, `test premise: several segments (${wal.status().segments})`);
      await wal.saveSnapshot({ index: 55, term: 1 });
      c.how = 'power-loss';
      // Release's own steps: the unlinks and directory fsyncs (a few per segment).
      c.crashAt = c.disk.steps + 1 + (seed % 12);
      const outcome = await c.run(wal.releaseTo(55));
      if (outcome !== 'dead') {
        await wal.close();
        continue;
      }
      crashes++;
      c.crashAt = Number.POSITIVE_INFINITY;
      let reopened: OpenedWal;
      try {
        reopened = await Wal.open(WAL_DIR, { ...options, fs: c.disk.mount(), snapshot: { index: 55, term: 1 } });
      } catch (err) {
        assert.fail(`seed ${seed}: power loss at step ${(seed % 12) + 1} of releaseTo: ${(err as Error).message}`);
      }
      assert.equal(indexTerms(reopened.entries), indexTerms(range(56, 60, 1)), `seed ${seed}`);
      await reopened.wal.close();
    }
    assert.ok(crashes > 20, `only ${crashes} power losses inside releaseTo`);
  });

  it('Wal.open makes the WAL directory durable when the create that made it was killed before its parent fsync', async () => {
    const logger = new MemoryLogger();
    const c = new CrashingDisk(7);
    let renamed = false;
    const disk = c.disk;
    disk.onOp = (op) => {
      if (op.kind === 'rename' && op.target === WAL_DIR) renamed = true;
      else if (renamed && op.kind === 'dirsync' && op.path === '/data') {
        disk.killProcesses(); // the create's fsync of /data never happens
        c.dead = true;
      }
    };
    const created = await c.run(Wal.create(WAL_DIR, { ...small, logger, fs: disk.mount(), metadata: METADATA }));
    assert.equal(created, 'dead', 'test premise: the create dies at its parent fsync');
    disk.onOp = undefined;
    // The next process finds the WAL, adopts it and acknowledges a save...
    const adopted = await Wal.open(WAL_DIR, { ...small, logger, fs: disk.mount() });
    await adopted.wal.save({ term: 1, vote: 1, commit: 3 }, range(1, 3, 1));
    // ...then the power fails, losing every directory entry no directory fsync covered.
    disk.crash({ namespace: 'lose' });
    const reopened = await Wal.open(WAL_DIR, { ...small, logger, fs: disk.mount() });
    assert.equal(indexTerms(reopened.entries), '1/1 2/1 3/1');
    await reopened.wal.close();
  });

  it('Wal.create makes the directories it creates above the WAL durable', async () => {
    const logger = new MemoryLogger();
    const c = new CrashingDisk(8);
    const dir = '/data/cluster/node1/wal';
    const wal = await Wal.create(dir, { ...small, logger, fs: c.disk.mount(), metadata: METADATA });
    await wal.save({ term: 1, vote: 1, commit: 2 }, range(1, 2, 1));
    c.disk.crash({ namespace: 'lose' });
    const reopened = await Wal.open(dir, { ...small, logger, fs: c.disk.mount() });
    assert.equal(indexTerms(reopened.entries), '1/1 2/1');
    await reopened.wal.close();
  });
});

describe('js backend: a writev/fdatasync that throws instead of calling back', function () {
  for (const call of ['writev', 'fdatasync'] as const) {
    it(`${call}: the append rejects with SegmentFailedError, the segment stays failed, close() resolves`, async () => {
      const root = tempRoot(`sync-throw-${call}`);
      const thrown = Object.assign(new Error(`EBADF: bad file descriptor, ${call}`), { code: 'EBADF' });
      let armed = false;
      const backend = createJsBackend('test: synchronous throw', {
        fs: {
          writev: (fd, buffers, position, callback) => {
            if (armed && call === 'writev') throw thrown;
            fs.writev(fd, buffers, position, callback);
          },
          fdatasync: (fd, callback) => {
            if (armed && call === 'fdatasync') throw thrown;
            fs.fdatasync(fd, callback);
          },
        },
      });
      try {
        const file = path.join(root, 'segment');
        await backend.createSegmentFile(file, 8192, 'none');
        const segment = await backend.openSegment(file, { mode: 'buffered', offset: 0, prevCrc: 0, salt: 1 });
        await segment.append([{ type: RecordType.Entry, payload: new Uint8Array(8) }], true);
        armed = true;
        const failed = await segment.append([{ type: RecordType.Entry, payload: new Uint8Array(8) }], true).then(
          () => assert.fail('an append whose I/O call threw must reject'),
          (err: unknown) => err as Error,
        );
        assert.ok(failed instanceof SegmentFailedError, `${failed.name}: ${failed.message}`);
        assert.equal(failed.cause, thrown);
        assert.equal(segment.failure, thrown);
        armed = false;
        // Never retried: the segment refuses everything after.
        await assert.rejects(segment.append([{ type: RecordType.Entry, payload: new Uint8Array(8) }], false), SegmentFailedError);
        await assert.rejects(segment.sync(), SegmentFailedError);
        await segment.close();
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
