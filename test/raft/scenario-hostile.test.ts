/**
 * Hostile peer messages against the core (seeded; RAFT_TEST_SEED reproduces a failure): a
 * three-node cluster under proposals and ticks receives messages that decode fine but that no
 * correct node sends (see hostile-messages.ts). Each one the shared check (messageProblem,
 * which the transport applies too) flags is refused by RawNode.step with StepError; every
 * other one is stepped. No message may trip an invariant of the core, and afterwards the
 * cluster elects a leader, commits, and every node applied the same entries.
 */
import assert from 'node:assert/strict';
import { ProposalDroppedError, SeededRandom, StepError } from '../../src/raft/index.js';
import { messageProblem } from '../../src/raft/message-check.js';
import { EntryType, type Entry } from '../../src/raft/types.js';
import { Cluster, TEST_SEED, bytes, reportSeedOnFailure, text } from './harness.js';
import { HostileGenerator } from './hostile-messages.js';

/**
 * Delivers messages for at most `rounds` rounds, leaving the rest in flight: two followers
 * misled into forwarding requests to each other (a forged leader message can do that; the real
 * leader's next heartbeat ends it) would make Cluster.stabilize() loop.
 */
function pump(c: Cluster, rounds = 50): void {
  for (let k = 0; k < rounds; k++) {
    const readies = c.processReadies();
    if (c.queue.length === 0 && !readies) return;
    c.deliverQueued();
  }
}

/** Ticks every node `n` times, pumping messages after each tick. */
function tick(c: Cluster, ids: number[], n: number): void {
  for (let i = 0; i < n; i++) {
    for (const id of ids) c.get(id).tick();
    pump(c);
  }
}

describe('hostile peer messages (core)', function () {
  afterEach(reportSeedOnFailure);

  for (const preVote of [true, false]) {
    it(`are refused or survived; the cluster still agrees and commits (preVote ${preVote})`, function () {
      const ids = [1, 2, 3];
      const c = new Cluster(ids, { electionTick: 10, checkQuorum: true, preVote, seed: TEST_SEED });
      c.elect(1);
      const gen = new HostileGenerator(TEST_SEED * 31 + (preVote ? 1 : 0), { snapshotData: () => bytes('snapshot'), runtimeChecks: false });
      const rnd = new SeededRandom(TEST_SEED * 17 + 5);
      let refused = 0;
      let stepped = 0;
      for (let round = 0; round < 2000; round++) {
        if (rnd.intn(3) === 0) {
          const leader = c.currentLeader();
          if (leader !== undefined) {
            try {
              leader.node.propose(bytes(`p${round}`));
            } catch (err) {
              if (!(err instanceof ProposalDroppedError)) throw err;
            }
          }
        }
        if (rnd.intn(3) === 0) tick(c, ids, 1);
        const target = c.get(ids[rnd.intn(ids.length)]!);
        const st = target.status;
        const h = gen.next({
          id: target.id,
          term: st.term,
          commit: st.commit,
          lastIndex: st.lastIndex,
          members: ids,
          commitOf: (id) => c.get(id).status.commit,
        });
        const problem = messageProblem(h.m);
        const where = `round ${round}, ${h.what} to node ${target.id}`;
        if (h.refused) {
          assert.notEqual(problem, null, `${where}: not flagged`);
          assert.throws(() => target.step(h.m), StepError, where);
          refused++;
        } else {
          assert.equal(problem, null, `${where}: flagged: ${problem}`);
          target.step(h.m); // must not throw (an InvariantError would stop a node)
          stepped++;
        }
        pump(c);
      }
      assert.ok(refused > 200 && stepped > 200, `refused ${refused}, stepped ${stepped}`);

      // The storm is over: a leader emerges, commits, and every node applied the same log.
      let committed = false;
      for (let i = 0; i < 500 && !committed; i++) {
        tick(c, ids, 1);
        const leader = c.currentLeader();
        if (leader === undefined) continue;
        try {
          leader.node.propose(bytes('final'));
        } catch (err) {
          if (!(err instanceof ProposalDroppedError)) throw err;
          continue;
        }
        tick(c, ids, 5);
        committed = ids.every((id) => c.get(id).appliedData().includes('final'));
      }
      assert.ok(committed, 'the cluster never committed a proposal on every node after the storm');
      const view = (e: Entry): string => `${e.index}@${e.term}:${e.type === EntryType.Normal ? text(e.data) : 'cc'}`;
      const applied = ids.map((id) => c.get(id).applied.map(view));
      const common = Math.min(...applied.map((log) => log.length));
      for (const [k, log] of applied.entries()) {
        assert.deepEqual(log.slice(0, common), applied[0]!.slice(0, common), `nodes ${ids[0]} and ${ids[k]} applied different entries`);
      }
    });
  }
});
