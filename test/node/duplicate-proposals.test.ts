/**
 * A proposal is applied at most once, whatever the network repeats (real three-node clusters).
 *
 * Two layers, each tested on its own:
 * - the transport never sends a forwarded proposal twice. Here a follower forwards proposal A
 *   to the leader through a TCP proxy that holds the leader's answers back; the leader
 *   processes A, the follower forwards B, and then the connection is reset, closed by the
 *   peer (a restart) or left until the follower's request times out. undici used to re-send
 *   B on a new connection (it re-sends every written-but-unanswered request but the first),
 *   and every node applied A, B, B;
 * - every replica skips a proposal applied before (src/node/proposal-dedup.ts). Here the same
 *   forwarded Prop is posted to the leader again and again, also after snapshots, restarts and
 *   a snapshot install: each node applies it once.
 */

import assert from 'node:assert/strict';

import { encodeProposal } from '../../src/node/envelope.js';
import { TimeoutError, type RaftNodeOptions } from '../../src/node/index.js';
import { encodeMessages } from '../../src/raft/codec.js';
import { EntryType, MessageType } from '../../src/raft/types.js';
import { HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO } from '../../src/transport/index.js';
import { CuttableProxy } from '../transport/proxy.js';
import { TestCluster, enc, freePorts, tempDir, waitFor, withRetry } from './helpers.js';

const IDS = [1, 2, 3];

/** A cluster in which node i reaches node j through proxies[i][j]. */
async function proxiedCluster(extra: Partial<RaftNodeOptions<number>>): Promise<{ c: TestCluster; proxy: (from: number, to: number) => CuttableProxy; close(): Promise<void> }> {
  const c = new TestCluster(await tempDir('dup'), extra);
  const ports = await freePorts(IDS.length);
  IDS.forEach((id, i) => c.define(id, ports[i]!));
  const proxies = new Map<string, CuttableProxy>();
  for (const from of IDS) for (const to of IDS) if (from !== to) proxies.set(`${from}>${to}`, await CuttableProxy.start(ports[to - 1]!));
  await Promise.all(IDS.map((id) => c.start(id, {
    peers: IDS.map((other) => ({ id: other, url: other === id ? c.members.get(id)!.url : proxies.get(`${id}>${other}`)!.url })),
  })));
  return {
    c,
    proxy: (from, to) => proxies.get(`${from}>${to}`)!,
    close: async () => {
      await c.destroy();
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}

function count(c: TestCluster, id: number, payload: string): number {
  return c.members.get(id)!.sm.applied.filter((s) => s === payload).length;
}

/** Proposes on `id` until it succeeds, then waits until every node applied it. */
async function commitEverywhere(c: TestCluster, id: number, payload: string): Promise<void> {
  const index = await withRetry(() => c.node(id).propose(enc(payload)), 30_000);
  await waitFor(() => (IDS.every((n) => c.node(n).appliedIndex >= index) ? true : undefined), 30_000, `every node applied ${payload}`);
}

describe('a proposal is applied at most once (cluster)', function () {
  this.timeout(60_000);
  let close: (() => Promise<void>) | null = null;

  afterEach(async function () {
    await close?.();
    close = null;
  });

  const paths: Array<[string, (p: CuttableProxy) => void]> = [
    ['the connection is reset (pipeline re-send)', (p) => p.resetConnections()],
    ['the leader closes the connection, as when it restarts (reconnect)', (p) => p.endConnections()],
    ['the leader does not answer until the request times out (response timeout)', () => {}],
  ];
  for (const [what, breakIt] of paths) {
    it(`a forwarded proposal is not applied twice when ${what}`, async function () {
      const pc = await proxiedCluster({});
      close = pc.close;
      const c = pc.c;
      const leader = await c.waitForLeader();
      const follower = IDS.find((id) => id !== leader)!;
      await commitEverywhere(c, follower, 'warm-up'); // the follower's connections exist
      const link = pc.proxy(follower, leader);
      link.holdAnswers();
      const a = c.node(follower).propose(enc('A')).catch((err: unknown) => err);
      await waitFor(() => (count(c, leader, 'A') === 1 ? true : undefined), 10_000, 'the leader applied A');
      const b = c.node(follower).propose(enc('B')).catch((err: unknown) => err);
      const toLeader = () => c.node(follower).status().transport.peers.find((p) => p.id === leader)!;
      // B is sent behind A on the same connection, or waits in the follower's queue.
      await waitFor(() => (count(c, leader, 'B') === 1 || toLeader().queuedMessages > 0 ? true : undefined), 10_000, 'B sent or queued');
      breakIt(link);
      await waitFor(() => (toLeader().inflightRequests === 0 ? true : undefined), 20_000, 'no request of the follower in flight');
      await a; // applied (B may have been dropped with the failed request: it then times out)
      void b;
      await waitFor(() => (toLeader().backingOff ? undefined : true), 10_000, 'the follower to stop backing off');
      // A barrier: anything still coming would have been appended before it. (Right after the
      // failure the follower backs off and drops what it forwards: retried with new payloads.)
      for (let attempt = 0; ; attempt++) {
        try {
          await commitEverywhere(c, follower, `C${attempt}`);
          break;
        } catch (err) {
          if (!(err instanceof TimeoutError) || attempt >= 5) throw err;
        }
      }
      for (const id of IDS) {
        assert.equal(count(c, id, 'A'), 1, `node ${id} applied A once: ${c.members.get(id)!.sm.applied.join(',')}`);
        assert.ok(count(c, id, 'B') <= 1, `node ${id} applied B ${count(c, id, 'B')} times: ${c.members.get(id)!.sm.applied.join(',')}`);
      }
    });
  }

  it('the same forwarded Prop posted again and again is applied once, across snapshots, restarts and a snapshot install', async function () {
    const c = await TestCluster.create(3, { snapshotCount: 4, snapshotCatchUpEntries: 0 });
    close = () => c.destroy();
    await c.startAll();
    const leader = await c.waitForLeader();
    const [f1, f2] = IDS.filter((id) => id !== leader) as [number, number];
    // Follower f1's proposal as it forwards it (tag: f1, some incarnation, seq 1), posted to a
    // node as if relayed by a follower (a follower forwards it on to the leader).
    const postTo = async (to: number): Promise<void> => {
      const data = encodeProposal({ origin: f1, incarnation: 12345, seq: 1 }, enc('dup'));
      const body = encodeMessages([{
        type: MessageType.Prop, from: f1, to, term: 0, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0,
        snapshot: null, context: new Uint8Array(), entries: [{ term: 0, index: 0, type: EntryType.Normal, data }],
      }]);
      const res = await fetch(`${c.members.get(to)!.url}/raft`, {
        method: 'POST',
        headers: { [HEADER_CLUSTER_ID]: 'raftkv', [HEADER_FROM]: String(to === f1 ? f2 : f1), [HEADER_TO]: String(to) },
        body: Buffer.from(body),
      });
      assert.equal(res.status, 204, await res.text());
    };
    const lead = async (): Promise<number> => c.waitForLeader(30_000);
    const assertOnce = (ids: number[], when: string): void => {
      for (const id of ids) assert.equal(count(c, id, 'dup'), 1, `node ${id} ${when}: ${c.members.get(id)!.sm.applied.join(',')}`);
    };

    await postTo(leader);
    await postTo(leader);
    for (let i = 0; i < 6; i++) await commitEverywhere(c, leader, `w${i}`); // snapshots taken meanwhile
    assertOnce(IDS, 'after two copies');
    assert.ok(c.node(leader).status().snapshotIndex > 0, 'a snapshot was taken');

    await postTo(await lead());
    await commitEverywhere(c, await lead(), 'x');
    assertOnce(IDS, 'after a copy following a snapshot');

    // Restart everyone: each node rebuilds the table from its snapshot and its log.
    await c.stopAll();
    await c.startAll();
    await postTo(await lead());
    await commitEverywhere(c, await lead(), 'y');
    assertOnce(IDS, 'after a restart');

    // A node that was down catches up from the leader's snapshot, table included.
    const down = IDS.find((id) => id !== (c.running().find((n) => n.isLeader)?.id ?? 0))!;
    await c.stop(down);
    const up = IDS.filter((id) => id !== down);
    for (let i = 0; i < 10; i++) {
      const index = await withRetry(() => c.node(up[0]!).propose(enc(`z${i}`)), 30_000);
      await waitFor(() => (up.every((n) => c.node(n).appliedIndex >= index) ? true : undefined), 30_000, `z${i} applied`);
    }
    await c.start(down);
    const restoredAtStart = c.members.get(down)!.sm.restores;
    await waitFor(() => (c.members.get(down)!.sm.restores > restoredAtStart ? true : undefined), 30_000, `node ${down} installed a snapshot`);
    await postTo(await lead());
    await commitEverywhere(c, await lead(), 'end');
    assertOnce(IDS, 'after a snapshot install');
  });
});
