/**
 * Workload and fault events injected by the simulator: client writes and ReadIndex reads,
 * crashes and restarts, partitions (symmetric, one-way, arbitrary link sets) and heals, flaky
 * network periods, membership changes, leadership transfers and forced campaigns.
 */
import { ConfChangeType, type NodeId } from '../../src/raft/types.js';
import { encodeWrite } from './checker.js';
import { NodeHost, encodeReadId } from './node-host.js';
import type { Sim } from './sim.js';

/** Fresh writes the healing phase must get committed everywhere. */
export const HEAL_WRITES = 3;

/** Upper bound on live processes (members plus hosts waiting to be added). */
const MAX_HOSTS = 8;

type EventName =
  | 'propose' | 'read' | 'crash' | 'reboot' | 'restart' | 'partition' | 'heal' | 'faults'
  | 'conf' | 'transfer' | 'campaign';

export function proposeWrite(sim: Sim, host: NodeHost, writeId: number): boolean {
  const data = encodeWrite(writeId, sim.random.intn(24));
  sim.trace.add('propose', host.id, null, `write ${writeId}`);
  return host.tryInput('propose', (raw) => raw.propose(data));
}

export function injectEvent(sim: Sim): void {
  const running = sim.hostList.filter((h) => h.running);
  const down = sim.hostList.filter((h) => h.state === 'down');
  const partitioned = sim.network.partitioned;
  const weights: [EventName, number][] = [
    ['propose', running.length > 0 ? 45 : 0],
    ['read', running.length > 0 ? 15 : 0],
    ['crash', running.length > 0 ? 4 : 0],
    ['reboot', running.length > 0 ? 3 : 0],
    ['restart', down.length > 0 ? 8 : 0],
    ['partition', partitioned ? 1 : 3],
    ['heal', partitioned ? 3 : 0],
    ['faults', 1],
    ['conf', running.length > 0 ? 3 : 0],
    ['transfer', running.length > 0 ? 2 : 0],
    ['campaign', running.length > 0 ? 2 : 0],
  ];
  let total = 0;
  for (const [, w] of weights) total += w;
  let r = sim.random.next() * total;
  let event: EventName = 'propose';
  for (const [name, w] of weights) {
    if ((r -= w) < 0) {
      event = name;
      break;
    }
  }
  switch (event) {
    case 'propose': {
      const host = sim.random.pick(running);
      const burst = sim.random.chance(0.2) ? sim.random.range(2, 16) : 1;
      if (burst > 1 && sim.random.chance(0.5)) {
        // One multi-entry proposal (all or nothing).
        const first = sim.nextWriteId;
        const batch: Uint8Array[] = [];
        for (let i = 0; i < burst; i++) batch.push(encodeWrite(sim.nextWriteId++, sim.random.intn(24)));
        sim.trace.add('propose', host.id, null, `writes ${first}..${sim.nextWriteId - 1} (one batch)`);
        host.tryInput('proposeBatch', (raw) => raw.proposeBatch(batch));
        return;
      }
      for (let i = 0; i < burst && host.running; i++) proposeWrite(sim, host, sim.nextWriteId++);
      return;
    }
    case 'read':
      return read(sim, sim.random.pick(running));
    case 'crash':
      return crash(sim, running, down.length);
    case 'reboot': {
      // Crash and come straight back: the node rejoins while the same election may be running.
      const host = pickCrashVictim(sim, running);
      sim.trace.add('reboot', host.id, null, host.midReady);
      sim.stats.crashes++;
      host.crash();
      host.start();
      return;
    }
    case 'restart': {
      const host = sim.random.pick(down);
      sim.trace.add('restart', host.id, null, `incarnation ${host.incarnation + 1}`);
      host.start();
      return;
    }
    case 'partition':
      return partition(sim);
    case 'heal':
      sim.network.healAll();
      sim.trace.add('heal-net', 0, null, 'all links restored');
      return;
    case 'faults': {
      const f = sim.random.chance(0.5) ? sim.params.faults : {
        drop: sim.random.pick([0, 0.1, 0.3]),
        duplicate: sim.random.pick([0, 0.05, 0.2]),
        delay: sim.random.pick([0, 0.3, 0.8]),
        maxDelay: sim.random.pick([5, 50, 200]),
      };
      sim.network.faults = f;
      sim.trace.add('faults', 0, null, `drop=${f.drop} dup=${f.duplicate} delay=${f.delay}x${f.maxDelay}`);
      return;
    }
    case 'conf':
      return changeMembership(sim, running);
    case 'transfer': {
      const leader = sim.currentLeader() ?? sim.random.pick(running);
      const candidates = sim.conf.voters.filter((id) => id !== leader.id);
      if (candidates.length === 0) return;
      const target = sim.random.pick(candidates);
      sim.trace.add('transfer', leader.id, null, `to n${target}`);
      leader.tryInput('transferLeader', (raw) => raw.transferLeader(target));
      return;
    }
    case 'campaign': {
      const voters = running.filter((h) => sim.conf.voters.includes(h.id));
      if (voters.length === 0) return;
      // Sometimes two at once: competing candidates in one term (split votes).
      const count = sim.random.chance(0.5) ? 2 : 1;
      for (let i = 0; i < count; i++) {
        const host = sim.random.pick(voters);
        sim.trace.add('campaign', host.id);
        host.tryInput('campaign', (raw) => raw.campaign());
      }
      return;
    }
  }
}

function read(sim: Sim, host: NodeHost): void {
  const readId = sim.nextReadId++;
  const minIndex = sim.checker.maxCommittedWriteIndex;
  sim.checker.registerRead({ readId, node: host.id, minIndex, requestedAtStep: sim.now });
  sim.trace.add('read', host.id, null, `read ${readId} must see index >= ${minIndex}`);
  if (!host.tryInput('readIndex', (raw) => raw.readIndex(encodeReadId(readId)))) {
    sim.checker.pendingReads.delete(readId);
  }
}

function crash(sim: Sim, running: NodeHost[], downCount: number): void {
  // Mostly keep a quorum up so the run makes progress; sometimes take the cluster down.
  const tolerated = Math.floor((sim.conf.voters.length - 1) / 2);
  const quorumSafe = downCount < tolerated;
  if (!quorumSafe && !sim.random.chance(0.15)) return;
  const host = pickCrashVictim(sim, running);
  sim.trace.add('crash', host.id, null, host.midReady);
  sim.stats.crashes++;
  host.crash();
}

/** Prefers the interesting moments: a node that has persisted a Ready but not yet sent its
 * messages, or one that has just granted a vote (its vote must survive the crash). */
function pickCrashVictim(sim: Sim, running: NodeHost[]): NodeHost {
  const r = sim.random.next();
  if (r < 0.4) {
    const midReady = running.filter((h) => h.midReady !== '');
    if (midReady.length > 0) return sim.random.pick(midReady);
  } else if (r < 0.7) {
    const voted = running.filter((h) => h.lastVoteGrantStep >= sim.now - 30);
    if (voted.length > 0) return sim.random.pick(voted);
  }
  return sim.random.pick(running);
}

function partition(sim: Sim): void {
  const ids = sim.hostList.filter((h) => h.state !== 'retired').map((h) => h.id);
  if (ids.length < 2) return;
  const net = sim.network;
  const kind = sim.random.intn(4);
  sim.stats.partitions++;
  if (kind === 0) {
    const x = sim.random.pick(ids);
    net.partition([x], ids.filter((id) => id !== x));
  } else if (kind === 1) {
    const shuffled = shuffle(sim, ids);
    const cut = sim.random.range(1, ids.length - 1);
    net.partition(shuffled.slice(0, cut), shuffled.slice(cut));
  } else if (kind === 2) {
    // One-way: x can send but not receive, or receive but not send.
    const x = sim.random.pick(ids);
    const outbound = sim.random.chance(0.5);
    for (const y of ids) {
      if (y === x) continue;
      if (outbound) net.block(x, y);
      else net.block(y, x);
    }
  } else {
    for (const a of ids) for (const b of ids) if (a !== b && sim.random.chance(0.3)) net.block(a, b);
  }
  sim.trace.add('partition', 0, null, net.describePartition());
}

function changeMembership(sim: Sim, running: NodeHost[]): void {
  const via = sim.currentLeader() ?? sim.random.pick(running);
  const { voters, learners } = sim.conf;
  const live = sim.hostList.filter((h) => h.state !== 'retired').length;
  const options: (() => void)[] = [];
  const addNew = (type: ConfChangeType) => () => {
    const host = sim.addHost();
    host.startFresh(null);
    sim.trace.add('new-node', host.id, null, `to be added as ${ConfChangeType[type]}`);
    if (!sim.proposeConfChange(via, type, host.id)) host.retire();
  };
  if (live < MAX_HOSTS) {
    options.push(addNew(ConfChangeType.AddVoter), addNew(ConfChangeType.AddLearner));
  }
  if (learners.length > 0) {
    const id = sim.random.pick(learners);
    options.push(() => void sim.proposeConfChange(via, sim.random.chance(0.5)
      ? ConfChangeType.PromoteLearner : ConfChangeType.AddVoter, id));
    options.push(() => void sim.proposeConfChange(via, ConfChangeType.RemoveNode, id));
  }
  if (voters.length >= 4) {
    const id: NodeId = sim.random.pick(voters);
    options.push(() => void sim.proposeConfChange(via, ConfChangeType.RemoveNode, id));
  }
  if (options.length > 0) sim.random.pick(options)();
}

function shuffle(sim: Sim, ids: NodeId[]): NodeId[] {
  const out = ids.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = sim.random.intn(i + 1);
    [out[i], out[j]] = [out[j] as NodeId, out[i] as NodeId];
  }
  return out;
}
