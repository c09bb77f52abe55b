/**
 * The only voter restarted with a durable commit index below entries it acknowledged (real
 * WAL files): a read barrier must not resolve before those entries are applied.
 *
 * A commit-index-only hard state is written without fsync, and a write is acknowledged while
 * the WAL write recording its commit is still being issued; a node killed right then restarts
 * with the older commit index (test/kv/single-node-restart.test.ts does that with processes,
 * where it happens in some rounds). Here the WAL is given that state directly: the node runs,
 * stops, and a hard state with a lower commit index is appended to its WAL, as if the last
 * commit records had been lost. Reads are then requested on every event-loop turn from the
 * restart on. The single voter used to answer them at the stale commit index; the runtime
 * resolves such a read when that index is applied, which here (the state machine applies
 * asynchronously) was before the entries above it were: the read saw a, b, c of a..e.
 */

import assert from 'node:assert/strict';
import path from 'node:path';

import { RaftNode, type AppliedEntry } from '../../src/node/index.js';
import { Wal } from '../../src/wal/index.js';
import { LogStateMachine, enc, freePorts, removeDir, tempDir, testLogger, waitFor } from './helpers.js';

describe('single voter: reads after a restart with a lagging commit index', function () {
  this.timeout(30_000);

  it('a read barrier resolves only once every acknowledged entry is applied', async function () {
    const dir = await tempDir('single-voter-read');
    try {
      const [port] = await freePorts(1);
      const options = {
        id: 1,
        peers: [{ id: 1, url: `http://127.0.0.1:${port}` }],
        dataDir: dir,
        tickMs: 10,
        walMode: 'buffered' as const,
        walSegmentBytes: 1 << 20,
        idleSpinUs: 0,
        logger: testLogger('n1'),
      };
      const first = await RaftNode.start({ ...options, stateMachine: new LogStateMachine() });
      await waitFor(() => (first.isLeader ? true : undefined), 10_000, 'leader');
      for (const v of ['a', 'b', 'c', 'd', 'e']) await first.propose(enc(v));
      await first.stop();

      // Lose the last commit records: the durable commit index falls 3 entries short.
      const opened = await Wal.open(path.join(dir, 'wal'));
      const hs = opened.hardState;
      const lastIndex = opened.entries.at(-1)!.index;
      assert.equal(hs.commit, lastIndex);
      await opened.wal.save({ ...hs, commit: hs.commit - 3 }, [], { sync: true });
      await opened.wal.close();

      // A state machine whose apply is asynchronous (the contract allows it): a read answered
      // early can then run between two applies.
      const sm = new LogStateMachine();
      const asyncSm = {
        apply: (e: AppliedEntry) => Promise.resolve(sm.apply(e)),
        snapshot: () => sm.snapshot(),
        restore: (data: Uint8Array) => sm.restore(data),
      };
      const node = await RaftNode.start<number>({ ...options, stateMachine: asyncSm });
      try {
        const seen: string[][] = [];
        let done = false;
        // One read request per event-loop turn, queued before that turn's Ready pass.
        const spin = (): void => {
          if (done) return;
          node.readBarrier().then(
            () => {
              seen.push(sm.applied.slice());
              done = true;
            },
            () => undefined, // no leader yet
          );
          setImmediate(spin);
        };
        spin();
        await waitFor(() => (done ? true : undefined), 10_000, 'a read barrier to resolve');
        assert.ok(seen.length > 0);
        for (const applied of seen) {
          assert.deepEqual(applied.slice(-5), ['a', 'b', 'c', 'd', 'e'], `a read saw ${JSON.stringify(applied)}`);
        }
      } finally {
        await node.stop();
      }
    } finally {
      await removeDir(dir);
    }
  });
});
