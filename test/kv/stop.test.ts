/**
 * Stopping the leader (SIGTERM) with writes in flight, on real processes: the answer each
 * write got must be true to what happened to it.
 *
 * - 204: applied (readable on the survivors);
 * - 503 (+ Retry-After): nothing was proposed, so the survivors must NOT have it, and the
 *   answer never names the stopping node as the leader to retry on;
 * - 504 outcome_unknown: either way.
 *
 * (Before the fix, a stopping node answered every pending write 503 "stopping" — including
 * writes it had already proposed, several of which the survivors then committed.)
 */

import assert from 'node:assert/strict';

import { KvCluster, waitFor, type HttpResult } from './fixtures/cluster.js';

interface Answer {
  key: string;
  value: string;
  result: HttpResult;
}

describe('kv: stopping a leader with writes in flight (processes)', function () {
  let cluster: KvCluster | null = null;

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && cluster !== null) console.error(cluster.dumpLogs());
    await cluster?.stop();
    cluster = null;
  });

  it('SIGTERM: every 503 was not applied, every 204 was, and no 503 names the stopping node as leader', async function () {
    const c = (cluster = await KvCluster.start({ size: 3 }));
    const leaderId = await c.waitForLeader();
    const leader = c.node(leaderId);
    const answers: Answer[] = [];
    let acked = 0;
    const writers = Array.from({ length: 24 }, async (_, w) => {
      for (let i = 0; ; i++) {
        const key = `stop-${w}-${i}`;
        const value = `v-${w}-${i}`;
        let result: HttpResult;
        try {
          result = await leader.put(key, value);
        } catch {
          return; // the listener is closed: nothing reached the node
        }
        answers.push({ key, value, result });
        if (result.status !== 204) return; // this writer's last answer: one per client
        acked++;
      }
    });
    await waitFor('writes flowing through the leader', 60_000, () => (acked >= 100 ? true : undefined), 5);
    const exit = await leader.kill('SIGTERM');
    await Promise.all(writers);
    assert.deepEqual(exit, { code: 0, signal: null });

    const survivor = c.running[0]!;
    await c.waitForLeader(60_000);
    const byStatus = new Map<number, number>();
    for (const a of answers) byStatus.set(a.result.status, (byStatus.get(a.result.status) ?? 0) + 1);
    console.log(`      answers by status: ${JSON.stringify(Object.fromEntries(byStatus))}`);
    const refusedButApplied: string[] = [];
    const namesStoppingLeader: string[] = [];
    for (const a of answers) {
      const { status, body } = a.result;
      assert.ok([204, 503, 504].includes(status), `${a.key}: unexpected ${status} ${body}`);
      if (status === 204) {
        const r = await c.getOk(survivor.id, a.key);
        assert.equal(r.body, a.value, `${a.key} was acknowledged (204) but is not on the survivors`);
      } else if (status === 503) {
        assert.equal(a.result.headers.get('retry-after'), '1');
        const json = JSON.parse(body) as { leaderId?: number; error: string };
        if (json.leaderId === leaderId) namesStoppingLeader.push(a.key);
        const r = await c.getOk(survivor.id, a.key);
        if (r.status !== 404) refusedButApplied.push(`${a.key} (${json.error})`);
      } else {
        assert.equal(JSON.parse(body).error, 'outcome_unknown', body);
      }
    }
    assert.deepEqual({ refusedButApplied, namesStoppingLeader }, { refusedButApplied: [], namesStoppingLeader: [] },
      `writes answered 503 (nothing proposed) that the survivors applied, and 503s naming the stopping node ${leaderId} as leader`);
  });
});
