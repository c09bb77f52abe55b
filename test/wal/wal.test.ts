/**
 * The WAL (src/wal/wal.ts) on real files, against every backend that loads: round trips,
 * restart and replay, rewrites, segment cut and release, snapshot markers, group commit, the
 * failed state, status.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { createJsBackend } from '../../src/wal/js-backend.js';
import { WalClosedError, WalExistsError, WalLockedError, WalSnapshotNotFoundError } from '../../src/wal/errors.js';
import { parseSegmentFileName } from '../../src/wal/segment-name.js';
import { Wal, type WalOptions } from '../../src/wal/wal.js';
import { backends, MemoryLogger, payloadFor, tempRoot } from './fixtures/backends.js';

const METADATA = { nodeId: 3, clusterId: 0x1234abcd };

function entry(index: number, term = 1, type = EntryType.Normal): Entry {
  return { term, index, type, data: payloadFor(index) };
}

function range(from: number, to: number, term = 1): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(entry(i, term));
  return out;
}

function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => parseSegmentFileName(n) !== null)
    .sort();
}

for (const { name, backend } of backends) {
  describe(`WAL (${name} backend)`, function () {
    let root: string;
    let dir: string;
    let logger: MemoryLogger;
    const opened: Wal[] = [];
    const options = (extra: Partial<WalOptions> = {}): WalOptions => ({
      backend,
      logger,
      segmentBytes: 64 * 1024,
      ...extra,
    });
    const track = <T extends { wal: Wal } | Wal>(x: T): T => {
      opened.push(x instanceof Wal ? x : x.wal);
      return x;
    };

    beforeEach(() => {
      root = tempRoot(`wal-${name}`);
      dir = path.join(root, 'wal');
      logger = new MemoryLogger();
    });
    afterEach(async () => {
      for (const w of opened.splice(0)) await w.close();
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('round-trips entries, hard state and metadata across a restart', async () => {
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      const hs: HardState = { term: 5, vote: 2, commit: 7 };
      await wal.save(hs, range(1, 10, 5), { sync: true });
      await wal.save({ term: 5, vote: 2, commit: 10 }, [], { sync: false });
      await wal.close();

      const replay = track(await Wal.open(dir, options()));
      assert.deepEqual(replay.metadata, METADATA);
      assert.deepEqual(replay.hardState, { term: 5, vote: 2, commit: 10 });
      assert.deepEqual(replay.entries, range(1, 10, 5));
      assert.deepEqual(replay.snapshots, [{ index: 0, term: 0 }]);
      assert.equal(replay.repair, null);
      // The chain continues: append after reopen and read everything back once more.
      await replay.wal.save(null, [entry(11, 5, EntryType.ConfChange)], { sync: true });
      await replay.wal.close();
      const again = track(await Wal.open(dir, options()));
      assert.deepEqual(again.entries, [...range(1, 10, 5), entry(11, 5, EntryType.ConfChange)]);
    });

    it('creates atomically: no temp dir left, refuses an existing WAL, accepts an empty directory', async () => {
      fs.mkdirSync(dir);
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      assert.equal(fs.existsSync(`${dir}.tmp`), false);
      assert.deepEqual(segmentFiles(dir), ['0000000000000000-0000000000000000.wal']);
      await wal.close();
      assert.ok(Wal.exists(dir));
      assert.equal(Wal.exists(path.join(root, 'nope')), false);
      await assert.rejects(Wal.create(dir, { ...options(), metadata: METADATA }), WalExistsError);
      await assert.rejects(Wal.open(path.join(root, 'nope'), options()), /does not exist/);
    });

    it('a later rewrite of an index wins on replay (etcd semantics), gaps are refused at save', async () => {
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      await wal.save({ term: 1, vote: 1, commit: 3 }, range(1, 10, 1));
      await wal.save({ term: 2, vote: 0, commit: 3 }, range(6, 8, 2)); // new leader overwrites 6..
      await assert.rejects(wal.save(null, [entry(10, 2)]), /gap/);
      await assert.rejects(wal.save(null, [entry(9, 2), entry(11, 2)]), /consecutive/);
      await wal.save(null, [entry(9, 2)]);
      await wal.close();
      const replay = track(await Wal.open(dir, options()));
      assert.deepEqual(replay.entries, [...range(1, 5, 1), ...range(6, 9, 2)]);
      assert.deepEqual(replay.hardState, { term: 2, vote: 0, commit: 3 });
    });

    it('cuts segments when they fill, names them by first index, and replays across them', async () => {
      const wal = track(await Wal.create(dir, { ...options({ segmentBytes: 4096 }), metadata: METADATA }));
      await wal.save({ term: 1, vote: 1, commit: 0 }, []);
      for (let i = 1; i <= 300; i += 3) await wal.save(null, range(i, i + 2), { sync: i % 2 === 0 });
      const files = segmentFiles(dir);
      assert.ok(files.length >= 5, `expected several segments, got ${files.length}`);
      assert.equal(wal.status().segments, files.length);
      const direct = wal.status().mode === 'direct';
      await wal.close();
      // Each segment's name carries its sequence and the first index that went into it.
      files.forEach((file, i) => {
        const parsed = parseSegmentFileName(file)!;
        assert.equal(parsed.seq, i);
        if (i > 0) assert.equal((parsed.firstIndex - 1) % 3, 0, `${file} should start at a batch boundary`);
        // A batch goes to a new segment when it would not fit (direct mode pads every batch to a
        // block, so there a 4 KiB segment holds its first block plus one batch).
        if (!direct) assert.ok(fs.statSync(path.join(dir, file)).size <= 4096, `${file} overflows`);
      });
      assert.equal(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')).length, 0, 'close removes the prepared segment');
      const replay = track(await Wal.open(dir, options({ segmentBytes: 4096 })));
      assert.deepEqual(replay.entries, range(1, 300));
      assert.deepEqual(replay.hardState, { term: 1, vote: 1, commit: 0 });
    });

    it('releases segments wholly before a snapshot and replays from its marker', async () => {
      const opts = options({ segmentBytes: 4096 });
      const wal = track(await Wal.create(dir, { ...opts, metadata: METADATA }));
      await wal.save({ term: 3, vote: 1, commit: 0 }, []);
      for (let i = 1; i <= 200; i++) await wal.save(i % 10 === 0 ? { term: 3, vote: 1, commit: i } : null, [entry(i, 3)]);
      const before = segmentFiles(dir);
      // Without a snapshot marker nothing may go: a restart would need every segment.
      await wal.releaseTo(150);
      assert.deepEqual(segmentFiles(dir), before);
      await wal.saveSnapshot({ index: 150, term: 3 });
      await wal.releaseTo(150);
      const after = segmentFiles(dir);
      assert.ok(after.length < before.length, 'some segments were released');
      const firstKept = parseSegmentFileName(after[0]!)!;
      assert.ok(firstKept.firstIndex <= 150, `${after[0]} must still hold index 150`);
      const second = after[1] === undefined ? null : parseSegmentFileName(after[1]);
      if (second !== null) assert.ok(second.firstIndex > 150);
      await wal.save(null, [entry(201, 3)]);
      await wal.close();

      const replay = track(await Wal.open(dir, { ...opts, snapshot: { index: 150, term: 3 } }));
      assert.deepEqual(replay.entries, range(151, 201, 3));
      assert.deepEqual(replay.hardState, { term: 3, vote: 1, commit: 200 });
      assert.deepEqual(replay.snapshots, [{ index: 150, term: 3 }]);
      await replay.wal.close();
      // The beginning is gone, so replaying from the start is refused clearly.
      await assert.rejects(Wal.open(dir, opts), WalSnapshotNotFoundError);
    });

    it('refuses to open from a snapshot the log has no marker for, or with the wrong term', async () => {
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      await wal.save({ term: 2, vote: 1, commit: 20 }, range(1, 20, 2));
      await wal.saveSnapshot({ index: 10, term: 2 });
      await wal.close();
      await assert.rejects(Wal.open(dir, { ...options(), snapshot: { index: 12, term: 2 } }), WalSnapshotNotFoundError);
      await assert.rejects(Wal.open(dir, { ...options(), snapshot: { index: 10, term: 1 } }), /term/);
      const replay = track(await Wal.open(dir, { ...options(), snapshot: { index: 10, term: 2 } }));
      assert.deepEqual(replay.entries, range(11, 20, 2));
      assert.deepEqual(replay.snapshots, [{ index: 0, term: 0 }, { index: 10, term: 2 }]);
    });

    it('after a snapshot install the log continues at the snapshot index + 1', async () => {
      const wal = track(await Wal.create(dir, { ...options({ segmentBytes: 4096 }), metadata: METADATA }));
      await wal.save({ term: 1, vote: 1, commit: 5 }, range(1, 5, 1));
      await wal.saveSnapshot({ index: 500, term: 4 }); // a follower received a snapshot from the leader
      await assert.rejects(wal.save(null, [entry(502, 4)]), /gap/);
      for (let i = 501; i <= 600; i++) await wal.save({ term: 4, vote: 0, commit: i }, [entry(i, 4)]);
      await wal.releaseTo(500);
      await wal.close();
      const replay = track(await Wal.open(dir, { ...options({ segmentBytes: 4096 }), snapshot: { index: 500, term: 4 } }));
      assert.deepEqual(replay.entries, range(501, 600, 4));
      await replay.wal.close();
      // Opening from an older point than the install gives a clear message, not "corruption".
      if (fs.existsSync(path.join(dir, '0000000000000000-0000000000000000.wal'))) {
        await assert.rejects(Wal.open(dir, options({ segmentBytes: 4096 })), /snapshot marker 500\/4/);
      }
    });

    it('concurrent saves are written in call order and all resolve (group commit)', async () => {
      const wal = track(await Wal.create(dir, { ...options({ segmentBytes: 1024 * 1024 }), metadata: METADATA }));
      const pending: Promise<void>[] = [];
      for (let i = 1; i <= 400; i++) pending.push(wal.save({ term: 1, vote: 1, commit: i - 1 }, [entry(i)], { sync: i % 4 === 0 }));
      await Promise.all(pending);
      await wal.close();
      const replay = track(await Wal.open(dir, options({ segmentBytes: 1024 * 1024 })));
      assert.deepEqual(replay.entries, range(1, 400));
      assert.deepEqual(replay.hardState, { term: 1, vote: 1, commit: 399 });
    });

    it('rejects calls after close, and a second open of the same directory in this process', async () => {
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      await assert.rejects(Wal.open(dir, options()), WalLockedError);
      await wal.close();
      await assert.rejects(wal.save(null, [entry(1)]), WalClosedError);
      await wal.close(); // idempotent
      track(await Wal.open(dir, options()));
    });

    it('status exposes the probed capabilities', async () => {
      const wal = track(await Wal.create(dir, { ...options(), metadata: METADATA }));
      const s = wal.status();
      assert.equal(s.backend, name);
      assert.ok(['buffered', 'direct', 'dsync'].includes(s.mode));
      assert.ok(s.modeReason.length > 0);
      assert.equal(typeof s.directIoUsable, 'boolean');
      assert.equal(s.dirSyncUsable, true);
      assert.equal(s.dirSyncPolicy, 'auto');
      assert.ok(s.filesystemType.length > 0);
      assert.ok(['native', 'fs-ext', 'pidfile'].includes(s.lock.kind));
      assert.equal(s.lock.path, path.join(dir, 'LOCK'));
      assert.equal(s.failed, null);
      if (s.mode === 'direct') assert.ok(s.blockSize > 0);
    });

    it('writes in every mode the backend accepts and replays them', async () => {
      for (const mode of ['buffered', 'dsync', 'auto'] as const) {
        const modeDir = path.join(root, `wal-${mode}`);
        const wal = track(await Wal.create(modeDir, { ...options({ mode, segmentBytes: 8192 }), metadata: METADATA }));
        for (let i = 1; i <= 60; i++) await wal.save({ term: 1, vote: 1, commit: i }, [entry(i)]);
        await wal.close();
        const replay = track(await Wal.open(modeDir, options({ mode, segmentBytes: 8192 })));
        assert.deepEqual(replay.entries, range(1, 60), `mode ${mode}`);
        await replay.wal.close();
      }
    });

    it('switching modes between runs (buffered ↔ direct) keeps one readable log', async () => {
      const modes = ['buffered', backend.probeDirectIo(root).usable ? 'direct' : 'dsync', 'buffered', 'auto'] as const;
      let next = 1;
      for (const [round, mode] of modes.entries()) {
        const opts = options({ mode, segmentBytes: 256 * 1024 });
        const wal = round === 0 ? track(await Wal.create(dir, { ...opts, metadata: METADATA })) : track(await Wal.open(dir, opts)).wal;
        for (let i = 0; i < 5; i++, next++) await wal.save({ term: 1, vote: 1, commit: next }, [entry(next)]);
        await wal.close();
      }
      const replay = track(await Wal.open(dir, options({ segmentBytes: 256 * 1024 })));
      assert.deepEqual(replay.entries, range(1, next - 1));
      assert.equal(replay.repair, null);
    });
  });
}

describe('WAL failed state (js backend with an injected fdatasync error)', function () {
  it('a failed sync fails the WAL: that save and every later call reject with the original error', async () => {
    const root = tempRoot('wal-fail');
    const dir = path.join(root, 'wal');
    let failNext = false;
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    const backend = createJsBackend('faulty', {
      fs: {
        fdatasync(fd, callback) {
          if (failNext) {
            failNext = false;
            setImmediate(() => callback(eio));
          } else fs.fdatasync(fd, callback);
        },
      },
    });
    const logger = new MemoryLogger();
    try {
      const wal = await Wal.create(dir, { backend, logger, metadata: METADATA, segmentBytes: 8192 });
      await wal.save({ term: 1, vote: 1, commit: 0 }, range(1, 3));
      failNext = true;
      const failed = await wal.save(null, [entry(4)]).then(
        () => assert.fail('save with a failed fdatasync must reject'),
        (err: unknown) => err as Error,
      );
      assert.ok(failed.message.includes('EIO') || (failed.cause as Error | undefined)?.message.includes('EIO'), failed.message);
      // Not retried, not ignored: every later call rejects with that same error.
      for (const later of [wal.save(null, [entry(5)]), wal.saveSnapshot({ index: 3, term: 1 }), wal.releaseTo(3)]) {
        await assert.rejects(later, (err: unknown) => err === failed);
      }
      assert.equal(wal.failed, failed);
      assert.ok(wal.status().failed !== null);
      assert.ok(logger.warnings.some((w) => w.includes('has failed')));
      await wal.close();
      // A restart replays what is durable: entries 1..3 certainly, 4 maybe (written, sync failed).
      const replay = await Wal.open(dir, { backend, logger, segmentBytes: 8192 });
      assert.deepEqual(replay.entries.slice(0, 3), range(1, 3));
      await replay.wal.close();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
