/**
 * Snapshots through the KV server: taken every --snapshot-count entries, a crashed node
 * recovers from its snapshot + WAL tail, and a follower that was down while the leader
 * compacted its log catches up by receiving a snapshot.
 */

import assert from 'node:assert/strict';

import { KvCluster, waitFor, type KvProcess } from './fixtures/cluster.js';

async function writeKeys(cluster: KvCluster, via: number[], prefix: string, count: number): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  const lanes = 4;
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let i = lane; i < count; i += lanes) {
        const key = `${prefix}-${i}`;
        const value = `${prefix} value ${i} ${'x'.repeat(i % 50)}`;
        await cluster.putOk(via[i % via.length]!, key, value);
        written.set(key, value);
      }
    }),
  );
  return written;
}

async function assertHasAll(cluster: KvCluster, node: KvProcess, expected: Map<string, string>): Promise<void> {
  for (const [key, value] of expected) {
    const r = await cluster.getOk(node.id, key);
    assert.equal(r.status, 200, `node ${node.id} GET ${key}: ${r.status} ${r.body}`);
    assert.equal(r.body, value, `node ${node.id} GET ${key}`);
  }
}

describe('kv: snapshots and recovery (processes, real disks)', function () {
  let cluster: KvCluster;
  const all = new Map<string, string>();

  before(async function () {
    cluster = await KvCluster.start({ size: 3, extraArgs: ['--snapshot-count', '20', '--snapshot-catchup-entries', '5'] });
  });

  after(async function () {
    await cluster?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(cluster.dumpLogs());
  });

  it('takes snapshots, and a SIGKILLed node recovers from snapshot + WAL', async function () {
    for (const [k, v] of await writeKeys(cluster, [1, 2, 3], 'snap', 60)) all.set(k, v);
    for (const n of cluster.nodes) {
      await waitFor(`a snapshot on node ${n.id}`, 20_000, async () => ((await n.status()).snapshotIndex > 0 ? true : undefined));
      assert.ok(n.hasLog((l) => l.msg === 'snapshot taken'), `node ${n.id} logged no snapshot`);
    }
    const n2 = cluster.node(2);
    // Make sure node 2's WAL holds entries after its last snapshot, so recovery needs both.
    let extra = 0;
    await waitFor('entries after node 2\'s snapshot', 30_000, async () => {
      const s = await n2.status();
      // ≥ 20 means a snapshot is due or being written (status shows the new index only once it
      // is saved): keep writing until the WAL tail is clearly past a finished snapshot.
      const tail = s.applied - s.snapshotIndex;
      if (tail >= 3 && tail < 20) return true;
      const key = `tail-${extra++}`;
      await cluster.putOk(1, key, `tail ${key}`);
      all.set(key, `tail ${key}`);
      return undefined;
    });
    const before = await n2.status();
    const logsBefore = n2.logs.length;
    await n2.kill('SIGKILL');
    n2.start();
    const restarted = await waitFor('node 2 to log its restart', 60_000, () =>
      n2.logs.slice(logsBefore).find((l) => l.msg === 'restarted from storage'),
    );
    assert.ok(Number(restarted.snapshotIndex) > 0, `restart did not load a snapshot: ${JSON.stringify(restarted)}`);
    assert.ok(Number(restarted.entries) > 0, `restart replayed no WAL entries: ${JSON.stringify(restarted)}`);
    // Everything acknowledged before the crash is in its own state (before any catch-up).
    await waitFor('node 2 to serve', 60_000, async () => ((await n2.status()).state === 'running' ? true : undefined), 100);
    const after = await n2.status();
    assert.ok(after.applied >= before.applied, `node 2 applied ${after.applied} after restart, ${before.applied} before`);
    assert.ok(!n2.logs.slice(logsBefore).some((l) => l.msg === 'installed snapshot from the leader'),
      'node 2 needed a snapshot from the leader: it did not recover from its own');
    for (const [key, value] of all) {
      const r = await n2.get(key, 'serializable');
      assert.equal(r.body, value, `node 2 lost ${key} across the crash`);
    }
    await assertHasAll(cluster, n2, all);
  });

  it('a follower down across log compaction catches up by snapshot', async function () {
    const leader = await cluster.waitForLeader();
    const followerId = [1, 2, 3].find((id) => id !== leader)!;
    const follower = cluster.node(followerId);
    const downAt = (await follower.status()).applied;
    await follower.kill('SIGKILL');
    const alive = [1, 2, 3].filter((id) => id !== followerId);
    for (const [k, v] of await writeKeys(cluster, alive, 'while-down', 60)) all.set(k, v);
    // The leader's log no longer holds what the follower needs next.
    const leaderStatus = await cluster.node(leader).status();
    assert.ok(leaderStatus.snapshotIndex - 5 > downAt + 1,
      `leader compacted only to ${leaderStatus.snapshotIndex - 5}; follower stopped at ${downAt}`);
    const logsBefore = follower.logs.length;
    follower.start();
    await waitFor(`node ${followerId} to install a snapshot from the leader`, 60_000, () =>
      follower.logs.slice(logsBefore).find((l) => l.msg === 'installed snapshot from the leader'),
    );
    await assertHasAll(cluster, follower, all);
    const s = await follower.status();
    assert.ok(s.snapshotIndex > downAt);
    // And it keeps following afterwards.
    await cluster.putOk(followerId, 'after-catch-up', 'yes');
    assert.equal((await cluster.node(leader).get('after-catch-up')).body, 'yes');
  });
});
