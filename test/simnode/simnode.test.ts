/**
 * The whole-node simulator (sim.ts) as a test: a small seed range runs clean, and a seed
 * replays exactly (same trace hash twice). Seeds and the command to reproduce are printed on
 * failure. The long runs are `npm run sim:node` (see docs/simulation.md).
 */
import assert from 'node:assert/strict';

import { formatFailure, runSeed, type SimNodeOptions } from './sim.js';

const STEPS = 200;

describe('whole-node simulator (test/simnode)', function () {
  this.timeout(120_000);

  it('a seed replays exactly (same trace hash twice)', async function () {
    const options: SimNodeOptions = { seed: 3, steps: STEPS };
    const a = await runSeed(options);
    const b = await runSeed(options);
    assert.equal(a.traceHash, b.traceHash, `seed 3: trace hashes differ (${a.traceHash} vs ${b.traceHash}): the run is not deterministic`);
    assert.deepEqual(a.stats, b.stats);
  });

  // Seed 3 lost its whole WAL before the data directory was created durably; seed 10 was
  // refused with 410 for good after a snapshot carried its re-add.
  it('seeds 1..20 run clean', async function () {
    for (let seed = 1; seed <= 20; seed++) {
      const options: SimNodeOptions = { seed, steps: STEPS };
      const result = await runSeed(options);
      assert.ok(result.ok, formatFailure(result, options));
    }
  });
});
