/**
 * Calls made while no leader is known wait for one within their timeout (as etcd's server
 * does), instead of failing at once: a fresh cluster answers its first proposal with no retry
 * loop in the caller. Real nodes in this process on 127.0.0.1 sockets and real files.
 *
 * "No leader yet" is made certain, not hoped for: a member started alone cannot elect anyone
 * (pre-vote needs a quorum of the three configured voters) until the others start.
 */

import assert from 'node:assert/strict';

import { NoLeaderError, StoppedError } from '../../src/node/index.js';
import { TestCluster, enc, freePorts, waitFor } from './helpers.js';

/** Settles `promise` into a value the test can inspect without an unhandled rejection. */
function outcome<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** True while `promise` has not settled (checked after the node had time to refuse it). */
async function stillPending(promise: Promise<unknown>): Promise<boolean> {
  await new Promise((resolve) => setTimeout(resolve, 100));
  const marker = Symbol('pending');
  return (await Promise.race([promise.then(() => null, () => null), Promise.resolve(marker)])) === marker;
}

function isNoLeader(waitedMs: number): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof NoLeaderError, `expected NoLeaderError, got ${String(err)}`);
    assert.equal(err.waitedMs, waitedMs);
    assert.equal(err.retryable, true);
    assert.match(err.message, /nothing was proposed/);
    return true;
  };
}

describe('RaftNode waits for a leader', function () {
  this.timeout(60_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    if (cluster !== null) await cluster.destroy();
    cluster = null;
  });

  it('a fresh 3-node cluster: start() then propose() at once on every member resolves, no retry', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    // Each member proposes the moment its own start() resolves, elections or not.
    const values = await Promise.all([1, 2, 3].map(async (id) => {
      const node = await c.start(id);
      return node.propose(enc(`first-from-${id}`));
    }));
    assert.equal(new Set(values).size, 3, `three distinct indexes: ${values.join(',')}`);
    const reads = await Promise.all([1, 2, 3].map((id) => c.node(id).readBarrier()));
    for (const [i, id] of [1, 2, 3].entries()) {
      assert.ok(reads[i]! >= Math.max(...values), `node ${id} read index ${reads[i]} covers every write`);
      const applied = c.members.get(id)!.sm.applied;
      for (const from of [1, 2, 3]) assert.ok(applied.includes(`first-from-${from}`), `node ${id} applied first-from-${from}`);
    }
  });

  it('calls made before any leader can exist resolve once one is elected', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    const [learnerPort] = await freePorts(1);
    const node1 = await c.start(1);
    assert.equal(node1.leaderId, 0);
    // Node 1 alone cannot elect anyone: each of these calls meets "no leader" in the core.
    const proposal = node1.propose(enc('early'));
    const barrier = node1.readBarrier();
    const learner = node1.addLearner(4, `http://127.0.0.1:${learnerPort}`);
    const ready = node1.ready();
    assert.ok(await stillPending(Promise.all([proposal, barrier, learner, ready])), 'the calls wait while there is no leader');
    assert.equal(node1.leaderId, 0);
    assert.equal(node1.status().pendingRequests, 4, 'waiting calls count as pending');

    await Promise.all([c.start(2), c.start(3)]);
    const index = await proposal;
    assert.ok(index > 0);
    await barrier;
    const conf = await learner;
    assert.deepEqual(conf.learners, [4]);
    await ready;
    assert.notEqual(node1.leaderId, 0);
    assert.deepEqual(c.members.get(1)!.sm.applied, ['early']);
  });

  it('a call whose timeout passes with no leader fails with NoLeaderError, and nothing of it is applied', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    const node1 = await c.start(1);
    const [learnerPort] = await freePorts(1);
    await assert.rejects(node1.propose(enc('never'), { timeoutMs: 300 }), isNoLeader(300));
    await assert.rejects(node1.readBarrier({ timeoutMs: 300 }), isNoLeader(300));
    await assert.rejects(node1.addLearner(4, `http://127.0.0.1:${learnerPort}`, { timeoutMs: 300 }), isNoLeader(300));
    await assert.rejects(node1.transferLeadership(2, { timeoutMs: 300 }), (err: unknown) => err instanceof NoLeaderError && err.waitedMs === 300);
    await assert.rejects(node1.ready({ timeoutMs: 300 }), (err: unknown) => err instanceof NoLeaderError);

    // Once the cluster forms, a later write on node 1 commits (its transport, which backed off
    // from the peers it could not reach, lets it through) and none of the timed-out calls
    // shows up.
    await Promise.all([c.start(2), c.start(3)]);
    await c.waitForLeader();
    const after = await node1.propose(enc('after'));
    await waitFor(() => (c.running().every((n) => n.appliedIndex >= after) ? true : undefined), 10_000, 'every member to apply the later write');
    for (const id of [1, 2, 3]) {
      assert.deepEqual(c.members.get(id)!.sm.applied, ['after'], `node ${id} applied only the later write`);
      assert.deepEqual(c.node(id).status().members.learners, [], `node ${id} has no learner`);
    }
  });

  it('waitForLeader: false fails at once, per call and per node; a call can also opt in', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    // With a 60 s timeout a waiting call would outlive the test: these must fail at once.
    // One member at a time, so no leader can exist.
    const waiting = await c.start(1);
    await assert.rejects(waiting.propose(enc('x'), { timeoutMs: 60_000, waitForLeader: false }), isNoLeader(0));
    await assert.rejects(waiting.readBarrier({ timeoutMs: 60_000, waitForLeader: false }), isNoLeader(0));
    await assert.rejects(waiting.addVoter(4, 'http://127.0.0.1:1', { timeoutMs: 60_000, waitForLeader: false }), isNoLeader(0));
    await assert.rejects(waiting.transferLeadership(2, { timeoutMs: 60_000, waitForLeader: false }), (err: unknown) => err instanceof NoLeaderError && err.waitedMs === 0);
    await c.stop(1);

    const failFast = await c.start(2, { waitForLeader: false });
    await assert.rejects(failFast.propose(enc('y'), { timeoutMs: 60_000 }), isNoLeader(0));
    await assert.rejects(failFast.readBarrier({ timeoutMs: 60_000 }), isNoLeader(0));
    // Opting in on the fail-fast node waits for the leader nodes 2 and 3 elect.
    const optedIn = failFast.propose(enc('z'), { waitForLeader: true });
    await c.start(3);
    assert.ok((await optedIn) > 0);
  });

  it('stop() rejects every call still waiting for a leader with StoppedError', async () => {
    cluster = await TestCluster.create(3);
    const node1 = await cluster.start(1);
    const calls = [
      outcome(node1.propose(enc('p'))),
      outcome(node1.readBarrier()),
      outcome(node1.addLearner(4, 'http://127.0.0.1:1')),
      outcome(node1.transferLeadership(2)),
      outcome(node1.ready()),
    ];
    assert.ok(await stillPending(Promise.race(calls)), 'the calls wait while there is no leader');
    await node1.stop();
    for (const r of await Promise.all(calls)) {
      assert.ok(!r.ok && r.error instanceof StoppedError, `expected StoppedError, got ${JSON.stringify(r)}`);
    }
  });

  it('ready() after a restart: every write acknowledged before it is applied on every member', async () => {
    cluster = await TestCluster.create(3);
    const c = cluster;
    await c.startAll();
    const writes = Array.from({ length: 20 }, (_, i) => `w${i}`);
    for (const [i, w] of writes.entries()) await c.node(1 + (i % 3)).propose(enc(w));
    await c.stopAll();

    await c.startAll();
    await Promise.all([1, 2, 3].map((id) => c.node(id).ready()));
    for (const id of [1, 2, 3]) {
      assert.notEqual(c.node(id).leaderId, 0, `node ${id} knows a leader`);
      const applied = c.members.get(id)!.sm.applied;
      for (const w of writes) assert.ok(applied.includes(w), `node ${id} applied ${w} before ready() resolved`);
    }
  });

  it('ready() on a stopped node rejects with StoppedError', async () => {
    cluster = await TestCluster.create(1);
    const node = await cluster.start(1);
    await node.ready();
    await node.stop();
    await assert.rejects(node.ready(), (err: unknown) => err instanceof StoppedError);
  });
});
