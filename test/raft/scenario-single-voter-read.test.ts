/**
 * ReadIndex on the only voter after a restart. A commit-only hard state is written without
 * fsync, so a node killed right after acknowledging writes can come back with a durable commit
 * index below entries it acknowledged (they are in its log, committed, but it does not know).
 * Its state machine is rebuilt only up to that commit index. A read served at that index would
 * miss acknowledged writes: the only voter, like any leader, must first commit an entry of its
 * own term (which commits everything before it) (thesis §6.4, etcd's pendingReadIndexMessages).
 */
import assert from 'node:assert/strict';
import { MessageType, Role } from '../../src/raft/types.js';
import { TestNode, bytes, entsWithTerms, newStorage, reportSeedOnFailure, text } from './harness.js';

describe('ReadIndex on a single voter', function () {
  afterEach(reportSeedOnFailure);

  for (const readOnlyOption of ['safe', 'lease-based'] as const) {
    it(`${readOnlyOption}: after a restart with a lagging commit index, reads wait for an entry of the new term`, function () {
      // Entries 1..5 were acknowledged in term 1; the durable commit index says 2.
      const storage = newStorage({ voters: [1], learners: [2], entries: entsWithTerms(1, [1, 1, 1, 1, 1]), hardState: { term: 1, vote: 1, commit: 2 } });
      const tn = new TestNode(1, { storage, applied: 2, readOnlyOption, checkQuorum: readOnlyOption === 'lease-based' });
      tn.node.campaign();
      assert.equal(tn.role, Role.Leader);
      assert.equal(tn.term, 2);
      tn.node.readIndex(bytes('r1'));
      // The Ready that persists the new term's empty entry (index 6) must not answer the read yet.
      const rd = tn.node.ready();
      assert.deepEqual(rd.readStates.map((r) => r.index), [], 'no read state before an entry of term 2 is committed');
      assert.deepEqual(rd.entries.map((e) => [e.index, e.term]), [[6, 2]]);
      tn.storage.append(rd.entries);
      if (rd.hardState !== null) tn.storage.setHardState(rd.hardState);
      tn.node.advance(rd);
      // Once it is durable it commits, and the read is answered at index 6: everything applied
      // before the read is served includes every acknowledged entry.
      tn.drain();
      assert.deepEqual(tn.readStates.map((r) => [r.index, text(r.context)]), [[6, 'r1']]);
      assert.deepEqual(tn.applied.map((e) => e.index), [3, 4, 5, 6]);
      // Later reads are answered at once (an entry of the term is committed).
      tn.node.readIndex(bytes('r2'));
      tn.drain();
      assert.deepEqual(tn.readStates.map((r) => [r.index, text(r.context)]), [[6, 'r1'], [6, 'r2']]);
    });
  }

  it('a read forwarded by a learner to the only voter waits too, then is answered to the learner', function () {
    const storage = newStorage({ voters: [1], learners: [2], entries: entsWithTerms(1, [1, 1, 1]), hardState: { term: 1, vote: 1, commit: 1 } });
    const tn = new TestNode(1, { storage, applied: 1 });
    tn.node.campaign();
    tn.step({
      type: MessageType.ReadIndex, from: 2, to: 1, term: 0, logTerm: 0, index: 0, entries: [], commit: 0,
      reject: false, rejectHint: 0, snapshot: null, context: bytes('f'),
    });
    const rd = tn.node.ready();
    assert.ok(!rd.messages.some((m) => m.type === MessageType.ReadIndexResp), 'not answered before the commit');
    tn.storage.append(rd.entries);
    if (rd.hardState !== null) tn.storage.setHardState(rd.hardState);
    tn.node.advance(rd);
    const out = tn.drain();
    const resp = out.filter((m) => m.type === MessageType.ReadIndexResp);
    assert.deepEqual(resp.map((m) => [m.to, m.index, text(m.context)]), [[2, 4, 'f']]);
  });
});
