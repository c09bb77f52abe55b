/**
 * RaftNode's two "your proposal was appended but will not resolve normally" errors:
 *
 * - ProposalLostError: the leader that appended our entry is cut off before it commits, the
 *   rest elect a new leader that commits different entries at that index, and when the old
 *   leader hears from it again the overwrite is detected on commit.
 * - OutcomeUnknownError: same partition, but the new leader compacts its log past our index,
 *   so the old leader is caught up with a snapshot and cannot tell whether our entry was in it.
 *
 * Partitions are real: every directed link between two nodes goes through a TCP proxy on
 * 127.0.0.1 that the test can cut (existing connections destroyed, new ones refused) and heal.
 * Each node is told the proxies' URLs for its peers and listens on its own real port. All
 * waiting is on conditions with deadlines.
 */

import assert from 'node:assert/strict';
import * as net from 'node:net';

import { OutcomeUnknownError, ProposalLostError, RaftNodeError, type RaftNode, type RaftNodeOptions } from '../../src/node/index.js';
import { TestCluster, enc, freePorts, waitFor, withRetry } from './helpers.js';

/** A TCP forwarder for one direction of one link (from one node to another node's server). */
class LinkProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private cut = false;

  constructor(readonly targetPort: number) {
    this.server = net.createServer((client) => this.onConnection(client));
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
  }

  private onConnection(client: net.Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined); // resets are expected when the link is cut
      s.on('close', () => {
        this.sockets.delete(s);
        (s === client ? upstream : client).destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Drops everything in flight and refuses new connections until healed. */
  partition(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  heal(): void {
    this.cut = false;
  }

  async close(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A 3-node TestCluster whose every directed link goes through a LinkProxy. */
class ProxiedCluster {
  private constructor(
    readonly cluster: TestCluster,
    /** links.get(`${from}->${to}`) */
    private readonly links: Map<string, LinkProxy>,
    private readonly proxyPorts: Map<string, number>,
  ) {}

  static async create(n: number, extra: Partial<RaftNodeOptions<number>>): Promise<ProxiedCluster> {
    const cluster = await TestCluster.create(n, extra);
    const ids = [...cluster.members.keys()];
    const pairs = ids.flatMap((from) => ids.filter((to) => to !== from).map((to) => [from, to] as const));
    const ports = await freePorts(pairs.length);
    const links = new Map<string, LinkProxy>();
    const proxyPorts = new Map<string, number>();
    try {
      for (const [k, [from, to]] of pairs.entries()) {
        const targetPort = Number(new URL(cluster.members.get(to)!.url).port);
        const proxy = new LinkProxy(targetPort);
        links.set(`${from}->${to}`, proxy);
        await proxy.listen(ports[k]!);
        proxyPorts.set(`${from}->${to}`, ports[k]!);
      }
    } catch (err) {
      await Promise.all([...links.values()].map((l) => l.close()));
      await cluster.destroy();
      throw err;
    }
    return new ProxiedCluster(cluster, links, proxyPorts);
  }

  /** Node `id` listens on its own port and reaches every peer through that link's proxy. */
  peersSeenBy(id: number): { id: number; url: string }[] {
    return [...this.cluster.members.values()].map((m) =>
      m.id === id ? { id, url: m.url } : { id: m.id, url: `http://127.0.0.1:${this.proxyPorts.get(`${id}->${m.id}`)!}` },
    );
  }

  async startAll(): Promise<void> {
    await Promise.all([...this.cluster.members.keys()].map((id) => this.cluster.start(id, { peers: this.peersSeenBy(id) })));
  }

  node(id: number): RaftNode<number> {
    return this.cluster.node(id);
  }

  /** Cuts every link to and from `id`, both directions. */
  isolate(id: number): void {
    for (const [key, link] of this.links) {
      const [from, to] = key.split('->').map(Number);
      if (from === id || to === id) link.partition();
    }
  }

  healAll(): void {
    for (const link of this.links.values()) link.heal();
  }

  async destroy(): Promise<void> {
    await this.cluster.stopAll();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.cluster.destroy();
  }
}

/** Waits until the nodes `ids` agree on a leader among themselves; returns it. */
async function waitForLeaderAmong(c: ProxiedCluster, ids: number[], timeoutMs = 15_000): Promise<number> {
  return waitFor(() => {
    const nodes = ids.map((id) => c.node(id));
    const leaders = new Set(nodes.map((n) => n.leaderId));
    const [leader] = [...leaders];
    if (leaders.size === 1 && ids.includes(leader!) && c.node(leader!).isLeader) return leader;
    return undefined;
  }, timeoutMs, `a leader among nodes ${ids.join(',')}`);
}

function isRaftNodeError(e: unknown): e is RaftNodeError {
  return e instanceof RaftNodeError;
}

/**
 * Makes the leader accept a proposal it cannot commit: cuts it off, proposes on it, and waits
 * until the entry is in its log. Returns the pending proposal (already given a rejection
 * handler so an early settle is not an unhandled rejection), where it landed, and the others.
 */
async function proposeOnIsolatedLeader(c: ProxiedCluster, payload: string) {
  // A loaded machine can lose leadership between our look and the cut (or the proposal can hit
  // a step-down); that is setup failing, not the behaviour under test, so heal and try again.
  for (let attempt = 1; ; attempt++) {
    const oldLeader = await c.cluster.waitForLeader();
    const others = [...c.cluster.members.keys()].filter((id) => id !== oldLeader);
    const leaderNode = c.node(oldLeader);
    // Everyone in sync first, so the isolated entry's index is the next one everywhere.
    await withRetry(() => leaderNode.propose(enc(`before-partition-${attempt}`)));
    const lastBefore = leaderNode.status().lastIndex;
    await waitFor(() => (others.every((id) => c.node(id).appliedIndex >= lastBefore) ? true : undefined), 10_000, 'followers to apply the pre-partition entry');

    c.isolate(oldLeader);
    // Normally still leader right after the cut (checkQuorum needs an election timeout to
    // notice), so the entry is appended locally and replicated nowhere.
    if (leaderNode.isLeader) {
      const proposal = leaderNode.propose(enc(payload), { timeoutMs: 30_000 });
      const outcome = proposal.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const lostIndex = lastBefore + 1;
      const appended = await waitFor(
        () => (leaderNode.status().lastIndex >= lostIndex ? true : undefined),
        10_000,
        'the isolated leader to append the proposal',
      ).then(() => true, () => false);
      const settledEarly = await Promise.race([outcome, Promise.resolve(null)]);
      if (appended && settledEarly === null) return { oldLeader, others, outcome, lostIndex };
      // Only a retryable "nothing was proposed" rejection may be retried.
      assert.ok(settledEarly !== null && !settledEarly.ok && isRaftNodeError(settledEarly.error) &&
        (settledEarly.error.code === 'NO_LEADER' || settledEarly.error.code === 'NOT_LEADER'),
        `the isolated proposal neither stayed pending nor was refused: ${JSON.stringify(settledEarly)}`);
    }
    assert.ok(attempt < 5, 'could not isolate a leader with a pending proposal in 5 attempts');
    c.healAll();
  }
}

describe('RaftNode proposal errors under partitions', function () {
  this.timeout(90_000);
  let proxied: ProxiedCluster | null = null;

  afterEach(async () => {
    if (proxied !== null) await proxied.destroy();
    proxied = null;
  });

  it('ProposalLostError: a partitioned leader\'s uncommitted entry is overwritten by the new leader', async () => {
    proxied = await ProxiedCluster.create(3, {});
    const c = proxied;
    await c.startAll();
    const { oldLeader, others, outcome, lostIndex } = await proposeOnIsolatedLeader(c, 'lost-write');

    const newLeader = await waitForLeaderAmong(c, others);
    for (let k = 0; k < 3; k++) await withRetry(() => c.node(newLeader).propose(enc(`majority-${k}`)));
    const majorityCommit = c.node(newLeader).status().commit;
    assert.ok(majorityCommit >= lostIndex, `the majority committed past index ${lostIndex} (commit ${majorityCommit})`);

    // The old leader cannot have settled it: nothing reached it yet.
    const early = await Promise.race([outcome, Promise.resolve('pending' as const)]);
    assert.equal(early, 'pending', 'the isolated proposal settled before the partition healed');

    c.healAll();
    const result = await outcome;
    assert.equal(result.ok, false, `the overwritten proposal resolved with ${result.ok ? String(result.value) : ''}`);
    const error = (result as { ok: false; error: unknown }).error;
    assert.ok(error instanceof ProposalLostError, `expected ProposalLostError, got ${String(error)}`);
    assert.ok(isRaftNodeError(error));
    assert.equal(error.code, 'PROPOSAL_LOST');
    assert.equal(error.retryable, true);
    assert.equal(error.index, lostIndex);
    assert.equal(error.name, 'ProposalLostError');

    // And it really was not applied anywhere; the old leader now has the majority's log.
    await waitFor(() => (c.node(oldLeader).appliedIndex >= majorityCommit ? true : undefined), 15_000, 'the old leader to catch up');
    for (const id of [oldLeader, ...others]) {
      const applied = c.cluster.members.get(id)!.sm.applied;
      assert.ok(!applied.includes('lost-write'), `node ${id} applied the lost write: ${applied.join(',')}`);
      assert.ok(applied.includes('majority-2'), `node ${id} misses the majority's writes: ${applied.join(',')}`);
    }
  });

  it('OutcomeUnknownError: the partitioned leader is caught up by a snapshot covering its pending entry', async () => {
    // Snapshot often and keep no entries behind it, so the new leader has compacted past the
    // isolated entry's index and must send a snapshot.
    proxied = await ProxiedCluster.create(3, { snapshotCount: 4, snapshotCatchUpEntries: 0 });
    const c = proxied;
    await c.startAll();
    const { oldLeader, others, outcome, lostIndex } = await proposeOnIsolatedLeader(c, 'unknown-write');

    const newLeader = await waitForLeaderAmong(c, others);
    let k = 0;
    while (c.node(newLeader).status().snapshotIndex <= lostIndex) {
      await withRetry(() => c.node(newLeader).propose(enc(`majority-${k++}`)));
      assert.ok(k < 200, 'the new leader never took a snapshot past the isolated index');
    }
    const snapshotIndex = c.node(newLeader).status().snapshotIndex;
    const restoresBefore = c.cluster.members.get(oldLeader)!.sm.restores;

    const early = await Promise.race([outcome, Promise.resolve('pending' as const)]);
    assert.equal(early, 'pending', 'the isolated proposal settled before the partition healed');

    c.healAll();
    const result = await outcome;
    assert.equal(result.ok, false, `the proposal resolved with ${result.ok ? String(result.value) : ''}`);
    const error = (result as { ok: false; error: unknown }).error;
    assert.ok(error instanceof OutcomeUnknownError, `expected OutcomeUnknownError, got ${String(error)}`);
    assert.ok(isRaftNodeError(error));
    assert.equal(error.code, 'OUTCOME_UNKNOWN');
    assert.equal(error.retryable, false);
    assert.equal(error.name, 'OutcomeUnknownError');
    assert.ok(error.message.includes(`around index ${lostIndex}`), error.message);

    // It really was a snapshot install that settled it.
    const oldSm = c.cluster.members.get(oldLeader)!.sm;
    assert.ok(oldSm.restores > restoresBefore, 'the old leader never restored a snapshot');
    assert.ok(c.node(oldLeader).status().snapshotIndex >= snapshotIndex);
    assert.ok(!oldSm.applied.includes('unknown-write'), 'the overwritten write is in the restored state');
  });
});
