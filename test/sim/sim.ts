/**
 * The deterministic simulator engine. One run = one seed: a cluster of 3 or 5 NodeHosts, a
 * Network and a workload, all driven by one SimRandom. Each chaos step does exactly one thing:
 * runs one Ready phase of a node, delivers one message, ticks one node, or injects one event
 * (proposal, read, crash, restart, partition, heal, membership change, leadership transfer).
 * The checker's invariants are evaluated as the effects happen, i.e. after every step.
 *
 * After the chaos steps a healing phase heals the network, restarts every member and runs in
 * rounds (tick every node, then deliver everything until quiet): a leader must emerge and fresh
 * proposals must commit on every member within a bounded number of ticks (liveness).
 */
import { encodeMessage, decodeMessage } from '../../src/raft/index.js';
import type { RuntimeRaftConfig } from '../../src/node/runtime.js';
import {
  ConfChangeType,
  MessageType,
  Role,
  type ConfState,
  type Message,
  type NodeId,
} from '../../src/raft/types.js';
import { Checker, SimViolation, describeConf, violation } from './checker.js';
import { Network, NO_FAULTS, type NetworkFaults } from './network.js';
import { NodeHost, type HostEnvironment, type Mutation } from './node-host.js';
import { SimRandom } from './prng.js';
import { Trace, describeMessage } from './trace.js';
import { injectEvent, HEAL_WRITES, proposeWrite } from './workload.js';

export interface SimOptions {
  seed: number;
  steps: number;
  /** A deliberate harness bug (see node-host.ts); default 'none'. */
  mutation?: Mutation;
  /** Lines of trace kept for a failure report. */
  traceLines?: number;
}

/** Per-seed configuration, chosen from the seed. */
export interface SimParams {
  nodes: number;
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnlyOption: 'safe' | 'lease-based';
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxUncommittedEntriesSize: number;
  maxCommittedSizePerReady: number;
  snapshotEvery: number;
  compactKeep: number;
  /** Send every message through the msgpack codec (else a shallow copy). */
  codec: boolean;
  faults: NetworkFaults;
  /** Probability per chaos step of injecting a workload/fault event. */
  eventRate: number;
  /** FoundationDB-style BUGGIFY: reboot nodes right after they grant a vote, now and then. */
  buggify: boolean;
  /** Every tick event ticks all running nodes (no clock drift). Lease-based reads assume
   * bounded clock drift, so lease seeds run with lock-step clocks; other seeds let each
   * node's clock run at its own random pace. */
  lockstepTicks: boolean;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  steps: number;
  /** Failure description (invariant, liveness, or an exception from the core). */
  failure: string | null;
  /** Step at which the run ended (> steps when it failed in the healing phase). */
  endStep: number;
  trace: string[];
  params: SimParams;
  stats: SimStats;
}

export interface SimStats {
  leaders: number;
  maxTerm: number;
  committed: number;
  applied: number;
  reads: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  snapshotsSent: number;
  messages: number;
  healTicks: number;
}

export function chooseParams(random: SimRandom): SimParams {
  const p = chooseBaseParams(random);
  p.lockstepTicks = p.readOnlyOption === 'lease-based';
  return p;
}

function chooseBaseParams(random: SimRandom): SimParams {
  const electionTick = random.pick([5, 10, 10, 20]);
  const checkQuorum = random.chance(0.5);
  const maxSizePerMsg = random.pick([64, 256, 4096, 1 << 20]);
  return {
    nodes: random.chance(0.5) ? 3 : 5,
    electionTick,
    heartbeatTick: random.pick([1, 1, 2, Math.max(1, Math.floor(electionTick / 4))]),
    preVote: random.chance(0.5),
    checkQuorum,
    readOnlyOption: checkQuorum && random.chance(0.3) ? 'lease-based' : 'safe',
    maxSizePerMsg,
    maxInflightMsgs: random.pick([1, 2, 8, 256]),
    // The core requires maxInflightBytes ≥ maxSizePerMsg (or 0 = unlimited).
    maxInflightBytes: random.pick([0, 0, 1, 4]) * maxSizePerMsg,
    maxUncommittedEntriesSize: random.pick([0, 0, 0, 1024]),
    maxCommittedSizePerReady: random.pick([64, 1024, 1 << 20]),
    snapshotEvery: random.pick([3, 10, 30, 100, Number.POSITIVE_INFINITY]),
    compactKeep: random.pick([0, 1, 5, 20]),
    codec: random.chance(0.2),
    faults: {
      drop: random.pick([0, 0.01, 0.05, 0.15]),
      duplicate: random.pick([0, 0.01, 0.05]),
      delay: random.pick([0, 0.1, 0.3]),
      maxDelay: random.pick([5, 20, 100]),
    },
    eventRate: random.pick([0.03, 0.06, 0.1]),
    buggify: random.chance(0.5),
    lockstepTicks: false,
  };
}

export function describeParams(p: SimParams): string {
  const f = p.faults;
  return `nodes=${p.nodes} election=${p.electionTick} heartbeat=${p.heartbeatTick} ` +
    `preVote=${p.preVote} checkQuorum=${p.checkQuorum} reads=${p.readOnlyOption} ` +
    `maxMsg=${p.maxSizePerMsg} inflight=${p.maxInflightMsgs}/${p.maxInflightBytes}B ` +
    `maxUncommitted=${p.maxUncommittedEntriesSize} committedPerReady=${p.maxCommittedSizePerReady} ` +
    `snapshotEvery=${p.snapshotEvery} keep=${p.compactKeep} codec=${p.codec} ` +
    `drop=${f.drop} dup=${f.duplicate} delay=${f.delay}x${f.maxDelay} events=${p.eventRate} buggify=${p.buggify} lockstep=${p.lockstepTicks}`;
}

export class Sim implements HostEnvironment {
  readonly random: SimRandom;
  readonly params: SimParams;
  readonly trace: Trace;
  readonly checker = new Checker();
  readonly network: Network;
  readonly hosts = new Map<NodeId, NodeHost>();
  /** Hosts in creation order (iteration order must not depend on anything but the seed). */
  readonly hostList: NodeHost[] = [];
  now = 0;
  nextNodeId = 1;
  nextWriteId = 1;
  nextReadId = 1;
  /** Latest membership, from the first node to apply each ConfChange. */
  conf: ConfState = { voters: [], learners: [] };
  confIndex = 0;
  /** Removed members and the step at which they are shut down. */
  readonly retireAt = new Map<NodeId, number>();
  readonly stats: SimStats = {
    leaders: 0, maxTerm: 0, committed: 0, applied: 0, reads: 0, crashes: 0, partitions: 0,
    confChanges: 0, snapshotsSent: 0, messages: 0, healTicks: 0,
  };
  healing = false;
  /** A host to reboot at a given step (BUGGIFY after a vote grant). */
  private pendingReboot: { host: NodeHost; at: number } | null = null;

  constructor(readonly options: SimOptions) {
    this.random = new SimRandom(options.seed);
    this.params = chooseParams(this.random);
    this.trace = new Trace(options.traceLines ?? 200);
    this.network = new Network(this.random);
    this.network.faults = this.params.faults;
  }

  get mutation(): Mutation {
    return this.options.mutation ?? 'none';
  }

  get snapshotEvery(): number {
    return this.params.snapshotEvery;
  }

  get compactKeep(): number {
    return this.params.compactKeep;
  }

  raftSettings(): RuntimeRaftConfig {
    const p = this.params;
    return {
      electionTick: p.electionTick,
      heartbeatTick: p.heartbeatTick,
      maxSizePerMsg: p.maxSizePerMsg,
      maxInflightMsgs: p.maxInflightMsgs,
      maxInflightBytes: p.maxInflightBytes,
      maxUncommittedEntriesSize: p.maxUncommittedEntriesSize,
      maxCommittedSizePerReady: p.maxCommittedSizePerReady,
      preVote: p.preVote,
      checkQuorum: p.checkQuorum,
      readOnlyOption: p.readOnlyOption,
    };
  }

  addHost(): NodeHost {
    const host = new NodeHost(this.nextNodeId++, this);
    this.hosts.set(host.id, host);
    this.hostList.push(host);
    return host;
  }

  // ------------------------------------------------------------------ network plumbing

  send(sender: NodeId, m: Message): void {
    this.stats.messages++;
    if (m.type === MessageType.App || m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snap || m.type === MessageType.TimeoutNow) {
      // Only a leader of m.term sends these.
      this.checker.onLeader(m.term, m.from, describeMessage(m));
    }
    if (m.type === MessageType.Snap) this.stats.snapshotsSent++;
    const copy = this.params.codec ? decodeMessage(encodeMessage(m)) : { ...m, entries: m.entries.slice() };
    const outcome = this.network.send(sender, copy, this.now);
    if (outcome !== 'queued') {
      this.trace.add(outcome === 'blocked' ? 'send-blocked' : 'send-lost', sender, m);
      // A transport knows when a snapshot transfer fails and must say so (or the leader
      // waits for it forever); unreachable peers are reported now and then.
      if (m.type === MessageType.Snap) this.reportSnapshot(sender, m.to, false);
      const host = this.hosts.get(sender);
      if (host !== undefined && host.running && outcome === 'blocked' && this.random.chance(0.3)) {
        host.tryInput('reportUnreachable', (raw) => raw.reportUnreachable(m.to));
      }
    }
  }

  deliverOne(): boolean {
    const envelope = this.network.take(this.now);
    if (envelope === null) return false;
    const m = envelope.message;
    const target = this.hosts.get(m.to);
    if (target === undefined || !target.running || this.network.isBlocked(envelope.sender, m.to)) {
      this.trace.add('deliver-lost', m.to, m, target?.running ? 'partitioned' : 'target down');
      if (m.type === MessageType.Snap) this.reportSnapshot(m.from, m.to, false);
      return true;
    }
    this.trace.add('deliver', m.to, m);
    target.tryInput(`step ${MessageType[m.type]}`, (raw) => raw.step(m));
    if (m.type === MessageType.Snap) this.reportSnapshot(m.from, m.to, true);
    return true;
  }

  private reportSnapshot(from: NodeId, to: NodeId, ok: boolean): void {
    const sender = this.hosts.get(from);
    if (sender !== undefined && sender.running && sender.role === Role.Leader) {
      sender.tryInput('reportSnapshot', (raw) => raw.reportSnapshot(to, ok));
    }
  }

  voteGranted(host: NodeHost): void {
    if (this.params.buggify && !this.healing && this.pendingReboot === null && this.random.chance(0.2)) {
      this.pendingReboot = { host, at: this.now + this.random.intn(3) };
    }
  }

  tick(host: NodeHost): void {
    this.trace.add('tick', host.id);
    host.tryInput('tick', (raw) => raw.tick());
  }

  // ------------------------------------------------------------------ membership

  confApplied(host: NodeHost, index: number, cs: ConfState): void {
    if (index <= this.confIndex) return;
    const before = new Set([...this.conf.voters, ...this.conf.learners]);
    this.conf = { voters: [...cs.voters], learners: [...cs.learners] };
    this.confIndex = index;
    this.stats.confChanges++;
    this.trace.add('conf', host.id, null, `index ${index}: ${describeConf(cs)}`);
    const after = new Set([...cs.voters, ...cs.learners]);
    for (const id of before) {
      if (!after.has(id) && !this.retireAt.has(id)) {
        // Give a removed leader time to step down before its process is stopped.
        this.retireAt.set(id, this.now + this.random.intn(300));
      }
    }
  }

  isMember(id: NodeId): boolean {
    return this.conf.voters.includes(id) || this.conf.learners.includes(id);
  }

  private retireDue(all: boolean): void {
    if (this.retireAt.size === 0) return;
    for (const [id, at] of this.retireAt) {
      if (!all && at > this.now) continue;
      const host = this.hosts.get(id);
      if (host !== undefined && host.state !== 'retired') {
        host.retire();
        this.trace.add('retire', id, null, 'removed from the cluster; process stopped');
      }
      this.retireAt.delete(id);
    }
  }

  // ------------------------------------------------------------------ the run

  async run(): Promise<SimResult> {
    let failure: string | null = null;
    try {
      this.bootstrap();
      for (this.now = 1; this.now <= this.options.steps; this.now++) {
        this.trace.step = this.now;
        await this.chaosStep();
      }
      await this.heal();
    } catch (err) {
      failure = err instanceof SimViolation ? err.message
        : `core threw ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
    }
    const s = this.stats;
    s.leaders = this.checker.leadersSeen;
    s.maxTerm = Math.max(0, ...this.checker.leaderByTerm.keys());
    s.committed = this.checker.commitIndex;
    s.applied = this.checker.appliedIndex;
    s.reads = this.checker.readsChecked;
    return {
      seed: this.options.seed,
      ok: failure === null,
      steps: Math.min(this.now, this.options.steps),
      failure,
      endStep: this.now,
      trace: failure === null ? [] : this.trace.lines(),
      params: this.params,
      stats: s,
    };
  }

  private bootstrap(): void {
    const ids: NodeId[] = [];
    for (let i = 0; i < this.params.nodes; i++) ids.push(this.addHost().id);
    for (const host of this.hostList) host.startFresh(ids);
    this.conf = { voters: ids, learners: [] };
    this.confIndex = ids.length;
    this.checker.bootstrapEntries = ids.length;
    this.trace.add('bootstrap', 0, null, `voters ${ids.join(',')}`);
  }

  /**
   * One step of a host's runtime, then everything it does until it waits on the simulator
   * again: the runtime's continuations are promise callbacks, so the microtask queue is
   * drained (setImmediate runs only once it is empty; nothing else is pending in a run).
   */
  private async runHost(host: NodeHost): Promise<boolean> {
    if (!host.processNext()) return false;
    await new Promise<void>((resolve) => setImmediate(resolve));
    host.checkFailure();
    return true;
  }

  private async chaosStep(): Promise<void> {
    this.network.promote(this.now);
    this.retireDue(false);
    const reboot = this.pendingReboot;
    if (reboot !== null && reboot.at <= this.now) {
      this.pendingReboot = null;
      if (reboot.host.running) {
        this.trace.add('buggify', reboot.host.id, null, 'reboot shortly after granting a vote');
        this.stats.crashes++;
        reboot.host.crash();
        reboot.host.start();
        return;
      }
    }
    const hosts = this.hostList;
    // Weights: ready work, message delivery, ticks, events.
    let readyCount = 0;
    for (const h of hosts) if (h.hasWork()) readyCount++;
    const due = this.network.dueCount;
    const wReady = readyCount > 0 ? 30 : 0;
    const wDeliver = due > 0 ? 25 + Math.min(due, 75) : 0;
    const wTick = 20;
    const wEvent = 100 * this.params.eventRate;
    let r = this.random.next() * (wReady + wDeliver + wTick + wEvent);
    if ((r -= wReady) < 0) {
      let k = this.random.intn(readyCount);
      for (const h of hosts) {
        if (h.hasWork() && k-- === 0) {
          await this.runHost(h);
          return;
        }
      }
      return;
    }
    if ((r -= wDeliver) < 0) {
      this.deliverOne();
      return;
    }
    if ((r -= wTick) < 0) {
      const running = hosts.filter((h) => h.running);
      if (this.params.lockstepTicks) {
        // One clock tick for everyone; keep the per-node tick rate as in drifting seeds.
        if (this.random.chance(1 / Math.max(1, running.length))) for (const h of running) this.tick(h);
      } else if (running.length > 0) {
        this.tick(this.random.pick(running));
      }
      return;
    }
    injectEvent(this);
  }

  // ------------------------------------------------------------------ healing + liveness

  private async heal(): Promise<void> {
    this.healing = true;
    this.now = this.options.steps + 1;
    this.trace.step = this.now;
    this.network.healAll();
    this.network.faults = NO_FAULTS;
    this.network.releaseAll();
    this.retireDue(true);
    for (const h of this.hostList) {
      if (h.state === 'down') {
        this.trace.add('restart', h.id, null, 'healing phase');
        h.start();
      }
    }
    this.trace.add('heal', 0, null, `members ${describeConf(this.conf)}`);
    const maxTicks = 40 * this.params.electionTick + 100;
    const pending = new Map<number, number>(); // write id → term it was last proposed in
    let goal = 0; // index the writes must reach on every member
    const writeIds: number[] = [];
    for (let i = 0; i < HEAL_WRITES; i++) writeIds.push(this.nextWriteId++);
    for (let t = 1; t <= maxTicks; t++) {
      this.stats.healTicks = t;
      this.now++;
      this.trace.step = this.now;
      this.retireDue(true);
      for (const h of this.hostList) if (h.running) this.tick(h);
      await this.settle();
      const leader = this.currentLeader();
      if (leader !== null) {
        for (const id of writeIds) {
          if (this.writeApplied(id)) continue;
          if (pending.get(id) === leader.term) continue;
          if (proposeWrite(this, leader, id)) pending.set(id, leader.term);
        }
        await this.settle();
      }
      if (writeIds.every((id) => this.writeApplied(id))) {
        goal = Math.max(...writeIds.map((id) => this.checker.writeAppliedAt.get(id) as number));
        const lagging = this.hostList.filter((h) => h.running && this.isMember(h.id) && h.smApplied < goal);
        if (lagging.length === 0) return;
      }
    }
    const leader = this.currentLeader();
    const states = this.hostList.filter((h) => h.state !== 'retired').map((h) =>
      `n${h.id}:${h.role}/t${h.term}/lead${h.leader}/applied${h.smApplied}${this.isMember(h.id) ? '' : '(non-member)'}`).join(' ');
    let progress = '';
    if (leader?.raw) {
      const st = leader.raw.status();
      progress = ' leader progress: ' + Object.entries(st.progress ?? {}).map(([id, p]) =>
        `n${id}:${p.state}/match${p.match}/next${p.next}/inflight${p.inflight}/pendingSnap${p.pendingSnapshot}/active${p.recentActive}`).join(' ') +
        ` leader snapshot=${leader.storage.snapshot().metadata.index} first=${leader.storage.firstIndex()}`;
    }
    violation(`liveness: ${maxTicks} ticks after healing, ` +
      (leader === null ? 'no leader was elected' : `leader n${leader.id} but writes not applied everywhere (goal ${goal})`) +
      `; members ${describeConf(this.conf)}; ${states};${progress}`);
  }

  writeApplied(writeId: number): boolean {
    return this.checker.writeAppliedAt.has(writeId);
  }

  /** Delivers every message and runs every Ready until nothing is left. */
  async settle(): Promise<void> {
    for (let round = 0; ; round++) {
      if (round > 10_000) violation('healing: the cluster does not quiesce (message storm)');
      let progress = false;
      for (const h of this.hostList) {
        while (await this.runHost(h)) progress = true;
      }
      while (this.deliverOne()) progress = true;
      if (!progress) return;
    }
  }

  /** A running voter that believes it leads, in the highest term any running node has. */
  currentLeader(): NodeHost | null {
    let best: NodeHost | null = null;
    for (const h of this.hostList) {
      if (h.running && h.role === Role.Leader && this.conf.voters.includes(h.id)) {
        if (best === null || h.term > best.term) best = h;
      }
    }
    return best;
  }

  /** Proposes a membership change on `via`. */
  proposeConfChange(via: NodeHost, type: ConfChangeType, nodeId: NodeId): boolean {
    this.trace.add('conf-propose', via.id, null, `${ConfChangeType[type]} n${nodeId}`);
    return via.tryInput('proposeConfChange', (raw) =>
      raw.proposeConfChange({ type, nodeId, context: new Uint8Array(0) }));
  }
}

export function runSeed(options: SimOptions): Promise<SimResult> {
  return new Sim(options).run();
}

export function formatFailure(result: SimResult, steps: number): string {
  const lines = [
    `VIOLATION seed=${result.seed} at step ${result.endStep}${result.endStep > steps ? ' (healing phase)' : ''}: ${result.failure}`,
    `params: ${describeParams(result.params)}`,
    `last ${result.trace.length} events:`,
    ...result.trace.map((l) => `  ${l}`),
    `VIOLATION seed=${result.seed}: ${result.failure?.split('\n')[0]}`,
    `reproduce: npm run sim -- --seed ${result.seed} --steps ${steps}`,
  ];
  return lines.join('\n');
}
