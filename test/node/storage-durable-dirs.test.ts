/**
 * The data directory and its snap/ directory are created durably: a power loss that keeps
 * every synced write but loses every directory entry not covered by a directory fsync must
 * not lose the WAL (found by the whole-node simulator, test/simnode, seed 3).
 */
import assert from 'node:assert/strict';

import { NodeStorage } from '../../src/node/storage.js';
import { SILENT_LOGGER } from '../../src/node/options.js';
import { EntryType } from '../../src/raft/types.js';
import { SimDisk } from '../sim/disk.js';
import { SimRandom } from '../sim/prng.js';

describe('NodeStorage: durable creation of the data directory', function () {
  for (const seed of [1, 2, 3]) {
    it(`keeps synced entries across a power loss that loses unsynced directory entries (seed ${seed})`, async function () {
      const disk = new SimDisk({ random: new SimRandom(seed) });
      const open = (mount: ReturnType<SimDisk['mount']>) =>
        NodeStorage.open({
          dir: '/var/lib/raftkv/node1',
          nodeId: 1,
          clusterId: 'dirs',
          walMode: 'buffered',
          dirSync: 'auto',
          logger: SILENT_LOGGER,
          walBackend: null,
          fileSystem: mount,
          walSegmentBytes: 4096,
        });
      const { storage } = await open(disk.mount());
      const entries = [1, 2, 3].map((index) => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array([index]) }));
      await storage.save({ term: 1, vote: 1, commit: 3 }, entries, true);
      // Power loss: synced data stays, every namespace operation without a directory fsync is lost.
      disk.crash({ data: 'lose', namespace: 'lose' });
      const reopened = await open(disk.mount());
      assert.deepEqual(reopened.replay.entries.map((e) => e.index), [1, 2, 3], `seed ${seed}: acknowledged entries lost`);
      assert.equal(reopened.replay.hardState.commit, 3);
      await reopened.storage.close();
    });
  }
});
