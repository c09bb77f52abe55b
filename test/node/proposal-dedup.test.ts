/**
 * ProposalDedup: the table of applied proposals that makes a repeated proposal skipped on
 * every replica alike (src/node/proposal-dedup.ts).
 */

import assert from 'node:assert/strict';
import { SeededRandom } from '../../src/raft/index.js';
import { ProposalDedup, type DedupRecord } from '../../src/node/proposal-dedup.js';

const tag = (origin: number, seq: number, incarnation = 7) => ({ origin, incarnation, seq });

describe('ProposalDedup', function () {
  it('admits each (origin, incarnation, seq) once, in any order', function () {
    const d = new ProposalDedup();
    let index = 0;
    assert.equal(d.admit(tag(1, 1), ++index), true);
    assert.equal(d.admit(tag(1, 3), ++index), true);
    assert.equal(d.admit(tag(1, 2), ++index), true, 'overtaken by seq 3 (forwarded twice): still new');
    assert.equal(d.admit(tag(1, 3), ++index), false, 'a re-sent copy');
    assert.equal(d.admit(tag(1, 1), ++index), false);
    assert.equal(d.admit(tag(2, 1), ++index), true, 'another origin');
    assert.equal(d.admit(tag(1, 1, 8), ++index), true, 'another incarnation of the same origin');
  });

  it('remembers a window per origin; older sequence numbers count as applied', function () {
    const d = new ProposalDedup({ origins: 4, window: 3 });
    for (let seq = 1; seq <= 5; seq++) assert.equal(d.admit(tag(1, seq), seq), true);
    // Window {3, 4, 5}: 1 and 2 are below it.
    assert.equal(d.admit(tag(1, 2), 6), false);
    assert.equal(d.admit(tag(1, 5), 7), false);
    assert.equal(d.admit(tag(1, 7), 8), true, 'a gap (seq 6 was a read, or lost) is fine');
    assert.equal(d.admit(tag(1, 6), 9), true, 'inside the window and never seen');
    assert.equal(d.admit(tag(1, 3), 10), false);
    assert.deepEqual(d.toRecords(), [{ o: 1, i: 7, f: 4, x: 9, r: [5, 7] }]);
  });

  it('keeps at most `origins` pairs, forgetting the one applied from longest ago', function () {
    const d = new ProposalDedup({ origins: 2, window: 8 });
    d.admit(tag(1, 1), 1);
    d.admit(tag(2, 1), 2);
    d.admit(tag(1, 2), 3); // origin 1 is now the more recent
    d.admit(tag(3, 1), 4); // evicts origin 2 (last applied at index 2)
    assert.equal(d.size, 2);
    assert.deepEqual(d.toRecords().map((r) => r.o), [1, 3]);
    assert.equal(d.admit(tag(2, 1), 5), true, 'forgotten: admitted again');
  });

  it('encodes to ranges and back; equal tables give equal records whatever the history', function () {
    const a = new ProposalDedup({ origins: 8, window: 100 });
    const b = new ProposalDedup({ origins: 8, window: 100 });
    const seqs = [1, 2, 3, 5, 6, 9];
    seqs.forEach((s, i) => a.admit(tag(4, s), i + 1));
    b.admit(tag(2, 1), 1); // inserted first into b, second into a
    seqs.forEach((s, i) => b.admit(tag(4, s), i + 1));
    a.admit(tag(2, 1), 1);
    // Same content, same last-applied indexes: the same records.
    assert.deepEqual(a.toRecords(), b.toRecords());
    assert.deepEqual(a.toRecords().find((r) => r.o === 4)!.r, [1, 3, 5, 6, 9, 9]);
    const back = ProposalDedup.fromRecords(JSON.parse(JSON.stringify(a.toRecords())), { origins: 8, window: 100 });
    assert.deepEqual(back.toRecords(), a.toRecords());
    assert.equal(back.admit(tag(4, 5), 10), false);
    assert.equal(back.admit(tag(4, 4), 11), true);
  });

  it('a restored table decides exactly like the one it was taken from (seeded)', function () {
    const seed = 20240611;
    const rnd = new SeededRandom(seed);
    const limits = { origins: 5, window: 16 };
    const live = new ProposalDedup(limits);
    let restored: ProposalDedup | null = null;
    for (let index = 1; index <= 3000; index++) {
      // A few origins and incarnations; sequence numbers mostly ascending, some repeated or late.
      const origin = 1 + rnd.intn(4);
      const incarnation = rnd.intn(3);
      const seq = 1 + Math.floor(index / 4) + rnd.intn(20) - 10;
      const t = { origin, incarnation, seq: Math.max(1, seq) };
      const want = live.admit(t, index);
      if (restored !== null) assert.equal(restored.admit(t, index), want, `seed ${seed}: index ${index} ${JSON.stringify(t)}`);
      if (index % 500 === 0) restored = ProposalDedup.fromRecords(JSON.parse(JSON.stringify(live.toRecords())), limits);
    }
  });

  it('refuses malformed records (snapshot data comes from peers)', function () {
    const bad: unknown[] = [
      {},
      [{ o: 0, i: 1, f: 0, x: 1, r: [] }],
      [{ o: 1, i: 1, f: 0, x: 1, r: [1] }],
      [{ o: 1, i: 1, f: 5, x: 1, r: [3, 4] }],
      [{ o: 1, i: 1, f: 0, x: 1, r: [4, 3] }],
      [{ o: 1, i: 1, f: 0, x: 1, r: [1, 2 ** 40] }],
      [{ o: 1, i: 1, f: 0, x: 1, r: [] }, { o: 1, i: 1, f: 0, x: 2, r: [] }],
      [{ o: 1, i: 1, f: 0, x: 1, r: ['1', 2] }],
    ];
    for (const records of bad) assert.throws(() => ProposalDedup.fromRecords(records), TypeError, JSON.stringify(records));
    const ok: DedupRecord[] = [{ o: 1, i: 1, f: 0, x: 1, r: [] }];
    assert.equal(ProposalDedup.fromRecords(ok).size, 1);
  });

  it('records written under a larger window are cut to this one', function () {
    const big = new ProposalDedup({ origins: 4, window: 50 });
    for (let s = 1; s <= 40; s++) big.admit(tag(1, s), s);
    const small = ProposalDedup.fromRecords(big.toRecords(), { origins: 4, window: 10 });
    assert.deepEqual(small.toRecords(), [{ o: 1, i: 7, f: 30, x: 40, r: [31, 40] }]);
    assert.equal(small.admit(tag(1, 30), 41), false);
  });
});
