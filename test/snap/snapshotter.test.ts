/**
 * Snapshot files on real disk, for every backend's CRC-32C: save/load round trip, newest wins,
 * a corrupt newest file is renamed *.broken, reported, and the next older one is used; purge;
 * the dirSync policy applies (real FIFO EINVAL).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Snapshot } from '../../src/raft/types.js';
import { Snapshotter, snapshotFileName } from '../../src/snap/index.js';
import { DirSyncUnsupportedError } from '../../src/wal/errors.js';
import { backends, makeRandom, MemoryLogger, SEED, tempRoot } from '../wal/fixtures/backends.js';

function snapshot(index: number, term: number, bytes: number, random: () => number): Snapshot {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = Math.floor(random() * 256);
  return { metadata: { index, term, confState: { voters: [1, 2, 3], learners: [4] } }, data };
}

for (const { name, backend } of backends) {
  describe(`Snapshotter (${name} backend crc, seed ${SEED})`, function () {
    let root: string;
    let dir: string;
    let logger: MemoryLogger;
    beforeEach(() => {
      root = tempRoot(`snap-${name}`);
      dir = path.join(root, 'snap');
      logger = new MemoryLogger();
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('saves atomically and loads the newest', async () => {
      const random = makeRandom(SEED);
      const snap = new Snapshotter(dir, { backend, logger });
      assert.deepEqual(await snap.loadNewest(), { snapshot: null, file: null, broken: [] });
      const a = snapshot(10, 1, 1000, random);
      const b = snapshot(250, 3, 70_000, random);
      const c = snapshot(0x1234, 4, 0, random);
      for (const s of [a, c, b]) await snap.save(s);
      assert.deepEqual(
        fs.readdirSync(dir).sort(),
        [snapshotFileName(1, 10), snapshotFileName(3, 250), snapshotFileName(4, 0x1234)].sort(),
        'no temp files left behind',
      );
      const newest = await snap.loadNewest();
      assert.deepEqual(newest.snapshot, c);
      assert.equal(newest.file, path.join(dir, '0000000000000004-0000000000001234.snap'));
      assert.deepEqual(await snap.load(path.join(dir, snapshotFileName(3, 250))), b);
      // accept lets a caller skip snapshots the WAL has no marker for.
      const accepted = await snap.loadNewest({ accept: (m) => m.index <= 250 });
      assert.deepEqual(accepted.snapshot, b);
      assert.deepEqual(logger.warnings, []);
    });

    it('a corrupt newest snapshot is renamed *.broken, reported, and the next older one is used', async () => {
      const random = makeRandom(SEED + 1);
      const snap = new Snapshotter(dir, { backend, logger });
      const older = snapshot(100, 2, 5000, random);
      const newer = snapshot(200, 2, 5000, random);
      const newest = snapshot(300, 3, 5000, random);
      await snap.save(older);
      const newerFile = await snap.save(newer);
      const newestFile = await snap.save(newest);
      // Newest: one flipped bit in the body. Newer: truncated.
      const bytes = fs.readFileSync(newestFile);
      const at = 24 + Math.floor(random() * (bytes.length - 24));
      bytes[at] = bytes[at]! ^ 0x10;
      fs.writeFileSync(newestFile, bytes);
      fs.truncateSync(newerFile, 4000);

      const loaded = await snap.loadNewest();
      assert.deepEqual(loaded.snapshot, older);
      assert.deepEqual(
        loaded.broken.map((b) => [b.file, b.renamedTo]),
        [
          [newestFile, `${newestFile}.broken`],
          [newerFile, `${newerFile}.broken`],
        ],
      );
      assert.match(loaded.broken[0]!.reason, /crc32c mismatch/);
      assert.match(loaded.broken[1]!.reason, /length/);
      assert.ok(fs.existsSync(`${newestFile}.broken`) && !fs.existsSync(newestFile));
      assert.equal(logger.warnings.length, 2);
      assert.ok(logger.warnings[0]!.includes(newestFile), logger.warnings[0]);
      // Next time the broken ones are out of the way.
      const again = await snap.loadNewest();
      assert.deepEqual(again.snapshot, older);
      assert.deepEqual(again.broken, []);
    });

    it('a file whose contents do not match its name is corrupt', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      const file = await snap.save(snapshot(5, 1, 10, makeRandom(SEED + 2)));
      fs.renameSync(file, path.join(dir, snapshotFileName(1, 6)));
      const loaded = await snap.loadNewest();
      assert.equal(loaded.snapshot, null);
      assert.match(loaded.broken[0]!.reason, /named for/);
    });

    it('purge keeps the newest N', async () => {
      const random = makeRandom(SEED + 3);
      const snap = new Snapshotter(dir, { backend, logger });
      for (let i = 1; i <= 5; i++) await snap.save(snapshot(i * 10, 1, 100, random));
      const deleted = await snap.purge(2);
      assert.deepEqual(deleted.map((f) => path.basename(f)), [snapshotFileName(1, 30), snapshotFileName(1, 20), snapshotFileName(1, 10)]);
      assert.deepEqual(snap.list().map((f) => path.basename(f)), [snapshotFileName(1, 50), snapshotFileName(1, 40)]);
      await assert.rejects(snap.purge(0), RangeError);
    });

    it('refuses bad input without writing anything', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      await assert.rejects(snap.save({ metadata: { index: -1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array() }), RangeError);
      await assert.rejects(snap.save({ metadata: { index: 1, term: 1, confState: { voters: [0], learners: [] } }, data: new Uint8Array() }), RangeError);
      assert.equal(fs.existsSync(dir), false);
    });

    it('applies the dirSync policy: strict refuses, auto warns once (real FIFO EINVAL)', async () => {
      const fifo = path.join(root, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const random = makeRandom(SEED + 4);
      const strict = new Snapshotter(dir, { backend, logger, dirSync: 'strict', dirSyncTarget: fifo });
      await assert.rejects(strict.save(snapshot(1, 1, 10, random)), DirSyncUnsupportedError);
      assert.deepEqual(strict.list(), [], 'strict refuses before writing a snapshot');
      const auto = new Snapshotter(dir, { backend, logger, dirSync: 'auto', dirSyncTarget: fifo });
      await auto.save(snapshot(2, 1, 10, random));
      await auto.save(snapshot(3, 1, 10, random));
      assert.equal(logger.warnings.filter((w) => w.includes(`directory ${dir}:`)).length, 1, logger.warnings.join('\n'));
      assert.equal((await auto.loadNewest()).snapshot?.metadata.index, 3);
    });
  });
}
