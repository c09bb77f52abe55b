/**
 * Removal and re-addition of members, and the transport's member list, with real RaftNodes in
 * this process on 127.0.0.1 and real files:
 *
 * - a removed node that is added back and restarted (old data directory, or a fresh one with
 *   join) replays its old RemoveNode(self) while catching up: it must not stop, on any restart;
 * - the transport's members and removed ids follow the applied configuration, across restarts
 *   past a snapshot and across catching up by a snapshot.
 *
 * Who the transport accepts is observed from outside: a POST /raft with an empty body from a
 * given sender is answered 410 (removed), 403 (unknown) or 400 (a member; the empty batch is
 * malformed) — the sender check comes first and nothing reaches the node.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';

import type { StoppedEvent } from '../../src/node/index.js';
import { HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO } from '../../src/transport/index.js';
import { TestCluster, enc, freePorts, waitFor, withRetry } from './helpers.js';

/** The peer server's answer to an empty batch from `from`: 410 removed, 403 unknown, 400 member. */
function senderCheck(url: string, to: number, from: number): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: hostname,
      port: Number(port),
      method: 'POST',
      path: '/raft',
      agent: false,
      headers: { [HEADER_CLUSTER_ID]: 'raftkv', [HEADER_FROM]: String(from), [HEADER_TO]: String(to) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('RaftNode removal and re-addition', function () {
  this.timeout(90_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    if (cluster !== null) await cluster.destroy();
    cluster = null;
  });

  /** Removes `victim` through the leader and waits for it to stop itself. */
  async function removeAndWait(c: TestCluster, leader: number, victim: number): Promise<StoppedEvent> {
    const stopped = c.node(victim).stopped;
    await withRetry(() => c.node(leader).removeMember(victim));
    const ev = await stopped;
    assert.equal(ev.reason, 'removed');
    c.members.get(victim)!.node = null;
    return ev;
  }

  /** Messages `id` received from its peers so far (requests and answers). */
  function received(c: TestCluster, id: number): number {
    const t = c.node(id).status().transport;
    return t.server.receivedMessages + t.peers.reduce((n, p) => n + p.receivedReplyMessages, 0);
  }

  /** `id` keeps running while it receives 60 more messages (heartbeats: several times the
   * removal grace period of two election timeouts). A node that stopped receives nothing. */
  async function assertStaysUp(c: TestCluster, id: number): Promise<void> {
    const node = c.node(id);
    const from = received(c, id);
    await waitFor(() => (node.nodeState !== 'running' || received(c, id) >= from + 60 ? true : undefined), 30_000,
      `node ${id} to receive 60 messages`);
    if (node.nodeState !== 'running') assert.fail(`node ${id} stopped: ${JSON.stringify(await node.stopped)}`);
  }

  /** Proves `voter` counts in the quorum: with the third voter stopped, leader + voter commit. */
  async function assertVotes(c: TestCluster, voter: number, tag: string): Promise<void> {
    const third = [1, 2, 3].find((id) => id !== voter && c.node(id).isLeader === false)!;
    await c.stop(third);
    const leader = await c.waitForLeader(20_000);
    await withRetry(() => c.node(leader).propose(enc(tag)), 20_000);
    await waitFor(() => (c.members.get(voter)!.sm.applied.includes(tag) ? true : undefined), 20_000, `${tag} on node ${voter}`);
    assert.equal(c.node(voter).nodeState, 'running');
    await c.start(third);
    await c.waitForLeader(20_000);
  }

  for (const variant of ['its old data directory', 'a fresh data directory (join)'] as const) {
    it(`a removed node added back and restarted with ${variant} stays a voter, on every restart`, async () => {
      const c = (cluster = await TestCluster.create(3));
      await c.startAll();
      const leader = await c.waitForLeader();
      const victim = [1, 2, 3].find((id) => id !== leader)!;
      for (let k = 0; k < 5; k++) await withRetry(() => c.node(leader).propose(enc(`a${k}`)));
      await removeAndWait(c, leader, victim);
      await withRetry(() => c.node(leader).propose(enc('while-removed')));

      const m = c.members.get(victim)!;
      await withRetry(() => c.node(leader).addVoter(victim, m.url));
      if (variant === 'a fresh data directory (join)') m.dataDir = path.join(c.root, `node-${victim}-fresh`);
      await c.start(victim, variant === 'a fresh data directory (join)' ? { join: true } : {});
      await waitFor(() => (c.node(victim).status().members.voters.some((v) => v.id === victim) ? true : undefined), 20_000,
        'the re-added node to apply its re-addition');
      await assertStaysUp(c, victim);
      await assertVotes(c, victim, 'after-re-add');

      // Restart it again: it replays RemoveNode(self) and AddVoter(self) from its own log.
      await c.stop(victim);
      await c.start(victim);
      await c.waitForLeader(20_000);
      await assertStaysUp(c, victim);
      await assertVotes(c, victim, 'after-restart');
    });
  }

  it('a node removed while it was down stops when it restarts (the others answer 410 Gone)', async () => {
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const leader = await c.waitForLeader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    await c.stop(victim);
    await waitFor(() => (c.node(leader).status().progress?.find((p) => p.id === victim)?.active === false ? true : undefined),
      10_000, 'the leader to see the victim inactive');
    await withRetry(() => c.node(leader).removeMember(victim));
    // Its own log still says it is a voter; only the peers can tell it.
    const node = await c.start(victim);
    const ev = await node.stopped;
    assert.equal(ev.reason, 'removed');
    assert.match(ev.detail, /report this node was removed/);
  });

  it('after a restart past a snapshot, a removed node is still answered 410 Gone', async () => {
    const c = (cluster = await TestCluster.create(3, { snapshotCount: 5, snapshotCatchUpEntries: 2 }));
    await c.startAll();
    const leader = await c.waitForLeader();
    const [victim, other] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    await removeAndWait(c, leader, victim);
    const removedAt = c.node(leader).appliedIndex;
    for (let k = 0; k < 15; k++) await withRetry(() => c.node(leader).propose(enc(`s${k}`)));
    await waitFor(() => (c.node(other).status().snapshotIndex > removedAt ? true : undefined), 20_000, 'a snapshot past the removal');
    assert.equal(await senderCheck(c.members.get(other)!.url, other, victim), 410);

    await c.stop(other);
    await c.start(other);
    assert.equal(await senderCheck(c.members.get(other)!.url, other, victim), 410, 'right after the restart');
    await c.waitForLeader(20_000);
    await withRetry(() => c.node(leader).propose(enc('after-restart')));
    assert.equal(await senderCheck(c.members.get(other)!.url, other, victim), 410, 'after catching up');
  });

  it('a follower catching up by snapshot takes the snapshot\'s members: re-added ones are accepted, removed ones get 410', async () => {
    const c = (cluster = await TestCluster.create(3, { snapshotCount: 5, snapshotCatchUpEntries: 2 }));
    await c.startAll();
    const leader = await c.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const [port4, port5] = await freePorts(2);
    const m4 = c.define(4, port4!);
    const m5 = c.define(5, port5!);
    // 4 is removed and 5 is a learner, as the follower sees it before going down. The
    // follower never snapshots: those changes stay in its WAL, re-applied at restart.
    await c.stop(follower);
    await c.start(follower, { snapshotCount: 1_000_000 });
    await withRetry(() => c.node(leader).addLearner(4, m4.url));
    await withRetry(() => c.node(leader).removeMember(4));
    await withRetry(() => c.node(leader).addLearner(5, m5.url));
    await waitFor(() => (c.node(follower).status().members.learners.some((l) => l.id === 5) ? true : undefined), 20_000,
      'the follower to apply the changes');
    assert.equal(await senderCheck(c.members.get(follower)!.url, follower, 4), 410);
    assert.equal(await senderCheck(c.members.get(follower)!.url, follower, 5), 400);
    await c.stop(follower);

    // Meanwhile 4 comes back and 5 goes; the leader compacts past everything the follower has.
    await withRetry(() => c.node(leader).addLearner(4, m4.url));
    await withRetry(() => c.node(leader).removeMember(5));
    for (let k = 0; k < 20; k++) await withRetry(() => c.node(leader).propose(enc(`c${k}`)));
    const fm = c.members.get(follower)!;
    await c.start(follower, { snapshotCount: 1_000_000 });
    await waitFor(() => (fm.sm.applied.includes('c19') ? true : undefined), 20_000, 'the follower to catch up');
    assert.ok(fm.sm.restores >= 1, 'the follower caught up by a snapshot');
    assert.equal(await senderCheck(fm.url, follower, 4), 400, 're-added 4 is a member again');
    assert.equal(await senderCheck(fm.url, follower, 5), 410, 'removed 5 is gone');
  });
});
