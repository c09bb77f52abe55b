/**
 * Membership over the KV API, with real processes and disks:
 *
 * - remove node 3 (DELETE /3), add it back (POST /3) and start it with its old data directory:
 *   it replays its old RemoveNode(3) while catching up, and must neither stop nor stop on a
 *   later restart; it counts in the quorum (with another node down, writes still commit);
 * - unsafe changes are refused with 409 {error: "membership", reason}, and `?force=true`
 *   overrides the check.
 */

import assert from 'node:assert/strict';

import { KvCluster, waitFor, type KvProcess } from './fixtures/cluster.js';

interface StatusWithProgress {
  state: string;
  leader: number;
  progress: { id: number; active: boolean }[] | null;
  transport: { server: { receivedMessages: number }; peers: { receivedReplyMessages: number }[] };
  members: { voters: { id: number }[] };
}

async function statusOf(n: KvProcess): Promise<StatusWithProgress> {
  return (await n.status()) as unknown as StatusWithProgress;
}

async function received(n: KvProcess): Promise<number> {
  const t = (await statusOf(n)).transport;
  return t.server.receivedMessages + t.peers.reduce((sum, p) => sum + p.receivedReplyMessages, 0);
}

/** `n` keeps running while it receives 60 more peer messages (heartbeats: several times the
 * removal grace period of two election timeouts); a stopped process receives nothing. */
async function assertStaysUp(n: KvProcess): Promise<void> {
  const from = await waitFor(`node ${n.id} to serve its status`, 30_000, () => received(n), 100);
  await waitFor(`node ${n.id} to receive 60 peer messages`, 60_000, async () => {
    if (!n.running) return true;
    return (await received(n)) >= from + 60 ? true : undefined;
  }, 100);
  assert.ok(n.running, `node ${n.id} exited: ${JSON.stringify(n.exits)}`);
  assert.equal((await statusOf(n)).state, 'running');
}

describe('kv: membership changes (processes)', function () {
  let cluster: KvCluster | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster !== null) console.error(cluster.dumpLogs());
    await cluster?.stop();
    cluster = null;
  });

  it('node 3 removed, added back and restarted with its old data directory stays a voter, on every restart', async function () {
    const c = (cluster = await KvCluster.start({ size: 3 }));
    await c.putOk(1, 'before', 'x');
    const n3 = c.node(3);
    const removed = await c.node(1).request('DELETE', '/3');
    assert.equal(removed.status, 204, removed.body);
    const exit = await n3.waitExit(30_000);
    assert.equal(exit.code, 0);
    await c.putOk(1, 'while-removed', 'y');

    const added = await c.node(2).request('POST', '/3', n3.peerUrl);
    assert.equal(added.status, 204, added.body);
    for (let restart = 0; restart < 2; restart++) {
      n3.start();
      await waitFor('node 3 to apply its re-addition', 60_000, async () => {
        if (!n3.running) return true; // exited: assertStaysUp says so
        const s = await statusOf(n3);
        return s.members.voters.some((v) => v.id === 3) && (await n3.get('while-removed', 'serializable')).status === 200
          ? true
          : undefined;
      }, 100);
      await assertStaysUp(n3);
      // It counts in the quorum: with one of the other two down, writes still commit.
      const leader = await c.waitForLeader();
      const other = [1, 2].find((id) => id !== leader)!;
      await c.node(other).kill('SIGKILL');
      await c.putOk(leader, `with-3-voting-${restart}`, 'z', 60_000);
      c.node(other).start();
      await c.waitForLeader();
      await n3.kill('SIGTERM');
    }
  });

  it('unsafe changes get 409 with a reason; ?force=true overrides', async function () {
    const c = (cluster = await KvCluster.start({ size: 3, spare: 1 }));
    const leader = await c.waitForLeader();
    await c.putOk(leader, 'k', 'v');
    const down = [1, 2, 3].find((id) => id !== leader)!;
    const up = [1, 2, 3].find((id) => id !== leader && id !== down)!;
    await c.node(down).kill('SIGKILL');
    await waitFor('the leader to see the stopped node inactive', 30_000, async () => {
      const s = await statusOf(c.node(leader));
      return s.progress?.find((p) => p.id === down)?.active === false ? true : undefined;
    }, 100);

    const n4 = c.node(4);
    const refusedAdd = await c.node(up).request('POST', '/4', n4.peerUrl);
    assert.equal(refusedAdd.status, 409, refusedAdd.body);
    const body = JSON.parse(refusedAdd.body) as { error: string; reason: string; message: string };
    assert.equal(body.error, 'membership');
    assert.equal(body.reason, 'not-enough-active-voters');
    assert.match(body.message, /force=true/);
    const refusedRemove = await c.node(leader).request('DELETE', `/${up}`);
    assert.equal(refusedRemove.status, 409, refusedRemove.body);
    assert.equal((JSON.parse(refusedRemove.body) as { reason: string }).reason, 'not-enough-active-voters');
    const badForce = await c.node(leader).request('DELETE', `/${up}?force=maybe`);
    assert.equal(badForce.status, 400, badForce.body);
    // Nothing changed, and the cluster commits.
    await c.putOk(up, 'still', 'ok');

    // Forced: 4 becomes a voter while down (4 voters, 2 down: no quorum until one returns).
    const forced = await c.node(up).request('POST', '/4?force=true', n4.peerUrl);
    assert.equal(forced.status, 204, forced.body);
    n4.start({ join: true });
    await c.putOk(up, 'after-force', 'ok', 60_000);
    assert.deepEqual((await statusOf(c.node(up))).members.voters.map((v) => v.id).sort(), [1, 2, 3, 4]);
  });
});
