/**
 * Directory sync fallback with a real kernel EINVAL: fsync of a FIFO returns EINVAL, so the
 * WAL's directory syncs are pointed at a FIFO (the `dirSyncTarget` hook) and the real
 * backend.syncDirectory runs on it — no mocked errno. 'strict' refuses with a message naming the
 * directory, the filesystem type and the risk; 'auto' warns once per directory and carries on.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { EntryType } from '../../src/raft/types.js';
import { DirSyncUnsupportedError } from '../../src/wal/errors.js';
import { Wal } from '../../src/wal/wal.js';
import { backends, MemoryLogger, tempRoot } from './fixtures/backends.js';

for (const { name, backend } of backends) {
  describe(`WAL dirSync policy on a real EINVAL (${name} backend)`, function () {
    let root: string;
    let dir: string;
    let fifo: string;
    beforeEach(() => {
      root = tempRoot(`dirsync-${name}`);
      dir = path.join(root, 'wal');
      fifo = path.join(root, 'fifo');
      execFileSync('mkfifo', [fifo]);
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('the FIFO really makes backend.syncDirectory see EINVAL', () => {
      assert.deepEqual(backend.syncDirectory(fifo), { supported: false, errno: 'EINVAL' });
      assert.deepEqual(backend.syncDirectory(root), { supported: true, errno: null });
    });

    it("'strict' refuses to create or open, naming the directory, the filesystem type and the risk", async () => {
      const logger = new MemoryLogger();
      await assert.rejects(
        Wal.create(dir, { backend, logger, metadata: { nodeId: 1, clusterId: 1 }, segmentBytes: 8192, dirSync: 'strict', dirSyncTarget: fifo }),
        (err: unknown) => {
          assert.ok(err instanceof DirSyncUnsupportedError, String(err));
          assert.equal(err.dir, dir);
          assert.equal(err.errno, 'EINVAL');
          assert.ok(err.message.includes(dir), err.message);
          assert.ok(err.message.includes(backend.filesystemType(root)), err.message);
          assert.match(err.message, /EINVAL/);
          assert.match(err.message, /crash or power loss/);
          assert.match(err.message, /strict/);
          return true;
        },
      );
      assert.equal(Wal.exists(dir), false, 'nothing was created');
      // An existing WAL is refused by a strict open as well.
      const wal = await Wal.create(dir, { backend, logger, metadata: { nodeId: 1, clusterId: 1 }, segmentBytes: 8192 });
      await wal.close();
      await assert.rejects(Wal.open(dir, { backend, logger, segmentBytes: 8192, dirSync: 'strict', dirSyncTarget: fifo }), DirSyncUnsupportedError);
      assert.deepEqual(logger.warnings, []);
    });

    it("'auto' warns once per directory, carries on through create, cuts, releases and reopen", async () => {
      const logger = new MemoryLogger();
      const options = { backend, logger, mode: 'buffered' as const, segmentBytes: 4096, dirSync: 'auto' as const, dirSyncTarget: fifo };
      const wal = await Wal.create(dir, { ...options, metadata: { nodeId: 1, clusterId: 1 } });
      for (let i = 1; i <= 120; i++) {
        await wal.save({ term: 1, vote: 1, commit: i }, [{ term: 1, index: i, type: EntryType.Normal, data: new Uint8Array(40).fill(i) }]);
      }
      assert.ok(wal.status().segments > 2, 'segments were cut (each cut syncs the directory)');
      assert.equal(wal.status().dirSyncUsable, false);
      assert.equal(wal.status().dirSyncErrno, 'EINVAL');
      await wal.saveSnapshot({ index: 100, term: 1 });
      await wal.releaseTo(100);
      await wal.close();
      const replay = await Wal.open(dir, { ...options, snapshot: { index: 100, term: 1 } });
      assert.equal(replay.entries.length, 20);
      await replay.wal.close();

      const aboutDir = logger.warnings.filter((w) => w.includes(`directory ${dir}:`));
      assert.equal(aboutDir.length, 1, `exactly one warning for ${dir}:\n${logger.warnings.join('\n')}`);
      assert.ok(aboutDir[0]!.includes(backend.filesystemType(root)), aboutDir[0]);
      assert.match(aboutDir[0]!, /EINVAL/);
      assert.match(aboutDir[0]!, /crash or power loss/);
      assert.match(aboutDir[0]!, /auto/);
      // The parent directory (synced after the create's rename) is another directory: at most one more.
      assert.ok(logger.warnings.length <= 2, logger.warnings.join('\n'));
    });
  });
}
