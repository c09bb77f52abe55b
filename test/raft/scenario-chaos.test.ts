/**
 * Seeded random scenarios on the harness (a small cousin of test/sim): partitions, crashes and
 * restarts, compaction, transfers, proposals and ReadIndex reads on 5 nodes, with the Raft safety
 * properties checked after every step and liveness checked after healing. Each run prints its
 * seed on failure; rerun one with RAFT_TEST_SEED=<seed>.
 */
import assert from 'node:assert/strict';
import { ProposalDroppedError, SeededRandom } from '../../src/raft/index.js';
import { ConfChangeType, Role, type NodeId } from '../../src/raft/types.js';
import { Cluster, TestNode, bytes, confChange, reportSeedOnFailure, TEST_SEED, text } from './harness.js';

const ELECTION = 10;
const INITIAL: NodeId[] = [1, 2, 3, 4, 5];

interface PendingRead { node: NodeId; ctx: string; committedBefore: number }

function runChaos(seed: number, steps: number, opts: { preVote: boolean; checkQuorum: boolean; membership: boolean }): void {
  const rnd = new SeededRandom(seed);
  const { membership, ...raftOpts } = opts;
  // With membership changes the initial configuration is bootstrapped into the log, so nodes
  // added later learn it from the log (or a snapshot).
  const c = new Cluster(INITIAL, { electionTick: ELECTION, seed, bootstrap: membership, ...raftOpts });
  const IDS: NodeId[] = [...INITIAL];
  c.autoReportSnapshot = true;
  const leaderOfTerm = new Map<number, NodeId>();
  const appliedAt = new Map<number, string>(); // index → term:data applied by someone
  // index → highest term any node had when the entry was first seen applied: it was committed in
  // a term ≤ this, so every leader of a later term must hold it (leader completeness).
  const committedBy = new Map<number, number>();
  const reads = new Map<string, PendingRead>();
  const seenReads = new Map<NodeId, number>();
  let readSeq = 0;
  const trace: string[] = [];
  const where = (): string => `seed ${seed}, trace:\n  ${trace.slice(-15).join('\n  ')}`;

  const check = (): void => {
    for (const id of IDS) {
      const tn = c.get(id);
      const st = tn.status;
      if (st.role === Role.Leader) {
        const prev = leaderOfTerm.get(st.term);
        assert.ok(prev === undefined || prev === id, `two leaders in term ${st.term}: ${prev} and ${id}; ${where()}`);
        leaderOfTerm.set(st.term, id);
      }
      for (const e of tn.applied) {
        const v = `${e.term}:${text(e.data)}`;
        const other = appliedAt.get(e.index);
        assert.ok(other === undefined || other === v, `index ${e.index} applied as ${other} and ${v} (node ${id}); ${where()}`);
        if (other === undefined) {
          appliedAt.set(e.index, v);
          committedBy.set(e.index, Math.max(...IDS.map((x) => c.get(x).term)));
        }
      }
      // ReadIndex: a read reflects every write committed before it was requested.
      const from = seenReads.get(id) ?? 0;
      for (const rs of tn.readStates.slice(from)) {
        const r = reads.get(text(rs.context));
        assert.ok(r !== undefined && r.node === id, `unexpected read state ${text(rs.context)} on ${id}`);
        assert.ok(rs.index >= r.committedBefore, `read ${r.ctx} on ${id} served at ${rs.index} < ${r.committedBefore} committed before it; ${where()}`);
      }
      seenReads.set(id, tn.readStates.length);
    }
    // Leader completeness: a running leader holds every entry anyone applied (unless compacted).
    for (const l of c.leaders()) {
      const first = l.storage.firstIndex();
      for (const [index, v] of appliedAt) {
        if (index < first || l.term <= committedBy.get(index)!) continue;
        assert.ok(index <= l.storage.lastIndex(), `leader ${l.id} (term ${l.term}) lacks applied index ${index}; ${where()}`);
        assert.equal(String(l.storage.term(index)), v.split(':')[0], `leader ${l.id} has another entry at applied index ${index}; ${where()}`);
      }
    }
  };

  const maxCommit = (): number => Math.max(...IDS.map((id) => c.get(id).status.commit));
  let heals: Array<() => void> = [];
  for (let step = 0; step < steps; step++) {
    const op = rnd.intn(100);
    const id = IDS[rnd.intn(IDS.length)]!;
    try {
      if (op < 30) {
        trace.push(`${step}: propose on ${id}`);
        c.get(id).node.propose(bytes(`s${seed}-${step}`));
      } else if (op < 55) {
        const n = 1 + rnd.intn(5);
        trace.push(`${step}: tick ${n}`);
        c.tick(n, IDS.filter((x) => !c.stopped.has(x)));
      } else if (op < 62) {
        const k = 1 + rnd.intn(2);
        const shuffled = [...IDS].sort(() => rnd.next() - 0.5);
        const a = shuffled.slice(0, k);
        trace.push(`${step}: partition ${a.join(',')} | rest`);
        heals.push(c.partition(a, IDS.filter((x) => !a.includes(x))));
      } else if (op < 70) {
        trace.push(`${step}: heal`);
        for (const h of heals) h();
        heals = [];
      } else if (op < 76) {
        trace.push(`${step}: restart ${id}`);
        c.stop(id);
        c.restart(id);
      } else if (op < 82) {
        const tn = c.get(id);
        if (tn.lastApplied > tn.storage.firstIndex()) {
          trace.push(`${step}: compact ${id} at ${tn.lastApplied}`);
          c.compact(id);
        }
      } else if (op < 88) {
        const l = c.leaders()[0];
        if (l) {
          trace.push(`${step}: transfer ${l.id} -> ${id}`);
          l.node.transferLeader(id);
        }
      } else if (membership && op < 92) {
        const l = c.currentLeader();
        if (l) {
          const cs = l.status.config;
          const choice = rnd.intn(3);
          const fresh = [6, 7].find((x) => !IDS.includes(x));
          if (choice === 0 && fresh !== undefined) {
            trace.push(`${step}: add learner ${fresh} via ${l.id}`);
            c.add(new TestNode(fresh, { voters: [], electionTick: ELECTION, seed, ...raftOpts }));
            IDS.push(fresh);
            l.node.proposeConfChange(confChange(ConfChangeType.AddLearner, fresh));
          } else if (choice === 1 && cs.learners.length > 0) {
            const x = cs.learners[rnd.intn(cs.learners.length)]!;
            trace.push(`${step}: promote ${x} via ${l.id}`);
            l.node.proposeConfChange(confChange(ConfChangeType.PromoteLearner, x));
          } else if (choice === 2 && cs.voters.length > 3) {
            const x = cs.voters[rnd.intn(cs.voters.length)]!;
            trace.push(`${step}: remove ${x} via ${l.id}`);
            l.node.proposeConfChange(confChange(ConfChangeType.RemoveNode, x));
          }
        }
      } else {
        const ctx = `r${seed}-${readSeq++}`;
        const committedBefore = maxCommit();
        trace.push(`${step}: read ${ctx} on ${id} (committed ${committedBefore})`);
        c.get(id).node.readIndex(bytes(ctx));
        reads.set(ctx, { node: id, ctx, committedBefore });
      }
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw new Error(`step ${step} threw ${String(e)}; ${where()}`, { cause: e });
    }
    c.stabilize();
    check();
  }

  // Liveness: heal everything; a leader emerges and a new proposal commits everywhere.
  c.heal();
  const finalIndex = (): number => {
    for (const id of IDS) {
      const e = c.get(id).applied.find((x) => text(x.data) === 'final');
      if (e !== undefined) return e.index;
    }
    return Infinity;
  };
  // A node restored from a snapshot may hold 'final' inside it: compare applied indexes.
  const members = (): NodeId[] => {
    const l = c.currentLeader();
    if (l === undefined) return IDS;
    const cs = l.status.config;
    return [...cs.voters, ...cs.learners];
  };
  const appliedFinal = (id: NodeId): boolean => c.get(id).lastApplied >= finalIndex();
  for (let round = 0; round < 30 && !members().every(appliedFinal); round++) {
    const leader = c.currentLeader();
    if (leader !== undefined && !c.get(leader.id).appliedData().includes('final')) {
      try {
        leader.node.propose(bytes('final'));
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e; // e.g. a transfer in progress: retry
      }
    }
    c.tick(ELECTION);
  }
  check();
  for (const id of members()) {
    assert.ok(appliedFinal(id),
      `node ${id} did not apply the final write after healing; ${where()}\n${IDS.map((x) => JSON.stringify(c.get(x).status)).join('\n')}`);
  }
}

describe('Chaos (seeded random scenarios with safety checks after every step)', function () {
  afterEach(reportSeedOnFailure);
  const RUNS = 12;
  const STEPS = 250;
  for (const [name, opts] of [
    ['plain', { preVote: false, checkQuorum: false, membership: false }],
    ['preVote + checkQuorum', { preVote: true, checkQuorum: true, membership: false }],
    ['membership changes, preVote + checkQuorum', { preVote: true, checkQuorum: true, membership: true }],
  ] as const) {
    it(`${name}: ${RUNS} runs of ${STEPS} steps`, function () {
      for (let i = 0; i < RUNS; i++) runChaos(TEST_SEED * 1000 + i, STEPS, opts);
    });
  }
});
