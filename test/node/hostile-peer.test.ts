/**
 * A running three-node cluster (real sockets, real WALs) whose peer ports receive hostile
 * messages: messages that decode fine but that no correct node sends (mutated indexes, terms,
 * types, entry types, ConfChange data and contexts, snapshot metadata and data; see
 * test/raft/hostile-messages.ts), each from a member as the transport identifies it (the
 * x-raftkv-from header; peers are not authenticated). Whatever the boundary must refuse is
 * answered 400 with a reason; the rest is accepted. No node ever stops, and afterwards the
 * cluster still commits on every node, every node having applied the same entries.
 *
 * Seeded: RAFTKV_FUZZ_SEED=<n> reproduces a run; the seed is printed.
 */

import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';

import { encodeConfChangeContext, encodeSnapshotData } from '../../src/node/envelope.js';
import { encodeConfChange, encodeMessage, encodeMessages } from '../../src/raft/codec.js';
import { SeededRandom } from '../../src/raft/index.js';
import { ConfChangeType, EntryType, MessageType } from '../../src/raft/types.js';
import { HEADER_CLUSTER_ID, HEADER_FROM, HEADER_TO } from '../../src/transport/index.js';
import { HostileGenerator } from '../raft/hostile-messages.js';
import { TestCluster, enc, waitFor, withRetry } from './helpers.js';

const SEED = process.env.RAFTKV_FUZZ_SEED !== undefined ? Number(process.env.RAFTKV_FUZZ_SEED) : randomInt(1, 2 ** 31);
const MESSAGES = 400;

describe('hostile peer messages against running nodes', function () {
  this.timeout(120_000);
  let cluster: TestCluster | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') console.log(`      reproduce with RAFTKV_FUZZ_SEED=${SEED}`);
    await cluster?.destroy();
    cluster = null;
  });

  it('a forwarded Prop of an undecodable ConfChange, or of one naming an unusable URL, is refused by every node', async function () {
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const leader = await c.waitForLeader();
    const [f1, f2] = [1, 2, 3].filter((id) => id !== leader) as [number, number];
    const cc = encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: 4, context: new Uint8Array() });
    const garbage = new Uint8Array([...cc, ...cc, ...cc]); // decodes as three values
    const badUrl = encodeConfChange({
      type: ConfChangeType.AddVoter,
      nodeId: 4,
      context: encodeConfChangeContext({ url: 'ftp://127.0.0.1:9', tag: null }),
    });
    const prop = (from: number, to: number, data: Uint8Array) => encodeMessages([{
      type: MessageType.Prop, from, to, term: 0, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0,
      snapshot: null, context: new Uint8Array(), entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data }],
    }]);
    const post = async (via: number, to: number, body: Uint8Array) => {
      const res = await fetch(`${c.members.get(to)!.url}/raft`, {
        method: 'POST',
        headers: { [HEADER_CLUSTER_ID]: 'raftkv', [HEADER_FROM]: String(via), [HEADER_TO]: String(to) },
        body: Buffer.from(body),
      });
      return { status: res.status, error: (JSON.parse(await res.text()) as { error: string }).error };
    };
    // To the leader, as forwarded by a follower; to a follower, as forwarded by the other one.
    for (const [via, to] of [[f1, leader], [f2, f1]] as const) {
      const a = await post(via, to, prop(via, to, garbage));
      assert.equal(a.status, 400);
      assert.match(a.error, /undecodable ConfChange.*expected one value, found 3/);
      const b = await post(via, to, prop(via, to, badUrl));
      assert.equal(b.status, 400);
      assert.match(b.error, /ConfChange context: .*http/);
    }
    const index = await withRetry(() => c.node(f1).propose(enc('after')));
    await waitFor(() => ([1, 2, 3].every((id) => c.node(id).appliedIndex >= index) ? true : undefined), 10_000, 'all applied');
    for (const id of [1, 2, 3]) {
      assert.equal(c.node(id).nodeState, 'running');
      assert.deepEqual(c.node(id).status().members.voters.map((m) => m.id), [1, 2, 3]);
    }
  });

  it(`are refused (400) or survived; no node stops and the cluster still commits (seed ${SEED})`, async function () {
    console.log(`      seed ${SEED}`);
    const c = (cluster = await TestCluster.create(3));
    await c.startAll();
    const ids = [1, 2, 3];
    const stops: string[] = [];
    for (const id of ids) {
      c.node(id).on('stopped', (e) => stops.push(`node ${id} stopped: ${e.reason}: ${e.detail}`));
    }
    await c.waitForLeader();
    for (let i = 0; i < 5; i++) await withRetry(() => c.node(1 + (i % 3)).propose(enc(`warm-up ${i}`)));

    const snapshotData = () => encodeSnapshotData({
      peerUrls: new Map(),
      stateMachine: enc(JSON.stringify({ applied: [], lastIndex: 0 })),
      proposals: [],
    });
    const gen = new HostileGenerator(SEED, { snapshotData, runtimeChecks: true });
    const rnd = new SeededRandom(SEED + 1);
    const counts = { refused: 0, accepted: 0 };
    const traffic: Promise<unknown>[] = [];
    for (let n = 0; n < MESSAGES; n++) {
      assert.deepEqual(stops, [], `after ${n} messages`);
      const target = c.node(ids[rnd.intn(3)]!);
      const st = target.status();
      const h = gen.next({
        id: target.id,
        term: st.term,
        commit: st.commit,
        lastIndex: st.lastIndex,
        members: ids,
        commitOf: (id) => c.node(id).status().commit,
      });
      // The transport knows a sender only by this header; a forwarded request names its
      // requester in the message and may come through any member.
      const header = h.m.from !== target.id ? h.m.from : ids.find((id) => id !== target.id)!;
      const res = await fetch(`${c.members.get(target.id)!.url}${h.snapshot ? '/raft/snapshot' : '/raft'}`, {
        method: 'POST',
        headers: { [HEADER_CLUSTER_ID]: 'raftkv', [HEADER_FROM]: String(header), [HEADER_TO]: String(target.id) },
        body: Buffer.from(h.snapshot ? encodeMessage(h.m) : encodeMessages([h.m])),
      });
      const body = await res.text();
      const where = `message ${n} (${h.what}) to node ${target.id}: ${res.status} ${body}`;
      if (h.refused) {
        assert.equal(res.status, 400, where);
        assert.ok((JSON.parse(body) as { error: string }).error.length > 0, where);
        counts.refused++;
      } else {
        assert.equal(res.status, 204, where);
        counts.accepted++;
      }
      if (n % 8 === 0) {
        // Some real traffic meanwhile; its outcome does not matter (leaders come and go).
        traffic.push(c.node(ids[rnd.intn(3)]!).propose(enc(`during ${n}`)).catch(() => undefined));
      }
    }
    await Promise.all(traffic);
    console.log(`      ${counts.refused} refused, ${counts.accepted} accepted`);
    assert.ok(counts.refused > 50 && counts.accepted > 50, JSON.stringify(counts));

    // The cluster recovers and commits; every node applies the same entries.
    await c.waitForLeader(30_000);
    const index = await withRetry(() => c.node(1).propose(enc('final')), 30_000);
    await waitFor(() => (ids.every((id) => c.node(id).appliedIndex >= index) ? true : undefined), 30_000, 'every node applied the final entry');
    assert.deepEqual(stops, []);
    for (const id of ids) assert.equal(c.node(id).nodeState, 'running', `node ${id}`);
    const applied = ids.map((id) => c.members.get(id)!.sm.applied);
    const common = Math.min(...applied.map((a) => a.length));
    for (const [k, a] of applied.entries()) {
      assert.ok(a.includes('final'), `node ${ids[k]} applied the final entry`);
      assert.deepEqual(a.slice(0, common), applied[0]!.slice(0, common), `nodes 1 and ${ids[k]} applied the same entries`);
    }
  });
});
