/**
 * A member whose sends to its peers failed (it ran while they were down) backs off from them;
 * once they are back and one of them leads, that backoff must not swallow what the member
 * forwards to the leader. Real nodes in this process on 127.0.0.1 sockets and real files.
 */

import assert from 'node:assert/strict';
import net from 'node:net';

import { TimeoutError } from '../../src/node/index.js';
import { TestCluster, enc, freePorts, waitFor } from './helpers.js';

/** A TCP relay on 127.0.0.1:`port` to 127.0.0.1:`target` (a peer reached through another
 * address: closing the relay breaks the way to it one-way). */
async function relay(port: number, target: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

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

  it('a proposal the transport could not send to the leader is proposed again and commits once the way is open', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    // Node 1 reaches nodes 2 and 3 only through relays that are not running yet (refused
    // connections), while they reach node 1 directly: node 1 hears the leader but cannot
    // forward anything to it.
    const relayPorts = await freePorts(2);
    const peerPort = (id: number): number => Number(new URL(c.members.get(id)!.url).port);
    const viaRelays = [
      { id: 1, url: c.members.get(1)!.url },
      { id: 2, url: `http://127.0.0.1:${relayPorts[0]}` },
      { id: 3, url: `http://127.0.0.1:${relayPorts[1]}` },
    ];
    await Promise.all([c.start(2), c.start(3)]);
    const node1 = await c.start(1, { peers: viaRelays });
    const leader = await waitFor(() => (node1.leaderId !== 0 ? node1.leaderId : undefined), 10_000, 'node 1 to learn the leader');
    assert.notEqual(leader, 1);

    // Not sent within its deadline: it times out (and is never applied, checked below).
    await assert.rejects(node1.propose(enc('never-sent'), { timeoutMs: 500 }), (err: unknown) => err instanceof TimeoutError);

    // Proposed again and again while the way is closed; it commits once the relays run.
    const proposal = node1.propose(enc('sent-once-open'), { timeoutMs: 10_000 });
    // Node 1 forwards it at once (next pass) and again every tick: give it a few tries.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const relays = await Promise.all([relay(relayPorts[0]!, peerPort(2)), relay(relayPorts[1]!, peerPort(3))]);
    try {
      const index = await proposal;
      assert.ok(index > 0);
      const applied = c.members.get(1)!.sm.applied;
      assert.deepEqual(applied.filter((v) => v === 'sent-once-open'), ['sent-once-open'], 'applied once');
      assert.ok(!applied.includes('never-sent'));
      await waitFor(() => (c.running().every((n) => n.appliedIndex >= index) ? true : undefined), 10_000, 'every member to apply it');
      for (const id of [2, 3]) {
        assert.deepEqual(c.members.get(id)!.sm.applied, ['sent-once-open'], `node ${id} applied it once and nothing else`);
      }
    } finally {
      await c.stop(1);
      await Promise.all(relays.map((r) => r.close()));
    }
  });
});
