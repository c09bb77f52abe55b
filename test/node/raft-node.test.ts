/**
 * RaftNode runtime tests: several nodes in this process on real sockets (127.0.0.1) and real
 * files. Our versions of raftexample's scenarios (TestProposeOnCommit, TestCloseProposer*,
 * TestAddNewNode, TestSnapshot) plus restarts, compaction catch-up, membership and fail-stop.
 * Waiting is by polling for a condition with a generous deadline, never by sleeping a fixed
 * time and hoping.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { readdir } from 'node:fs/promises';
import * as net from 'node:net';
import path from 'node:path';

import {
  NoLeaderError,
  NotLeaderError,
  RaftNode,
  StoppedError,
  type StoppedEvent,
} from '../../src/node/index.js';
import { createJsBackend } from '../../src/wal/js-backend.js';
import {
  LogStateMachine,
  TestCluster,
  enc,
  freePorts,
  removeDir,
  tempDir,
  testLogger,
  waitFor,
  withRetry,
} from './helpers.js';

describe('RaftNode', function () {
  this.timeout(60_000);
  let cluster: TestCluster | null = null;

  afterEach(async () => {
    if (cluster !== null) await cluster.destroy();
    cluster = null;
  });

  it('3 nodes elect a leader; every node proposes and every node applies every commit in the same order', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const events: string[] = [];
    let lastApplied = 0;
    c.node(1).on('leader-change', (e) => events.push(`leader:${e.leader}`));
    c.node(1).on('role-change', (e) => events.push(`role:${e.role}`));
    c.node(1).on('applied', (e) => {
      assert.ok(e.index > lastApplied, 'applied events move forward');
      lastApplied = e.index;
    });
    const firstLeader = await cluster.waitForLeader();

    // Each node proposes its own sequence, one at a time (a follower's go through forwarding).
    const perNode = 25;
    const proposers = [1, 2, 3].map(async (id) => {
      const indexes: number[] = [];
      for (let k = 0; k < perNode; k++) {
        indexes.push(await withRetry(() => c.node(id).propose(enc(`n${id}-${k}`))));
      }
      return indexes;
    });
    const results = await Promise.all(proposers);

    const total = 3 * perNode;
    await waitFor(() => ([1, 2, 3].every((id) => c.members.get(id)!.sm.applied.length >= total) ? true : undefined), 20_000, 'all nodes to apply every entry');
    const logs = [1, 2, 3].map((id) => c.members.get(id)!.sm.applied);
    assert.deepEqual(logs[1], logs[0]);
    assert.deepEqual(logs[2], logs[0]);
    assert.equal(new Set(logs[0]).size, total, 'every proposal applied exactly once');
    // Each proposer's sequence is applied in its own order, and the index each propose
    // resolved with is where its payload really sits.
    const sm1 = c.members.get(1)!.sm;
    for (const [i, id] of [1, 2, 3].entries()) {
      const positions = Array.from({ length: perNode }, (_, k) => sm1.applied.indexOf(`n${id}-${k}`));
      assert.deepEqual([...positions].sort((a, b) => a - b), positions);
      for (const [k, index] of results[i]!.entries()) {
        assert.equal(sm1.applied[sm1.appliedIndexes.indexOf(index)], `n${id}-${k}`);
      }
    }
    const st = c.node(1).status();
    assert.ok(events.includes(`leader:${firstLeader}`) || c.node(1).leaderId !== firstLeader, events.join(' '));
    assert.equal(lastApplied, c.node(1).appliedIndex);
    assert.equal(st.members.voters.length, 3);
    assert.ok(st.commit >= total);
    assert.equal(typeof st.wal.mode, 'string');
  });

  it('commit notices: held back and superseded by the next append (commitNotifyDelayMs), or sent at once with 0', async () => {
    // Heartbeats every ~0.5 s so that, during a burst of serial proposals, what goes to a
    // follower is (almost) only appends and commit notices.
    const quiet = { tickMs: 10, electionTicks: 50, heartbeatTicks: 49 };
    const serial = 30;
    const messagesPerFollower = async (commitNotifyDelayMs: number): Promise<{ perFollower: number[]; leader: number; c: TestCluster }> => {
      const c = await TestCluster.create(3, { ...quiet, commitNotifyDelayMs });
      cluster = c;
      await c.startAll();
      const leader = await c.waitForLeader();
      await withRetry(() => c.node(leader).propose(enc('warm-up')));
      const sent = (): Map<number, number> =>
        new Map(c.node(leader).status().transport.peers.map((p) => [p.id, p.sentMessages]));
      const before = sent();
      for (let k = 0; k < serial; k++) await c.node(leader).propose(enc(`w${k}`));
      const after = sent();
      const perFollower = [...after].map(([id, n]) => n - (before.get(id) ?? 0));
      return { perFollower, leader, c };
    };

    // Long delay: every notice is superseded by the next write's append (one message per write).
    const lazy = await messagesPerFollower(600_000);
    for (const n of lazy.perFollower) {
      // (± a few: sentMessages counts a request once the peer has answered it)
      assert.ok(n >= serial - 4 && n <= serial + 6, `lazy: ${n} messages to a follower for ${serial} writes (${lazy.perFollower})`);
    }
    // Followers still learn every commit (the next append or a heartbeat carries it).
    const lastIndex = lazy.c.node(lazy.leader).appliedIndex;
    await waitFor(() => ([1, 2, 3].every((id) => lazy.c.node(id).appliedIndex >= lastIndex) ? true : undefined), 20_000, 'followers to apply the last write');
    await lazy.c.destroy();
    cluster = null;

    // 0 (etcd's behaviour): an append and, unless the follower still has appends in flight
    // (then its ack brings the commit), a commit notice per write.
    const eager = await messagesPerFollower(0);
    for (const n of eager.perFollower) {
      assert.ok(n >= serial + 12, `eager: ${n} messages to a follower for ${serial} writes (${eager.perFollower})`);
    }
  });

  it('close before replay: a start aborted at once, and a stop right after start, are clean and release the WAL', async () => {
    const dir = await tempDir('close-early');
    try {
      const [port] = await freePorts(1);
      const peers = [{ id: 1, url: `http://127.0.0.1:${port}` }];
      const controller = new AbortController();
      const starting = RaftNode.start({ id: 1, peers, dataDir: dir, stateMachine: new LogStateMachine(), signal: controller.signal, walSegmentBytes: 1 << 20 });
      controller.abort();
      await assert.rejects(starting, StoppedError);

      const node = await RaftNode.start({ id: 1, peers, dataDir: dir, stateMachine: new LogStateMachine(), logger: testLogger('n1'), walSegmentBytes: 1 << 20 });
      await node.stop();
      await node.stop(); // idempotent
      assert.equal(node.nodeState, 'stopped');
      await assert.rejects(node.propose(enc('late')), StoppedError);

      // The WAL lock was released: the directory opens again.
      const again = await RaftNode.start({ id: 1, peers, dataDir: dir, stateMachine: new LogStateMachine(), tickMs: 10, walSegmentBytes: 1 << 20 });
      await again.stop();
    } finally {
      await removeDir(dir);
    }
  });

  it('close with proposals in flight: stop waits for the WAL write, rejects what is pending, and every acknowledged entry survives', async () => {
    cluster = await TestCluster.create(1);
    await cluster.startAll();
    await cluster.waitForLeader();
    const node = cluster.node(1);
    await node.propose(enc('foo'));

    const inflight = Array.from({ length: 200 }, (_, k) => node.propose(enc(`bar-${k}`)).then(() => `bar-${k}`));
    const settled = Promise.allSettled(inflight);
    await node.stop();
    const outcomes = await settled;
    const acknowledged = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    for (const o of outcomes) {
      if (o.status === 'rejected') assert.ok(o.reason instanceof StoppedError, String(o.reason));
    }

    const restarted = await cluster.start(1);
    await waitFor(() => (restarted.isLeader ? true : undefined), 10_000, 'the single node to lead again');
    await restarted.readBarrier();
    const applied = cluster.members.get(1)!.sm.applied;
    assert.equal(applied[0], 'foo');
    for (const v of acknowledged) assert.ok(applied.includes(v), `acknowledged ${v} was lost`);
  });

  it('restart from the WAL: all nodes stop and start again with the same state', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const leader = await cluster.waitForLeader();
    const c = cluster;
    for (let k = 0; k < 20; k++) await withRetry(() => c.node(leader).propose(enc(`v${k}`)));
    const before = c.members.get(leader)!.sm.applied.slice();
    await c.stopAll();

    await c.startAll();
    const leader2 = await c.waitForLeader();
    await withRetry(() => c.node(leader2).propose(enc('after-restart')));
    await waitFor(() => ([1, 2, 3].every((id) => c.members.get(id)!.sm.applied.includes('after-restart')) ? true : undefined), 20_000, 'the new entry everywhere');
    for (const id of [1, 2, 3]) {
      assert.deepEqual(c.members.get(id)!.sm.applied, [...before, 'after-restart'], `node ${id}`);
    }
  });

  it('snapshots every snapshotCount entries; a restart recovers from the snapshot + the WAL after it', async () => {
    cluster = await TestCluster.create(3, { snapshotCount: 10, snapshotCatchUpEntries: 3 });
    await cluster.startAll();
    const leader = await cluster.waitForLeader();
    const c = cluster;
    for (let k = 0; k < 35; k++) await withRetry(() => c.node(leader).propose(enc(`s${k}`)));
    await waitFor(() => ([1, 2, 3].every((id) => c.members.get(id)!.sm.applied.length >= 35) ? true : undefined), 20_000, 'every node to apply 35 entries');
    for (const id of [1, 2, 3]) {
      assert.ok(c.members.get(id)!.sm.snapshots >= 2, `node ${id} took snapshots`);
      assert.ok(c.node(id).status().snapshotIndex >= 20);
      const snaps = await readdir(path.join(c.members.get(id)!.dataDir, 'snap'));
      assert.ok(snaps.length >= 1, `node ${id} has snapshot files: ${snaps.join(',')}`);
    }
    const before = c.members.get(1)!.sm.applied.slice();
    await c.stopAll();

    await c.startAll();
    for (const id of [1, 2, 3]) {
      const sm = c.members.get(id)!.sm;
      assert.equal(sm.restores, 1, `node ${id} restored its snapshot at start`);
    }
    await c.waitForLeader();
    await waitFor(() => ([1, 2, 3].every((id) => c.members.get(id)!.sm.applied.length >= before.length) ? true : undefined), 20_000, 'replay after the snapshot');
    for (const id of [1, 2, 3]) assert.deepEqual(c.members.get(id)!.sm.applied, before, `node ${id}`);
  });

  it('a follower that was down across compaction catches up by snapshot', async () => {
    cluster = await TestCluster.create(3, { snapshotCount: 8, snapshotCatchUpEntries: 2 });
    await cluster.startAll();
    const c = cluster;
    let leader = await c.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    await c.stop(follower);
    for (let k = 0; k < 40; k++) {
      await withRetry(() => {
        leader = c.running().find((n) => n.isLeader)?.id ?? leader;
        return c.node(leader).propose(enc(`c${k}`));
      });
    }
    const leaderSm = c.members.get(leader)!.sm;
    assert.ok(c.node(leader).status().snapshotIndex > 8, 'the leader compacted its log');

    await c.start(follower);
    const fsm = c.members.get(follower)!;
    await waitFor(() => (fsm.sm.applied.length >= leaderSm.applied.length ? true : undefined), 20_000, 'the follower to catch up');
    assert.ok(fsm.sm.restores >= 1, 'the follower installed a snapshot sent by the leader');
    assert.deepEqual(fsm.sm.applied, leaderSm.applied);
  });

  it('adds a 4th node (join) that catches up, and proposals made on it commit everywhere', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    for (let k = 0; k < 10; k++) await withRetry(() => c.node(leader).propose(enc(`a${k}`)));

    const [port] = await freePorts(1);
    const m4 = c.define(4, port!);
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    // Asked on a follower: the ConfChange is forwarded to the leader like any proposal.
    const conf = await withRetry(() => c.node(follower).addVoter(4, m4.url));
    assert.deepEqual([...conf.voters].sort(), [1, 2, 3, 4]);

    const n4 = await c.start(4, { join: true });
    await waitFor(() => (m4.sm.applied.length >= 10 ? true : undefined), 20_000, 'node 4 to catch up');
    await withRetry(() => n4.propose(enc('from-4')));
    await waitFor(() => ([1, 2, 3, 4].every((id) => c.members.get(id)!.sm.applied.includes('from-4')) ? true : undefined), 20_000, 'from-4 everywhere');
    assert.deepEqual(m4.sm.applied, c.members.get(1)!.sm.applied);
    assert.equal(n4.status().members.voters.length, 4);
    assert.equal(n4.status().members.voters.find((v) => v.id === 1)?.url, c.members.get(1)!.url);
  });

  it('adds a learner that replicates without voting, then promotes it', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    await withRetry(() => c.node(leader).propose(enc('l0')));
    const [port] = await freePorts(1);
    const m4 = c.define(4, port!);
    const conf = await withRetry(() => c.node(leader).addLearner(4, m4.url));
    assert.deepEqual(conf.learners, [4]);
    assert.ok(!conf.voters.includes(4));
    const n4 = await c.start(4, { join: true });
    await withRetry(() => c.node(leader).propose(enc('l1')));
    await waitFor(() => (m4.sm.applied.includes('l1') ? true : undefined), 20_000, 'the learner to replicate');
    const progress = c.node(leader).status().progress;
    assert.equal(progress?.find((p) => p.id === 4)?.isLearner, true);
    await assert.rejects(c.node(leader).promoteLearner(2), /not a learner/);

    const promoted = await withRetry(() => c.node(leader).promoteLearner(4));
    assert.ok(promoted.voters.includes(4));
    assert.deepEqual(promoted.learners, []);
    await waitFor(() => (n4.status().members.voters.some((v) => v.id === 4) ? true : undefined), 10_000, 'node 4 to see itself as a voter');
  });

  it('with forwardProposals: false a follower answers NotLeaderError naming the leader and its URL', async () => {
    cluster = await TestCluster.create(3, { forwardProposals: false });
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    const err = await c.node(follower).propose(enc('x')).then(
      () => assert.fail('a follower must not accept the proposal'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof NotLeaderError, String(err));
    assert.equal(err.leaderId, leader);
    assert.equal(err.leaderUrl, c.members.get(leader)!.url);
    assert.equal(await c.node(leader).propose(enc('y')) > 0, true);
  });

  it('removes a member: it stops with reason "removed" and the rest keep committing', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    const victim = [1, 2, 3].find((id) => id !== leader)!;
    const victimStopped = c.node(victim).stopped;
    await withRetry(() => c.node(leader).propose(enc('before')));

    const conf = await withRetry(() => c.node(leader).removeMember(victim));
    assert.ok(!conf.voters.includes(victim));
    const ev: StoppedEvent = await victimStopped;
    assert.equal(ev.reason, 'removed');

    await withRetry(() => c.node(leader).propose(enc('after')));
    const rest = [1, 2, 3].filter((id) => id !== victim);
    await waitFor(() => (rest.every((id) => c.members.get(id)!.sm.applied.includes('after')) ? true : undefined), 20_000, 'after on the remaining nodes');
    assert.equal(c.node(leader).status().members.voters.length, 2);
  });

  it('transfers leadership to a chosen voter', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    await withRetry(() => c.node(leader).propose(enc('x')));
    const target = [1, 2, 3].find((id) => id !== leader)!;
    const changes: number[] = [];
    c.node(target).on('leader-change', (e) => changes.push(e.leader));
    await withRetry(() => c.node(leader).transferLeadership(target));
    await waitFor(() => (c.node(target).isLeader ? true : undefined), 10_000, 'the target to lead');
    assert.equal(await c.waitForLeader(), target);
    assert.ok(changes.includes(target));
    await withRetry(() => c.node(target).propose(enc('y')));
  });

  it('readBarrier on a follower after writes sees them; a proposal with no leader is NoLeaderError', async () => {
    cluster = await TestCluster.create(3);
    await cluster.startAll();
    const c = cluster;
    const leader = await c.waitForLeader();
    const follower = [1, 2, 3].find((id) => id !== leader)!;
    for (let round = 0; round < 5; round++) {
      const value = `w${round}`;
      await withRetry(() => c.node(leader).propose(enc(value)));
      // No sleeping: the barrier alone must make the write visible on the follower.
      const readIndex = await withRetry(() => c.node(follower).readBarrier());
      assert.ok(readIndex > 0);
      assert.ok(c.members.get(follower)!.sm.applied.includes(value), `follower misses ${value}`);
    }
    // Many concurrent barriers share ReadIndex rounds and all resolve.
    const many = await Promise.all(Array.from({ length: 50 }, () => withRetry(() => c.node(follower).readBarrier())));
    assert.equal(many.length, 50);

    // Stop two nodes: the survivor loses its leader (checkQuorum). Calls wait for a leader
    // within their timeout and then fail with NoLeaderError; fail-fast ones fail at once.
    const survivor = follower;
    for (const id of [1, 2, 3]) if (id !== survivor) await c.stop(id);
    await waitFor(() => (c.node(survivor).leaderId === 0 ? true : undefined), 10_000, 'the survivor to lose its leader');
    await assert.rejects(c.node(survivor).propose(enc('nope'), { timeoutMs: 300 }), (err: unknown) => err instanceof NoLeaderError && err.retryable && err.waitedMs === 300);
    await assert.rejects(c.node(survivor).propose(enc('nope'), { waitForLeader: false }), (err: unknown) => err instanceof NoLeaderError && err.waitedMs === 0);
    await assert.rejects(c.node(survivor).readBarrier({ timeoutMs: 300 }), (err: unknown) => err instanceof NoLeaderError && err.waitedMs === 300);
  });

  it('fail-stop: a failed WAL fsync stops the node, rejects pending calls with the cause, and closes its listener', async () => {
    let failSync = false;
    const backend = createJsBackend('test: fdatasync fault injection', {
      fs: {
        fdatasync: (fd, callback) => {
          if (failSync) {
            const err: NodeJS.ErrnoException = new Error('EIO: injected fdatasync failure');
            err.code = 'EIO';
            setImmediate(() => callback(err));
            return;
          }
          fs.fdatasync(fd, callback);
        },
      },
    });
    cluster = await TestCluster.create(1, { walBackend: backend });
    await cluster.startAll();
    await cluster.waitForLeader();
    const node = cluster.node(1);
    await node.propose(enc('ok'));

    const fatal = new Promise<Error>((resolve) => node.once('fatal', (e) => resolve(e.error)));
    failSync = true;
    const err = await node.propose(enc('doomed')).then(
      () => assert.fail('a proposal must not be acknowledged on a failed WAL'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StoppedError, String(err));
    assert.match(String((err as StoppedError).cause), /EIO/);
    assert.match((await fatal).message, /EIO/);
    const stopped = await node.stopped;
    assert.equal(stopped.reason, 'fatal');
    assert.equal(node.nodeState, 'stopped');
    await assert.rejects(node.propose(enc('after')), StoppedError);

    // The peer listener is closed: its port can be bound again.
    const { port } = new URL(cluster.members.get(1)!.url);
    await new Promise<void>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(Number(port), '127.0.0.1', () => s.close(() => resolve()));
    });
  });
});
