import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/node/errors.js';
import { resolveOptions, type RaftNodeOptions } from '../../src/node/options.js';

const base = (): RaftNodeOptions => ({
  id: 1,
  peers: [{ id: 1, url: 'http://127.0.0.1:1' }],
  dataDir: '/nonexistent-never-opened',
  stateMachine: { apply: () => undefined, snapshot: () => new Uint8Array(), restore: () => {} },
});

describe('RaftNode options', function () {
  it('defaults: pre-vote, CheckQuorum and quorum-sized ReadIndex rounds', function () {
    const o = resolveOptions(base());
    assert.equal(o.preVote, true);
    assert.equal(o.checkQuorum, true);
    assert.equal(o.readIndexFanout, 'quorum');
    assert.equal(o.idleSpinUs, 1000);
    assert.equal(o.waitForLeader, true);
    assert.equal(resolveOptions({ ...base(), waitForLeader: false }).waitForLeader, false);
    assert.equal(resolveOptions({ ...base(), idleSpinUs: 0 }).idleSpinUs, 0);
    assert.equal(resolveOptions({ ...base(), readIndexFanout: 'all' }).readIndexFanout, 'all');
    assert.equal(o.maxPendingProposals, 10_000);
    assert.equal(o.maxPendingReads, 10_000);
    assert.equal(o.maxUncommittedEntriesSize, 1024 * 1024 * 1024);
    assert.equal(resolveOptions({ ...base(), maxUncommittedEntriesSize: 0 }).maxUncommittedEntriesSize, 0);
    assert.equal(o.snapshotBytesMax, 8 * 1024 * 1024 * 1024);
    assert.equal(resolveOptions({ ...base(), snapshotBytesMax: 0 }).snapshotBytesMax, Number.MAX_SAFE_INTEGER, '0 = unlimited');
    assert.equal(resolveOptions({ ...base(), snapshotBytesMax: 1000 }).snapshotBytesMax, 1000);
  });

  it('rejects bad values with InvalidArgumentError naming the option', function () {
    const cases: Array<[Partial<RaftNodeOptions>, RegExp]> = [
      [{ readIndexFanout: 'some' as 'all' }, /readIndexFanout/],
      [{ idleSpinUs: -1 }, /idleSpinUs/],
      [{ idleSpinUs: 200_000 }, /idleSpinUs must be at most/],
      [{ walMode: 'fast' as 'auto' }, /walMode/],
      [{ dirSync: 'maybe' as 'auto' }, /dirSync/],
      [{ heartbeatTicks: 10, electionTicks: 10 }, /heartbeatTicks/],
      [{ maxPendingProposals: 0 }, /maxPendingProposals/],
      [{ maxPendingReads: 1.5 }, /maxPendingReads/],
      [{ maxUncommittedEntriesSize: -1 }, /maxUncommittedEntriesSize/],
      [{ waitForLeader: 'no' as unknown as boolean }, /waitForLeader/],
      [{ snapshotBytesMax: -1 }, /snapshotBytesMax/],
      [{ stateMachine: { ...base().stateMachine, snapshotStream: async function* () {} } }, /snapshotStream\(\) and restoreStream\(source\) go together/],
    ];
    for (const [patch, re] of cases) {
      assert.throws(() => resolveOptions({ ...base(), ...patch }), (e: unknown) => e instanceof InvalidArgumentError && re.test(e.message), JSON.stringify(patch));
    }
  });
});
