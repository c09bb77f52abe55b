/**
 * Membership changes are checked for safety on the leader (etcd's strict reconfiguration
 * check), whichever member the call is made on, and membership calls resolve only once the
 * next change can be proposed. Real RaftNodes in this process on 127.0.0.1 and real files.
 */

import assert from 'node:assert/strict';

import { MembershipError, type RaftNode } from '../../src/node/index.js';
import { TestCluster, enc, freePorts, waitFor, withRetry } from './helpers.js';

/** Rejection of `p`, or a failed assertion if it resolves. */
async function refusal(p: Promise<unknown>, what: string): Promise<unknown> {
  return p.then(
    (v) => assert.fail(`${what} must be refused, but it resolved with ${JSON.stringify(v)}`),
    (e: unknown) => e,
  );
}

function assertMembershipError(err: unknown, reason: string): void {
  assert.ok(err instanceof MembershipError, `expected MembershipError(${reason}), got ${String(err)}`);
  assert.equal(err.reason, reason, err.message);
}

/** Waits until the leader no longer counts `id` as active (not heard from for an election
 * timeout). */
async function waitInactive(leader: RaftNode<number>, id: number): Promise<void> {
  await waitFor(() => (leader.status().progress?.find((p) => p.id === id)?.active === false ? true : undefined),
    10_000, `the leader to see node ${id} inactive`);
}

describe('RaftNode membership safety', function () {
  this.timeout(60_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    if (cluster !== null) await cluster.destroy();
    cluster = null;
  });

  it('one voter: promoting a learner that never started, or adding a voter that is down, is refused and the cluster keeps committing', async () => {
    const c = (cluster = await TestCluster.create(1));
    await c.startAll();
    await c.waitForLeader();
    const n1 = c.node(1);
    await withRetry(() => n1.propose(enc('a')));
    const [port2, port3] = await freePorts(2);
    const m2 = c.define(2, port2!);
    const m3 = c.define(3, port3!);

    await withRetry(() => n1.addLearner(2, m2.url));
    assertMembershipError(await refusal(n1.promoteLearner(2), 'promoting a learner that never started'), 'learner-not-ready');
    assertMembershipError(await refusal(n1.addVoter(2, m2.url), 'addVoter of a learner (a promotion)'), 'learner-not-ready');
    assertMembershipError(await refusal(n1.addVoter(3, m3.url), 'adding a voter that is down'), 'not-enough-active-voters');
    // The cluster is unharmed: it commits, and the undo works.
    await n1.propose(enc('b'));
    await n1.removeMember(2);
    assert.deepEqual(n1.status().members.voters.map((v) => v.id), [1]);

    // A learner that runs and catches up is promoted.
    await withRetry(() => n1.addLearner(2, m2.url));
    await c.start(2, { join: true });
    await waitFor(() => (m2.sm.applied.includes('b') ? true : undefined), 20_000, 'the learner to catch up');
    const conf = await withRetry(() => n1.promoteLearner(2), 20_000);
    assert.deepEqual([...conf.voters].sort(), [1, 2]);
    await n1.propose(enc('c'));
  });

  it('three voters, one down: adding a voter or removing an active one is refused, on the leader and on a follower; force overrides', async () => {
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const leaderId = await c.waitForLeader();
    const leader = c.node(leaderId);
    await withRetry(() => leader.propose(enc('a')));
    const [down, follower] = [1, 2, 3].filter((id) => id !== leaderId) as [number, number];
    await c.stop(down);
    await waitInactive(leader, down);
    const [port4] = await freePorts(1);
    const m4 = c.define(4, port4!);

    assertMembershipError(await refusal(leader.addVoter(4, m4.url), 'addVoter with a voter down (leader)'), 'not-enough-active-voters');
    // Asked on a follower: the leader checks the forwarded entry and refuses it; the follower
    // learns why (no timeout).
    assertMembershipError(await refusal(c.node(follower).addVoter(4, m4.url), 'addVoter with a voter down (follower)'),
      'not-enough-active-voters');
    assertMembershipError(await refusal(leader.removeMember(follower), 'removing an active voter while another is down'),
      'not-enough-active-voters');
    assertMembershipError(await refusal(c.node(follower).removeMember(leaderId), 'removing the leader while a voter is down (follower)'),
      'not-enough-active-voters');
    // Refused changes changed nothing, and the cluster commits.
    await leader.propose(enc('b'));
    for (const n of [leader, c.node(follower)]) assert.deepEqual(n.status().members.voters.map((v) => v.id).sort(), [1, 2, 3]);
    // A learner is always fine.
    await leader.addLearner(4, m4.url);
    await leader.removeMember(4);

    // force: the operator's call. (It leaves {1,2,3,4} with two down: the cluster cannot
    // commit any more, which is why it is refused without force.)
    const conf = await c.node(follower).addVoter(4, m4.url, { force: true });
    assert.deepEqual([...conf.voters].sort(), [1, 2, 3, 4]);
  });

  it('removing a voter that is down is allowed', async () => {
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const leaderId = await c.waitForLeader();
    const leader = c.node(leaderId);
    const down = [1, 2, 3].find((id) => id !== leaderId)!;
    await c.stop(down);
    await waitInactive(leader, down);
    const conf = await withRetry(() => leader.removeMember(down));
    assert.equal(conf.voters.length, 2);
    await leader.propose(enc('after'));
  });

  it('a membership call resolves only once the next change can be proposed (no conf-change-pending right after)', async () => {
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const leaderId = await c.waitForLeader();
    const leader = c.node(leaderId);
    const follower = c.node([1, 2, 3].find((id) => id !== leaderId)!);
    await withRetry(() => leader.propose(enc('a')));
    const [port4, port5] = await freePorts(2);
    const m4 = c.define(4, port4!);
    const m5 = c.define(5, port5!);
    // Back to back, no retries: each call is made the moment the previous one resolved.
    for (let round = 0; round < 5; round++) {
      await leader.addLearner(4, m4.url);
      await leader.removeMember(4);
      await follower.addLearner(5, m5.url);
      await follower.removeMember(5);
    }
    assert.deepEqual(leader.status().members.learners, []);
  });
});
