/**
 * Linearizable reads while a follower is down, with real processes: a ReadIndex round asks
 * only one follower of three (readIndexFanout 'quorum'); when that one is dead the next
 * heartbeat asks everyone, and reads go on through the other. Each read must see the write
 * acknowledged just before it.
 */

import assert from 'node:assert/strict';

import { KvCluster } from './fixtures/cluster.js';

describe('kv: linearizable reads with a follower down (processes, real disks)', function () {
  let cluster: KvCluster | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster !== null) console.error(cluster.dumpLogs());
    await cluster?.stop();
    cluster = null;
  });

  it('either follower SIGKILLed: reads go on through the other and see every acknowledged write', async function () {
    const c = (cluster = await KvCluster.start({ size: 3 }));
    const leader = await c.waitForLeader();
    const followers = [1, 2, 3].filter((id) => id !== leader);
    let version = 0;
    const writeThenRead = async (rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        version++;
        await c.putOk(leader, 'k', `v${version}`);
        // No retries: a read the quorum round never confirms would answer 504 here.
        const r = await c.node(leader).get('k');
        assert.equal(r.status, 200, `read after write v${version}: ${r.status} ${r.body}`);
        assert.equal(r.body, `v${version}`, 'a linearizable read sees the write acknowledged before it');
      }
    };
    // One of the two kills takes down the follower the reads were being confirmed by.
    for (const victim of followers) {
      await writeThenRead(10); // the leader settles on a follower to ask
      await c.node(victim).kill('SIGKILL');
      await writeThenRead(15);
      const survivor = followers.find((id) => id !== victim)!;
      assert.equal((await c.getOk(survivor, 'k')).body, `v${version}`, 'a read forwarded by the surviving follower');
      c.node(victim).start();
      // Back in the cluster: it catches up, and reads through it are current again.
      await c.waitForLeader();
      assert.equal((await c.getOk(victim, 'k')).body, `v${version}`);
    }
  });
});
