/**
 * A member whose sends to its peers failed (it ran while they were down) backs off from them;
 * once they are back and one of them leads, that backoff must not swallow what the member
 * forwards to the leader. Real nodes in this process on 127.0.0.1 sockets and real files.
 */

import assert from 'node:assert/strict';

import { TestCluster, enc, waitFor } from './helpers.js';

describe('RaftNode after its transport backed off from every peer', function () {
  this.timeout(60_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    if (cluster !== null) await cluster.destroy();
    cluster = null;
  });

  it('a proposal forwarded as soon as the returning peers elect a leader commits (not lost to the backoff)', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    // Nodes 2 and 3 write without node 1, so node 1's log is behind: it cannot win the election
    // once they are back, and must forward its proposal to the leader they elect.
    await Promise.all([c.start(2), c.start(3)]);
    await c.waitForLeader();
    await c.node(2).propose(enc('while-1-was-away'));
    await Promise.all([c.stop(2), c.stop(3)]);

    // Node 1 alone campaigns, fails to reach its peers and backs off from them, up to the
    // transport's maximum (2 s; more than this test's request timeout).
    const node1 = await c.start(1, { requestTimeoutMs: 1500 });
    const failuresTo = (peer: number): number => node1.status().transport.peers.find((p) => p.id === peer)?.failures ?? 0;
    await waitFor(() => (failuresTo(2) >= 5 && failuresTo(3) >= 5 ? true : undefined), 20_000, 'node 1 to back off from nodes 2 and 3');
    // Right after a failure the backoff has its full length ahead: start the others then.
    const before = failuresTo(2);
    await waitFor(() => (failuresTo(2) > before ? true : undefined), 10_000, 'node 1 to fail again');
    await Promise.all([c.start(2), c.start(3)]);

    // Propose the moment node 1 knows the leader (which is not node 1: its log is behind).
    const leader = await waitFor(() => (node1.leaderId !== 0 ? node1.leaderId : undefined), 10_000, 'node 1 to learn the leader');
    assert.notEqual(leader, 1);
    const index = await node1.propose(enc('right-after-the-election'));
    assert.ok(index > 0);
    assert.deepEqual(c.members.get(1)!.sm.applied, ['while-1-was-away', 'right-after-the-election']);
  });
});
