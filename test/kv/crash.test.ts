/**
 * Crashes under load, with real processes and disks: no acknowledged write (a 204) is ever lost.
 *
 * - all three processes SIGKILLed at once while clients write, then restarted;
 * - the leader SIGKILLed while clients write: the survivors elect a new leader and serve;
 * - a follower SIGKILLed between linearizable reads: a ReadIndex round asks only one follower
 *   of three (readIndexFanout 'quorum'); when that one is dead the next heartbeat asks
 *   everyone, and reads go on through the other, each seeing the write acknowledged before it.
 */

import assert from 'node:assert/strict';

import { KvCluster, sleep, waitFor } from './fixtures/cluster.js';

/** Writers that PUT unique keys round-robin over the running nodes, recording every 204. */
class Load {
  readonly acked = new Map<string, string>();
  attempts = 0;
  failures = 0;
  private running = true;
  private readonly done: Promise<void>[];

  constructor(
    private readonly cluster: KvCluster,
    writers: number,
    private readonly prefix: string,
  ) {
    this.done = Array.from({ length: writers }, (_, w) => this.writer(w));
  }

  private async writer(w: number): Promise<void> {
    for (let i = 0; this.running; i++) {
      const targets = this.cluster.running;
      if (targets.length === 0) {
        await sleep(20);
        continue;
      }
      const node = targets[(w + i) % targets.length]!;
      const key = `${this.prefix}-${w}-${i}`;
      const value = `${key}@node${node.id}`;
      this.attempts++;
      try {
        const r = await node.put(key, value);
        if (r.status === 204) this.acked.set(key, value);
        else {
          this.failures++;
          await sleep(20);
        }
      } catch {
        // Connection refused/reset: the node is down. The outcome of this write is unknown.
        this.failures++;
        await sleep(20);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.done);
  }
}

describe('kv: crashes under load (processes, real disks)', function () {
  let cluster: KvCluster | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster !== null) console.error(cluster.dumpLogs());
    await cluster?.stop();
    cluster = null;
  });

  it('all three processes SIGKILLed during writes and restarted: every acknowledged write is readable', async function () {
    const c = (cluster = await KvCluster.start({ size: 3 }));
    const load = new Load(c, 12, 'crash-all');
    await waitFor('100 acknowledged writes', 60_000, () => (load.acked.size >= 100 ? true : undefined), 20);
    // Kill all three at the same instant, writes in flight.
    await Promise.all(c.nodes.map((n) => n.kill('SIGKILL')));
    await load.stop();
    const acked = new Map(load.acked);
    console.log(`      ${acked.size} writes acknowledged of ${load.attempts} attempted before the kill`);
    for (const n of c.nodes) n.start();
    await c.waitForLeader();
    for (const [key, value] of acked) {
      const reader = 1 + (key.length % 3);
      const r = await c.getOk(reader, key);
      assert.equal(r.status, 200, `acknowledged write ${key} is gone (node ${reader}: ${r.body})`);
      assert.equal(r.body, value);
    }
    for (const n of c.nodes) {
      assert.ok(!n.hasLog((l) => l.level === 'error'), `node ${n.id} logged an error`);
    }
  });

  it('the leader SIGKILLed under load: a new leader serves within a few election timeouts and no acknowledged write is lost', async function () {
    const c = (cluster = await KvCluster.start({ size: 3 }));
    const oldLeader = await c.waitForLeader();
    const load = new Load(c, 12, 'kill-leader');
    await waitFor('80 acknowledged writes', 60_000, () => (load.acked.size >= 80 ? true : undefined), 20);
    const ackedBeforeKill = load.acked.size;
    const killedAt = Date.now();
    await c.node(oldLeader).kill('SIGKILL');
    // Election timeout is 10 ticks × 100 ms, randomised in [1 s, 2 s): allow six of the longest
    // (the machine is shared and busy). A deadline for the condition, not a measurement.
    const newLeader = await c.waitForLeader(12_000, [oldLeader]);
    await waitFor('a write acknowledged by the new cluster', 20_000, () => (load.acked.size > ackedBeforeKill + 20 ? true : undefined), 20);
    console.log(`      node ${newLeader} took over from node ${oldLeader}; writes flowed again ${Date.now() - killedAt} ms after the kill`);
    await load.stop();
    const acked = new Map(load.acked);

    c.node(oldLeader).start();
    for (const id of [1, 2, 3]) {
      for (const [key, value] of acked) {
        const r = await c.getOk(id, key);
        assert.equal(r.status, 200, `acknowledged write ${key} missing on node ${id}: ${r.body}`);
        assert.equal(r.body, value);
      }
    }
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
