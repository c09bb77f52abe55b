/**
 * Request limits: maxPendingProposals and maxPendingReads refuse one request too many at once
 * with TooManyRequestsError (retryable); maxUncommittedEntriesSize reaches the core, whose
 * leader then refuses proposals (ProposalRejectedError) while its uncommitted tail is too big.
 */
import assert from 'node:assert/strict';

import { ProposalRejectedError, TooManyRequestsError } from '../../src/node/errors.js';
import { TestCluster, enc, waitFor } from './helpers.js';

/** One turn of the event loop: the node's scheduled Ready pass has run. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('RaftNode request limits', function () {
  this.timeout(30_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    await cluster?.destroy();
    cluster = null;
  });

  it('maxPendingProposals: one proposal too many is refused at once, retryable; the others commit', async () => {
    cluster = await TestCluster.create(1, { maxPendingProposals: 2 });
    await cluster.startAll();
    await cluster.waitForLeader();
    const node = cluster.node(1);
    // All in one synchronous turn: the first two are pending when the third is made.
    const first = node.propose(enc('a'));
    const second = node.propose(enc('b'));
    await assert.rejects(node.propose(enc('c')), (e: unknown) => e instanceof TooManyRequestsError && e.retryable && e.limit === 2);
    await assert.rejects(node.addLearner(9, 'http://127.0.0.1:9'), TooManyRequestsError);
    const indexes = await Promise.all([first, second]);
    assert.equal(indexes.length, 2);
    // Capacity is back once they completed.
    await node.propose(enc('d'));
    assert.deepEqual(cluster.members.get(1)!.sm.applied, ['a', 'b', 'd']);
  });

  it('maxPendingReads: one readBarrier too many is refused at once, retryable; the others complete', async () => {
    cluster = await TestCluster.create(1, { maxPendingReads: 3 });
    await cluster.startAll();
    await cluster.waitForLeader();
    const node = cluster.node(1);
    const reads = [node.readBarrier(), node.readBarrier(), node.readBarrier()];
    await assert.rejects(node.readBarrier(), (e: unknown) => e instanceof TooManyRequestsError && e.retryable && e.limit === 3);
    await Promise.all(reads);
    // Settled reads no longer count.
    await Promise.all([node.readBarrier(), node.readBarrier(), node.readBarrier()]);
  });

  it('maxUncommittedEntriesSize: a leader that cannot commit refuses proposals once its uncommitted tail is too big', async () => {
    // No CheckQuorum: the leader must stay leader with both followers gone.
    cluster = await TestCluster.create(3, { maxUncommittedEntriesSize: 100, checkQuorum: false, requestTimeoutMs: 20_000 });
    await cluster.startAll();
    const leaderId = await cluster.waitForLeader();
    const leader = cluster.node(leaderId);
    await leader.propose(enc('committed while the followers are up'));
    for (const id of cluster.members.keys()) if (id !== leaderId) await cluster.stop(id);
    // The first uncommitted proposal is always taken (the core admits one batch past the limit).
    const stuck = leader.propose(new Uint8Array(200));
    stuck.catch(() => undefined); // rejected with StoppedError at the end
    await waitFor(() => (leader.status().lastIndex > leader.status().commit ? true : undefined), 5000, 'the stuck proposal in the log');
    await nextTurn();
    await assert.rejects(
      leader.propose(new Uint8Array(10)),
      (e: unknown) => e instanceof ProposalRejectedError && e.reason === 'uncommitted-size-limit' && e.retryable,
    );
  });
});
