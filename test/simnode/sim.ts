/**
 * The whole-node deterministic simulator: a cluster of REAL RaftNodes (src/node/raft-node.ts,
 * with NodeRuntime, the real NodeStorage — WAL on the js backend and the Snapshotter — and the
 * real KV state machine, src/kv/store.ts) running over a simulated disk per node
 * (test/sim/disk.ts: power loss with torn sectors, lost namespace operations, injected errors),
 * a simulated network at the transport's level (network.ts) and one virtual clock (loop.ts).
 * One seed decides everything; see docs/simulation.md.
 *
 * A run: bootstrap, then `steps` driver actions (client puts and gets through the RaftNode API,
 * crashes at any I/O step, restarts, partitions, connection drops, membership changes,
 * leadership transfers, injected EIO/ENOSPC, snapshot files corrupted at rest), then a healing
 * phase: the network heals, faults stop, every member is (re)started, and a leader must emerge
 * and fresh writes commit and apply on every member within a bound. The checker (checker.ts)
 * runs throughout.
 */
import { RaftNode } from '../../src/node/raft-node.js';
import type { RaftNodeOptions, NodeLogger } from '../../src/node/options.js';
import type { AppliedEntry, StateMachine } from '../../src/node/options.js';
import { KvStore, decodeCommand, encodePut, type ApplyResult } from '../../src/kv/store.js';
import { EntryType, MessageType, type Message, type NodeId } from '../../src/raft/types.js';
import { resetMutations, setMutation, storageRandomness, type MutationName } from '../../src/testing/mutations.js';
import { SimDisk, SimProcessDeadError, type SimMount, type SimOp, type SimErrno } from '../sim/disk.js';
import { SimRandom } from '../sim/prng.js';
import { Trace } from '../sim/trace.js';
import { Checker, SimViolation, type WriteRecord } from './checker.js';
import { EventLoop, ProcClock } from './loop.js';
import { CALM_NETWORK, SimNetwork, SimTransport, type NetworkFaults } from './network.js';

/** Fault classes whose bugs were fixed later than the rest (see docs/simulation.md): all on by
 * default; --disable turns one off (to tell whether a failure needs it). */
export type Feature = 'tear' | 'resend-proposals' | 'garbage' | 'single-voter' | 'readd' | 'readd-voter';
export const FEATURES: readonly Feature[] = ['tear', 'resend-proposals', 'garbage', 'single-voter', 'readd', 'readd-voter'];
/** On unless --disable'd. Off by default (--enable), each finds an open bug of re-using a
 * removed member's id on a wiped disk (docs/simulation.md, "Open findings"): 'readd' (a stale
 * removed node wins an election with the wiped node's vote: two leaders, stale reads) and
 * 'readd-voter' (re-added as a voter: a lagging follower answers its new leader 410 forever). */
export const DEFAULT_FEATURES: readonly Feature[] = ['tear', 'resend-proposals', 'garbage', 'single-voter'];

export interface SimNodeOptions {
  seed: number;
  steps: number;
  mutation?: MutationName | null;
  /** Default: DEFAULT_FEATURES. */
  features?: readonly Feature[];
  traceLines?: number;
}

export interface SimNodeParams {
  nodes: number;
  electionTicks: number;
  snapshotCount: number;
  catchUp: number;
  segmentBytes: number;
  walMode: 'buffered' | 'dsync';
  commitNotifyDelayMs: number;
  /** One node's filesystem has no directory fsync (EINVAL); strict: it must refuse to start. */
  einvalNode: NodeId;
  einvalStrict: boolean;
  net: NetworkFaults;
  stepGapMs: number;
}

export interface SimNodeStats {
  puts: number;
  acked: number;
  linReads: number;
  serReads: number;
  applied: number;
  crashes: number;
  ioCrashes: number;
  restarts: number;
  ioFaults: number;
  confChanges: number;
  transfers: number;
  corruptions: number;
  drops: number;
  resent: number;
  rejectedBatches: number;
  events: number;
  virtualMs: number;
}

export interface SimNodeResult {
  seed: number;
  ok: boolean;
  failure: string | null;
  trace: string[];
  traceHash: string;
  params: SimNodeParams;
  stats: SimNodeStats;
}

const KEYS = ['a', 'b', 'c', 'd'];
const SPARE_IDS = 2;
const TICK_MS = 10;
const HEAL_WRITES = 3;
const HEAL_LIMIT_MS = 60_000;
const DATA_DIR = '/data';

const urlOf = (id: NodeId): string => `http://n${id}.sim:7000`;

function chooseParams(r: SimRandom, features: ReadonlySet<Feature>): SimNodeParams {
  const nodes = features.has('single-voter') && r.chance(0.25) ? 1 : r.chance(0.6) ? 3 : 5;
  const maxLatency = r.pick([1, 2, 5]);
  return {
    nodes,
    electionTicks: r.pick([5, 10]),
    snapshotCount: r.pick([3, 5, 10, 25]),
    catchUp: r.pick([0, 2, 10]),
    segmentBytes: r.pick([4096, 4096, 8192, 32768]),
    walMode: r.chance(0.8) ? 'buffered' : 'dsync',
    commitNotifyDelayMs: r.pick([0, 5]),
    einvalNode: r.chance(0.15) ? 1 + r.intn(nodes) : 0,
    einvalStrict: r.chance(0.5),
    net: {
      loss: r.pick([0, 0.005, 0.02, 0.05]),
      minLatency: 0.05,
      maxLatency,
      stall: r.pick([0, 0.01, 0.05]),
      holdReply: r.pick([0, 0.3, 0.8]),
      replyHoldMs: r.pick([2, 5, 20]),
      // Half the runs: proposal requests re-sent after drops (the de-dup must absorb them).
      resendProposals: features.has('resend-proposals') && r.chance(0.5),
    },
    stepGapMs: r.pick([5, 10, 20, 40]),
  };
}

export function describeParams(p: SimNodeParams): string {
  const n = p.net;
  return `nodes=${p.nodes} election=${p.electionTicks}x${TICK_MS}ms snapshotCount=${p.snapshotCount} catchUp=${p.catchUp} ` +
    `segment=${p.segmentBytes} wal=${p.walMode} notify=${p.commitNotifyDelayMs}ms ` +
    `einval=${p.einvalNode === 0 ? 'none' : `n${p.einvalNode}/${p.einvalStrict ? 'strict' : 'auto'}`} ` +
    `loss=${n.loss} latency=${n.minLatency}-${n.maxLatency}ms stall=${n.stall} hold=${n.holdReply}/${n.replyHoldMs}ms ` +
    `resendProposals=${n.resendProposals} gap=${p.stepGapMs}ms`;
}

/** A running (or dead) process of one node. */
interface Proc {
  incarnation: number;
  clock: ProcClock;
  mount: SimMount;
  transport: SimTransport | null;
  node: RaftNode<ApplyResult> | null;
  kv: SimKv;
  alive: boolean;
  /** An injected I/O error fired in this process: it must fail-stop. */
  faultFiredAt: number;
  /** Start-up is expected to be refused (strict dirSync on a filesystem without it). */
  expectRefusal: boolean;
}

type SlotState = 'none' | 'starting' | 'up' | 'down' | 'stopped' | 'removed';

interface Slot {
  id: NodeId;
  disk: SimDisk;
  proc: Proc | null;
  state: SlotState;
  /** Start with join (a node added after bootstrap, on a wiped disk). */
  join: boolean;
  /** Disk op step at which to lose power (0: none). */
  crashAtOp: number;
  /** Lose power a few I/O steps after the next WAL segment cut renames its new segment into
   * place (while the batch that triggered the cut is being written). */
  crashInCut: boolean;
  /** The armed power loss loses every unsynced write (not kept or torn). */
  crashLosesUnsynced: boolean;
  /** A planned I/O error: the op kinds it hits and after how many matching ops. */
  ioFault: { kinds: readonly string[]; code: SimErrno; skip: number } | null;
  dirSyncPolicy: 'auto' | 'strict';
  /** A snapshot file was corrupted since the node last started. */
  bitrot: boolean;
  /** Its disk holds a log past bootstrap (it will not bootstrap again). */
  hasLog: boolean;
  /** Re-added after a removal (on a wiped disk): without 'readd-voter' it stays a learner. */
  reused: boolean;
}

/** The KV state machine as a replica runs it, reporting every applied write to the checker. */
class SimKv implements StateMachine<ApplyResult> {
  readonly kv = new KvStore();
  count = 0;
  lastIndex = 0;

  constructor(private readonly sim: SimNode, private readonly id: NodeId, private readonly proc: () => Proc) {}

  apply(entry: AppliedEntry): ApplyResult {
    const result = this.kv.apply(entry);
    if ('revision' in result) {
      const cmd = decodeCommand(entry.data);
      const writeId = Number(cmd.value.toString('latin1').slice(1));
      this.count++;
      this.lastIndex = entry.index;
      this.sim.guard(() => this.sim.checker.onApply(this.id, entry.index, writeId, cmd.key));
    }
    return result;
  }

  snapshot(): Uint8Array {
    const body = this.kv.snapshot();
    const out = Buffer.alloc(16 + body.length);
    out.writeDoubleLE(this.count, 0);
    out.writeDoubleLE(this.lastIndex, 8);
    out.set(body, 16);
    return out;
  }

  restore(data: Uint8Array): void {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.count = buf.readDoubleLE(0);
    this.lastIndex = buf.readDoubleLE(8);
    this.kv.restore(buf.subarray(16));
    if (this.proc().alive) this.sim.guard(() => this.sim.checker.onRestore(this.id, this.count, this.lastIndex));
  }

  /** The write id a get returns (0: none). */
  get(key: string): number {
    const v = this.kv.get(key);
    return v === undefined ? 0 : Number(v.value.toString('latin1').slice(1));
  }
}

const DEFINITE_FAILURES = new Set([
  'NoLeaderError', 'NotLeaderError', 'ProposalRejectedError', 'TooManyRequestsError', 'ProposalLostError', 'InvalidArgumentError',
]);

export class SimNode {
  readonly random: SimRandom;
  readonly features: ReadonlySet<Feature>;
  readonly params: SimNodeParams;
  readonly trace: Trace;
  readonly loop = new EventLoop();
  readonly checker = new Checker();
  readonly net: SimNetwork;
  readonly slots = new Map<NodeId, Slot>();
  private failure: string | null = null;
  private nextWriteId = 1;
  private lastAckedKey: string | null = null;
  /** The healing phase: no more faults. */
  private healing = false;
  private lastConf: { voters: NodeId[]; learners: NodeId[] } = { voters: [], learners: [] };
  private nextIncarnation = 1;
  private traceHashValue = 0x811c9dc5;
  readonly stats: SimNodeStats = {
    puts: 0, acked: 0, linReads: 0, serReads: 0, applied: 0, crashes: 0, ioCrashes: 0, restarts: 0, ioFaults: 0,
    confChanges: 0, transfers: 0, corruptions: 0, drops: 0, resent: 0, rejectedBatches: 0, events: 0, virtualMs: 0,
  };

  constructor(readonly options: SimNodeOptions) {
    this.random = new SimRandom(options.seed);
    this.features = new Set(options.features ?? DEFAULT_FEATURES);
    this.params = chooseParams(this.random, this.features);
    this.trace = new Trace(options.traceLines ?? 300);
    this.net = new SimNetwork(this.loop, this.random, this.trace);
    this.net.faults = this.params.net;
    for (let id = 1; id <= this.params.nodes; id++) this.lastConf.voters.push(id);
    const total = this.params.nodes + SPARE_IDS;
    for (let id = 1; id <= total; id++) {
      this.slots.set(id, {
        id,
        disk: this.newDisk(id),
        proc: null,
        state: 'none',
        join: id > this.params.nodes,
        crashAtOp: 0,
        crashInCut: false,
        crashLosesUnsynced: false,
        ioFault: null,
        dirSyncPolicy: id === this.params.einvalNode && this.params.einvalStrict ? 'strict' : 'auto',
        bitrot: false,
        hasLog: false,
        reused: false,
      });
    }
  }

  // ------------------------------------------------------------------ bookkeeping

  note(event: string, node: NodeId, detail = '', message: Message | null = null): void {
    this.trace.step = Math.round(this.loop.now * 1000);
    this.trace.add(event, node, message, detail);
    let h = this.traceHashValue ^ node;
    const s = `${this.trace.step}${event}${detail}`;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    this.traceHashValue = h >>> 0;
  }

  fail(message: string): void {
    if (this.failure === null) {
      this.failure = message;
      this.note('VIOLATION', 0, message);
    }
  }

  /** Runs a check; a violation is recorded (never thrown into the real code). */
  guard(check: () => void): void {
    try {
      check();
    } catch (err) {
      if (err instanceof SimViolation) this.fail(err.message);
      else this.fail(`checker threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  private newDisk(id: NodeId): SimDisk {
    const einval = id === this.params.einvalNode;
    const disk: SimDisk = new SimDisk({
      random: this.random,
      dirSync: einval ? 'EINVAL' : 'supported',
      namespaceCrash: this.random.chance(0.5) ? 'independent' : 'prefix',
      scheduler: {
        // Disk latency: each op completes after its own random delay (so concurrent I/O of
        // one process completes in any order), on the owning process's clock.
        schedule: (op, settle) => {
          const proc = this.slots.get(id)?.proc;
          const ms = op.kind === 'fdatasync' || op.kind === 'fsync' || op.kind === 'dirsync'
            ? 0.05 + this.random.next() * 2
            : this.random.next() * 0.2;
          if (proc === null || proc === undefined) this.loop.after(ms, settle);
          else proc.clock.later(ms, settle);
        },
      },
      onOp: (op) => this.onDiskOp(id, op),
    });
    return disk;
  }

  private onDiskOp(id: NodeId, op: SimOp): SimErrno | void {
    const slot = this.slots.get(id)!;
    if (slot.crashInCut && op.kind === 'rename' && op.path.endsWith('.wal.tmp') && slot.crashAtOp === 0) {
      // The cut's new segment (header, metadata, hard state: synced) gets its name: the batch
      // that triggered the cut follows (dir sync, open, write, fdatasync).
      slot.crashInCut = false;
      slot.crashAtOp = op.step + 1 + this.random.intn(5);
      this.note('arm-crash', id, `in a segment cut: at I/O step ${slot.crashAtOp}`);
    }
    if (slot.crashAtOp > 0 && op.step >= slot.crashAtOp) {
      slot.crashAtOp = 0;
      this.stats.ioCrashes++;
      this.note('io-crash', id, `power loss at I/O step ${op.step}: ${op.kind} ${op.path}`);
      this.crash(slot, 'power');
      return;
    }
    const f = slot.ioFault;
    if (f !== null && f.kinds.includes(op.kind) && !op.path.endsWith('.wal.tmp') && !op.path.endsWith('/LOCK') && slot.proc !== null && slot.proc.alive) {
      // (Data files only: a prepared segment's errors surface at the cut that would use it,
      // and the lock file holds no data.)
      if (f.skip > 0) {
        f.skip--;
        return;
      }
      slot.ioFault = null;
      slot.proc.faultFiredAt = this.loop.now;
      this.stats.ioFaults++;
      this.note('io-fault', id, `${f.code} on ${op.kind} ${op.path}`);
      const proc = slot.proc;
      // A snapshot temp file is a snapshot being written: our own (its failure stops the node)
      // or one streamed in by the leader (refused with 500, the node runs on: nothing of it was
      // acknowledged or installed, and the leader sends it again into a new temp file).
      if (/\/snap\/[^/]*\.snap\.[^/]*\.tmp$/.test(op.path)) return f.code;
      // Fail-stop: the node must have stopped (and acknowledge nothing more) soon after.
      this.loop.after(200, () => {
        if (proc.alive && proc.node !== null && proc.node.nodeState === 'running') {
          this.fail(`n${id} kept running 200 ms after an injected ${f.code} on ${op.kind} (no fail-stop)`);
        }
      });
      return f.code;
    }
  }

  // ------------------------------------------------------------------ processes

  private logger(id: NodeId, proc: () => Proc | null): NodeLogger {
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>): void => {
      if (proc()?.alive !== true) return;
      this.note(level, id, level === 'info' ? msg : `${msg} ${fields === undefined ? '' : JSON.stringify(fields)}`);
    };
    return { debug: () => {}, info: log('info'), warn: log('warn'), error: log('error') };
  }

  private startNode(slot: Slot): void {
    if (slot.proc !== null && slot.proc.alive) throw new Error(`internal: n${slot.id} already has a live process`);
    slot.disk.capacityBytes = Number.POSITIVE_INFINITY;
    const clock = new ProcClock(this.loop, () => this.random.next() * 0.05);
    const incarnation = this.nextIncarnation++;
    let proc: Proc | null = null;
    const getProc = (): Proc => proc!;
    proc = {
      incarnation,
      clock,
      mount: slot.disk.mount(`n${slot.id}#${incarnation}`),
      transport: null,
      node: null,
      kv: new SimKv(this, slot.id, getProc),
      alive: true,
      faultFiredAt: 0,
      expectRefusal: slot.dirSyncPolicy === 'strict' && slot.id === this.params.einvalNode,
    };
    const p = proc;
    slot.proc = p;
    slot.state = 'starting';
    this.stats.restarts++;
    this.checker.resetPosition(slot.id);
    const initial = [...this.slots.keys()].filter((id) => id <= this.params.nodes).map((id) => ({ id, url: urlOf(id) }));
    const options: RaftNodeOptions<ApplyResult> = {
      id: slot.id,
      // A joining node, or one restarting from a log, is told the current members (as an
      // operator would); a node that may still bootstrap, only the initial voters.
      peers: slot.join || slot.hasLog ? unionPeers([{ id: slot.id, url: urlOf(slot.id) }, ...this.memberPeers(slot.id), ...(slot.join ? [] : initial)]) : initial,
      join: slot.join,
      dataDir: DATA_DIR,
      stateMachine: p.kv,
      clusterId: 'simnode',
      tickMs: TICK_MS,
      electionTicks: this.params.electionTicks,
      heartbeatTicks: 1,
      snapshotCount: this.params.snapshotCount,
      snapshotCatchUpEntries: this.params.catchUp,
      walMode: this.params.walMode,
      walSegmentBytes: this.params.segmentBytes,
      dirSync: slot.dirSyncPolicy,
      requestTimeoutMs: 1000,
      commitNotifyDelayMs: this.params.commitNotifyDelayMs,
      idleSpinUs: 0,
      maxSizePerMsg: 4096,
      fileSystem: p.mount,
      logger: this.logger(slot.id, () => (slot.proc === p ? p : null)),
      simulation: {
        clock,
        random: { intn: (n: number) => this.random.intn(n) },
        incarnation,
        createTransport: (o) => (p.transport = new SimTransport(this.net, o, clock)),
      },
    };
    this.note('start', slot.id, `incarnation ${incarnation}${slot.join ? ' (join)' : ''}`);
    RaftNode.start(options).then(
      (node) => {
        if (!p.alive) return;
        p.node = node;
        slot.state = 'up';
        slot.bitrot = false;
        if (p.expectRefusal) this.fail(`n${slot.id} started with dirSync strict on a filesystem without directory fsync`);
        const st = node.status();
        if (st.lastIndex > 0) slot.hasLog = true;
        this.note('up', slot.id, `log ${st.snapshotIndex}..${st.lastIndex} commit ${st.commit} term ${st.term}`);
        this.guard(() => this.checker.onRecovered(slot.id, st.lastIndex));
        // A client that was waiting for this node reads through it as soon as it is back (the
        // first reads after a restart are where a lost commit index shows).
        if (st.lastIndex > 0 && this.random.chance(0.5)) this.get({ slot, node, proc: p }, true);
        node.on('leader-change', ({ leader }) => {
          // A polling client: the only voter just took the lead; it reads through it at once,
          // while the entry of its new term is still being written (bug 5's window).
          if (leader !== slot.id || !p.alive || this.healing) return;
          const voters = this.membership().voters;
          if (voters.length !== 1 || voters[0] !== slot.id || !this.random.chance(0.5)) return;
          p.clock.later(0.01, () => {
            if (p.alive && slot.proc === p && node.nodeState === 'running') this.get({ slot, node, proc: p }, true);
          });
        });
        node.on('fatal', ({ error, detail }) => {
          if (!p.alive) return;
          this.note('fatal', slot.id, `${detail}`);
          if (p.faultFiredAt === 0 && !isDeadProcessError(error)) {
            this.fail(`n${slot.id} stopped (fatal) without an injected fault: ${detail}`);
          }
        });
        node.on('stopped', ({ reason, detail }) => {
          if (!p.alive || slot.proc !== p) return;
          this.note('stopped', slot.id, `${reason}: ${detail}`);
          slot.state = reason === 'removed' ? 'removed' : 'stopped';
        });
      },
      (err: unknown) => {
        if (!p.alive || slot.proc !== p) return;
        const message = err instanceof Error ? err.message : String(err);
        slot.state = 'stopped';
        this.note('start-failed', slot.id, message);
        if (p.expectRefusal) {
          // The operator reads the error and switches to dirSync auto.
          slot.dirSyncPolicy = 'auto';
          return;
        }
        if (p.faultFiredAt > 0 || isDeadProcessError(err)) return;
        this.fail(`n${slot.id} refused to start: ${message}`);
      },
    );
  }

  /** Peers a joining node is told about: the current members. */
  private memberPeers(self: NodeId): { id: NodeId; url: string }[] {
    const conf = this.membership();
    return [...conf.voters, ...conf.learners].filter((id) => id !== self).map((id) => ({ id, url: urlOf(id) }));
  }

  /** Power loss ('power': unsynced writes kept, lost or torn) or a process kill ('kill'). */
  crash(slot: Slot, mode: 'power' | 'kill'): void {
    const p = slot.proc;
    if (p !== null) {
      p.alive = false;
      p.clock.kill();
      if (p.transport !== null) this.net.died(p.transport);
    }
    slot.crashAtOp = 0;
    slot.crashInCut = false;
    slot.ioFault = null;
    // Without directory fsync (dirSync auto on EINVAL) a power loss may lose acknowledged data
    // and votes — the documented risk of such filesystems — so that node only ever has its
    // process killed.
    if (mode === 'power' && slot.id === this.params.einvalNode) mode = 'kill';
    if (mode === 'power') {
      const data = slot.crashLosesUnsynced
        ? 'lose'
        : this.random.pick(this.features.has('tear') ? ['keep', 'lose', 'random'] as const : ['keep', 'lose'] as const);
      slot.crashLosesUnsynced = false;
      const report = slot.disk.crash({ data });
      this.note('power-loss', slot.id, `kept ${report.writesKept} lost ${report.writesLost} torn ${report.writesTorn} ns-lost ${report.namespaceLost.length}`);
    } else {
      slot.disk.killProcesses();
      this.note('kill', slot.id);
    }
    if (slot.state !== 'removed') slot.state = 'down';
    this.stats.crashes++;
  }

  /** The membership as the most advanced running node knows it. */
  membership(): { voters: NodeId[]; learners: NodeId[] } {
    let best: RaftNode<ApplyResult> | null = null;
    for (const s of this.slots.values()) {
      const n = s.state === 'up' ? s.proc?.node ?? null : null;
      if (n !== null && n.nodeState === 'running' && n.status().members.voters.length > 0 &&
          (best === null || n.appliedIndex > best.appliedIndex)) best = n;
    }
    const st = best?.status();
    // A node that has not applied its first membership yet (a joining one) knows none.
    if (st !== undefined && st.members.voters.length > 0) {
      this.lastConf = { voters: st.members.voters.map((m) => m.id), learners: st.members.learners.map((m) => m.id) };
    }
    return this.lastConf;
  }

  /** `conf` plus every member of a running node's applied configuration. */
  private membersAnywhere(conf: { voters: NodeId[]; learners: NodeId[] }): NodeId[] {
    const ids = new Set([...conf.voters, ...conf.learners]);
    for (const { node } of this.upNodes()) {
      const m = node.status().members;
      for (const x of [...m.voters, ...m.learners]) ids.add(x.id);
    }
    return [...ids].filter((id) => this.slots.has(id)).sort((a, b) => a - b);
  }

  private upNodes(): { slot: Slot; node: RaftNode<ApplyResult>; proc: Proc }[] {
    const out: { slot: Slot; node: RaftNode<ApplyResult>; proc: Proc }[] = [];
    for (const s of this.slots.values()) {
      const p = s.proc;
      if (s.state === 'up' && p !== null && p.alive && p.node !== null && p.node.nodeState === 'running') out.push({ slot: s, node: p.node, proc: p });
    }
    return out;
  }

  // ------------------------------------------------------------------ client operations

  private put(target: { slot: Slot; node: RaftNode<ApplyResult> }, tag = 'put'): WriteRecord {
    const writeId = this.nextWriteId++;
    const key = this.random.pick(KEYS);
    const w: WriteRecord = { writeId, key, via: target.slot.id, issuedAt: this.loop.now, outcome: 'pending', ackedAt: 0, revision: 0, error: '' };
    this.checker.writeIssued(w);
    this.stats.puts++;
    this.note(tag, target.slot.id, `w${writeId} ${key}`);
    target.node.propose(encodePut(key, Buffer.from(`w${writeId}`, 'latin1'))).then(
      (result) => {
        if ('error' in result) {
          this.fail(`put w${writeId} was applied with an error: ${result.error}`);
          return;
        }
        this.note('put-ok', target.slot.id, `w${writeId} @${result.revision}`);
        this.stats.acked++;
        this.lastAckedKey = w.key;
        this.maybeCrashAfterAck(target.slot);
        this.guard(() => this.checker.writeAcked(w, this.loop.now, result.revision));
      },
      (err: unknown) => {
        const name = err instanceof Error ? err.name : 'Error';
        w.outcome = DEFINITE_FAILURES.has(name) ? 'failed' : 'unknown';
        w.error = `${name}: ${err instanceof Error ? err.message : String(err)}`;
        this.note('put-err', target.slot.id, `w${writeId} ${name}`);
      },
    );
    return w;
  }

  /**
   * The only voter just acknowledged a write: sometimes it loses power at its next I/O step —
   * the commit-only hard state that follows the apply, written without fsync — so it restarts
   * with a commit index below a write it acknowledged (bug 5's precondition).
   */
  private maybeCrashAfterAck(slot: Slot): void {
    const voters = this.membership().voters;
    if (this.healing || voters.length !== 1 || voters[0] !== slot.id || slot.crashAtOp > 0 || slot.proc === null || !slot.proc.alive) return;
    if (!this.random.chance(0.1)) return;
    slot.crashAtOp = slot.disk.steps + 1;
    slot.crashLosesUnsynced = true;
    this.note('arm-crash', slot.id, `the only voter acknowledged a write: at I/O step ${slot.crashAtOp}`);
  }

  private get(target: { slot: Slot; node: RaftNode<ApplyResult>; proc: Proc }, linearizable: boolean): void {
    // Half the reads ask for the key written last: where a stale read shows.
    const key = this.random.chance(0.5) && this.lastAckedKey !== null ? this.lastAckedKey : this.random.pick(KEYS);
    const id = target.slot.id;
    if (!linearizable) {
      const writeId = target.proc.kv.get(key);
      this.stats.serReads++;
      this.note('sget', id, `${key} = ${writeId === 0 ? '-' : `w${writeId}`}`);
      this.guard(() => this.checker.serializableRead(id, key, writeId));
      return;
    }
    const floor = this.checker.readFloor(key);
    const startedAt = this.loop.now;
    this.note('get', id, key);
    target.node.readBarrier().then(
      (readIndex) => {
        if (!target.proc.alive) return;
        const writeId = target.proc.kv.get(key);
        this.stats.linReads++;
        this.note('get-ok', id, `${key} = ${writeId === 0 ? '-' : `w${writeId}`} (read index ${readIndex})`);
        this.guard(() => this.checker.linearizableRead(id, key, floor, writeId, readIndex, startedAt));
      },
      (err: unknown) => this.note('get-err', id, err instanceof Error ? err.name : String(err)),
    );
  }

  // ------------------------------------------------------------------ the driver

  private action(): void {
    const r = this.random;
    const up = this.upNodes();
    const roll = r.next() * 100;
    if (roll < 42) {
      if (up.length > 0) this.put(r.pick(up));
    } else if (roll < 55) {
      if (up.length > 0) this.get(r.pick(up), true);
    } else if (roll < 61) {
      if (up.length > 0) this.get(r.pick(up), false);
    } else if (roll < 64) {
      this.crashAction();
    } else if (roll < 71) {
      this.restartAction();
    } else if (roll < 75) {
      this.partitionAction();
    } else if (roll < 79) {
      const links = this.net.busyLinks();
      if (links.length > 0) {
        const [a, b] = r.pick(links);
        this.stats.drops++;
        this.net.dropConnection(a, b);
      }
    } else if (roll < 83) {
      this.membershipAction();
    } else if (roll < 86) {
      this.transferAction();
    } else if (roll < 88) {
      this.ioFaultAction();
    } else if (roll < 90) {
      this.corruptSnapshotAction();
    } else if (roll < 92) {
      if (this.features.has('garbage')) this.garbageAction();
    }
    // else: quiet step
  }

  private crashAction(): void {
    const r = this.random;
    const candidates = [...this.slots.values()].filter((s) => s.state === 'up' || s.state === 'starting');
    if (candidates.length === 0) return;
    const slot = r.pick(candidates);
    const how = r.next();
    if (how < 0.15) {
      slot.crashInCut = true;
      this.note('arm-crash', slot.id, 'in the next segment cut');
    } else if (how < 0.45) {
      // Power loss at one of the next I/O steps: mid-append, mid-cut, mid-snapshot, mid-start.
      slot.crashAtOp = slot.disk.steps + 1 + r.intn(60);
      this.note('arm-crash', slot.id, `at I/O step ${slot.crashAtOp}`);
    } else if (how < 0.8) {
      this.crash(slot, 'power');
    } else {
      this.crash(slot, 'kill');
    }
  }

  private restartAction(): void {
    const candidates = [...this.slots.values()].filter((s) => s.state === 'down' || s.state === 'stopped');
    if (candidates.length === 0) return;
    const slot = this.random.pick(candidates);
    if (slot.state === 'stopped') slot.disk.killProcesses(); // the stopped process exits
    if (slot.proc !== null) {
      slot.proc.alive = false;
      slot.proc.clock.kill();
      if (slot.proc.transport !== null) this.net.died(slot.proc.transport);
    }
    this.startNode(slot);
  }

  private partitionAction(): void {
    const r = this.random;
    if (r.chance(0.4)) {
      this.net.healAll();
      this.note('heal-net', 0);
      return;
    }
    const ids = [...this.slots.keys()];
    const a = r.pick(ids);
    if (r.chance(0.5)) {
      this.net.isolate(a, ids);
      this.note('isolate', a);
    } else {
      const b = r.pick(ids.filter((x) => x !== a));
      this.net.partition(a, b);
      this.note('partition', a, `<-> n${b}`);
    }
  }

  private membershipAction(): void {
    const r = this.random;
    const up = this.upNodes();
    if (up.length === 0) return;
    const via = r.pick(up);
    const conf = this.membership();
    const members = new Set([...conf.voters, ...conf.learners]);
    // Re-adding an id that ran before (on a wiped disk): 'readd'; as a voter: 'readd-voter'.
    const outsiders = [...this.slots.values()].filter((s) => !members.has(s.id) && s.state !== 'starting' &&
      (s.state === 'none' || this.features.has('readd')));
    const minVoters = this.features.has('single-voter') ? 1 : 2;
    const choice = r.next();
    let call: Promise<unknown>;
    let what: string;
    if (choice < 0.35 && outsiders.length > 0) {
      // Add (or re-add) a node: its old data is wiped; it starts and waits to be added.
      const slot = r.pick(outsiders);
      if (slot.state !== 'none') slot.reused = true;
      const asVoter = r.chance(0.3) && (!slot.reused || this.features.has('readd-voter'));
      if (slot.proc !== null && slot.proc.alive) this.crash(slot, 'kill');
      slot.disk = this.newDisk(slot.id);
      slot.join = true;
      slot.hasLog = false;
      slot.state = 'down';
      this.checker.resetReplica(slot.id);
      what = `${asVoter ? 'addVoter' : 'addLearner'}(n${slot.id})`;
      call = asVoter ? via.node.addVoter(slot.id, urlOf(slot.id)) : via.node.addLearner(slot.id, urlOf(slot.id));
      this.startNode(slot);
    } else if (choice < 0.6 && conf.learners.some((id) => !this.slots.get(id)!.reused || this.features.has('readd-voter'))) {
      const id = r.pick(conf.learners.filter((l) => !this.slots.get(l)!.reused || this.features.has('readd-voter')));
      what = `promoteLearner(n${id})`;
      call = via.node.promoteLearner(id);
    } else if (conf.voters.length > minVoters || conf.learners.length > 0) {
      const pool = conf.voters.length > minVoters ? [...conf.voters, ...conf.learners] : conf.learners;
      const id = r.pick(pool);
      what = `removeMember(n${id})`;
      call = via.node.removeMember(id);
    } else {
      return;
    }
    this.stats.confChanges++;
    this.note('conf', via.slot.id, what);
    call.then(
      () => this.note('conf-ok', via.slot.id, what),
      (err: unknown) => this.note('conf-err', via.slot.id, `${what}: ${err instanceof Error ? err.name : String(err)}`),
    );
  }

  private transferAction(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const via = this.random.pick(up);
    const voters = this.membership().voters;
    if (voters.length === 0) return;
    const target = this.random.pick(voters);
    this.stats.transfers++;
    this.note('transfer', via.slot.id, `to n${target}`);
    via.node.transferLeadership(target).then(
      () => this.note('transfer-ok', via.slot.id, `n${target}`),
      (err: unknown) => this.note('transfer-err', via.slot.id, err instanceof Error ? err.name : String(err)),
    );
  }

  private ioFaultAction(): void {
    const r = this.random;
    const up = this.upNodes();
    if (up.length === 0) return;
    const { slot } = r.pick(up);
    if (r.chance(0.25)) {
      // The disk fills up: growth beyond what is used now fails with ENOSPC.
      slot.disk.capacityBytes = slot.disk.usedBytes + r.intn(20_000);
      this.note('enospc', slot.id, `capacity ${slot.disk.capacityBytes}`);
      const proc = slot.proc!;
      proc.faultFiredAt = this.loop.now; // a fail-stop from here on is expected
      return;
    }
    const kinds = r.pick([['writev', 'write'], ['fdatasync', 'fsync']] as const);
    slot.ioFault = { kinds, code: 'EIO', skip: r.intn(20) };
    this.note('arm-eio', slot.id, `${kinds.join('/')} after ${slot.ioFault.skip}`);
  }

  /** Flips a byte of a snapshot file of a node that is down (bit rot at rest). */
  private corruptSnapshotAction(): void {
    const down = [...this.slots.values()].filter((s) => s.state === 'down' || s.state === 'stopped');
    if (down.length === 0) return;
    const slot = this.random.pick(down);
    const snaps = (slot.disk.listDir(`${DATA_DIR}/snap`) ?? []).filter((n) => n.endsWith('.snap'));
    // One bad file among several: start-up must fall back to an older one. (With a single
    // snapshot file the WAL before it is gone by design; refusing to start is then right.)
    if (snaps.length < 3 || slot.bitrot) return;
    slot.bitrot = true;
    slot.crashAtOp = 0;
    slot.ioFault = null; // (an armed EIO must not hit the harness's own write)
    // Not the newest two: after a snapshot from the leader, no older one can replay across it
    // (the log has a gap there), so a corrupt newest usable file rightly stops start-up — and
    // the newest file may be unusable (written, its WAL marker not: a crash in between).
    const name = this.random.pick(snaps.sort().slice(0, -2));
    const file = `${DATA_DIR}/snap/${name}`;
    const content = slot.disk.fileContent(file);
    if (content === null || content.length === 0) return;
    if (slot.state === 'stopped') slot.disk.killProcesses();
    const at = this.random.intn(content.length);
    const mount = slot.disk.mount(`bitrot-n${slot.id}`);
    const fd = mount.openSync(file, 'r+');
    mount.writeSync(fd, content[at] === 0x58 ? 'Y' : 'X', at);
    mount.fsyncSync(fd);
    mount.closeSync(fd);
    slot.disk.killProcesses();
    this.stats.corruptions++;
    this.note('bitrot', slot.id, `${name} byte ${at}`);
  }

  /** A peer with a bug sends one invalid message (issue: it must not stop the receiver). */
  private garbageAction(): void {
    const up = this.upNodes();
    if (up.length < 2) return;
    const to = this.random.pick(up);
    const from = this.random.pick(up.filter((u) => u !== to));
    const st = to.node.status();
    let m: Message;
    if (this.random.chance(0.5)) {
      // An append whose entries do not start right after its index.
      const e = { index: st.lastIndex + 5, term: st.term, type: EntryType.Normal, data: new Uint8Array([1]) };
      m = blankMessage(MessageType.App, from.slot.id, to.slot.id, st.term, { index: st.lastIndex, logTerm: st.term, entries: [e], commit: st.commit });
    } else {
      const cc = { index: 0, term: 0, type: EntryType.ConfChange, data: new Uint8Array([0xc1, 0xff, 0x00, 0x13]) };
      m = blankMessage(MessageType.Prop, from.slot.id, to.slot.id, 0, { entries: [cc] });
    }
    this.note('garbage', from.slot.id, `to n${to.slot.id}`, m);
    this.net.injectRaw(from.slot.id, to.slot.id, m);
  }

  // ------------------------------------------------------------------ the run

  async run(): Promise<SimNodeResult> {
    resetMutations();
    if (this.options.mutation) setMutation(this.options.mutation, true);
    storageRandomness.salt = () => this.random.intn(0x100000000);
    const onUnhandled = (reason: unknown): void => {
      if (isDeadProcessError(reason)) return;
      this.fail(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let id = 1; id <= this.params.nodes; id++) this.startNode(this.slots.get(id)!);
      for (let step = 0; step < this.options.steps && this.failure === null; step++) {
        const until = this.loop.now + this.random.next() * this.params.stepGapMs;
        await this.loop.runUntil(until, () => this.failure !== null);
        if (this.failure !== null) break;
        this.action();
        this.note('step', 0, String(step));
      }
      if (this.failure === null) await this.heal();
      if (this.failure === null) this.guard(() => this.checker.finalChecks());
    } catch (err) {
      this.fail(`simulator threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      this.shutdownAll();
      resetMutations();
      storageRandomness.salt = null;
    }
    this.stats.events = this.loop.eventsRun;
    this.stats.virtualMs = Math.round(this.loop.now);
    this.stats.applied = this.checker.history.length;
    this.stats.resent = this.net.stats.resent;
    this.stats.rejectedBatches = this.net.stats.rejected;
    return {
      seed: this.options.seed,
      ok: this.failure === null,
      failure: this.failure,
      trace: this.failure === null ? [] : this.trace.lines(),
      traceHash: (this.traceHashValue >>> 0).toString(16).padStart(8, '0'),
      params: this.params,
      stats: this.stats,
    };
  }

  /** Ends the run: every process dies (nothing of it runs after this). */
  private shutdownAll(): void {
    for (const s of this.slots.values()) {
      if (s.proc !== null) {
        s.proc.alive = false;
        s.proc.clock.kill();
        if (s.proc.transport !== null) this.net.died(s.proc.transport);
      }
    }
  }

  /**
   * Liveness: the network heals, faults stop, every member runs; within HEAL_LIMIT_MS of
   * virtual time a leader must exist and fresh writes must apply on every member, whose stores
   * must then equal the history replayed.
   */
  private async heal(): Promise<void> {
    this.healing = true;
    this.net.healAll();
    this.net.faults = { ...CALM_NETWORK, resendProposals: this.params.net.resendProposals };
    for (const s of this.slots.values()) {
      s.crashAtOp = 0;
      s.crashInCut = false;
      s.crashLosesUnsynced = false;
      s.ioFault = null;
      s.disk.capacityBytes = Number.POSITIVE_INFINITY;
    }
    this.note('heal', 0, 'network healed, faults off');
    const deadline = this.loop.now + HEAL_LIMIT_MS;
    const healWrites: WriteRecord[] = [];
    let lastPropose = -Infinity;
    while (this.loop.now < deadline && this.failure === null) {
      // Every member runs (a node that stopped or crashed is restarted) — a member of any
      // running node's applied configuration: a voter that restarted with a commit index below
      // its removal of another (commit-only hard states are not synced) needs the removed
      // node's vote to commit that removal again, and an operator restarts a node a member
      // still lists.
      const conf = this.membership();
      for (const id of this.membersAnywhere(conf)) {
        const s = this.slots.get(id)!;
        if (s.state === 'down' || s.state === 'stopped' || s.state === 'none' || s.state === 'removed') {
          // (A member whose process stopped itself as 'removed' is restarted by the operator.)
          if (s.state === 'stopped' || s.state === 'removed') s.disk.killProcesses();
          if (s.proc !== null) {
            s.proc.alive = false;
            s.proc.clock.kill();
            if (s.proc.transport !== null) this.net.died(s.proc.transport);
          }
          this.startNode(s);
        }
      }
      await this.loop.runUntil(this.loop.now + 50, () => this.failure !== null);
      const up = this.upNodes();
      const leader = up.find((u) => u.node.isLeader);
      // Done once HEAL_WRITES writes are acknowledged (lost or timed-out ones are replaced).
      const done = healWrites.filter((w) => w.outcome === 'acked').length >= HEAL_WRITES &&
        !healWrites.some((w) => w.outcome === 'pending');
      if (!done && leader !== undefined && this.loop.now - lastPropose > 1500) {
        // Writes whose outcome is known to be lost are replaced by new ones.
        const live = healWrites.filter((w) => w.outcome === 'acked' || w.outcome === 'pending').length;
        for (let i = live; i < HEAL_WRITES; i++) healWrites.push(this.put(leader, 'heal-put'));
        lastPropose = this.loop.now;
      }
      if (!done) continue;
      const members = [...conf.voters, ...conf.learners];
      const total = this.checker.history.length;
      const lagging = members.filter((id) => {
        const s = this.slots.get(id)!;
        return s.state !== 'up' || s.proc === null || this.checker.position(id) < total;
      });
      if (lagging.length > 0) continue;
      // Converged: every member's store is the history replayed.
      const expected = this.checker.expectedStore();
      for (const id of members) {
        const kv = this.slots.get(id)!.proc!.kv;
        for (const key of KEYS) {
          const want = expected.get(key) ?? 0;
          const got = kv.get(key);
          if (want !== got) this.fail(`after healing n${id} holds ${key} = w${got}, expected w${want} (the last write to ${key} applied)`);
        }
      }
      this.note('healed', 0, `members ${members.join(',')} at ${total} writes`);
      return;
    }
    if (this.failure !== null) return;
    const states = [...this.slots.values()].map((s) => {
      const n = s.proc?.node;
      const st = s.state === 'up' && n ? n.status() : null;
      return `n${s.id}:${s.state}${st ? `/${st.role}/t${st.term}/lead${st.leader}/commit${st.commit}/applied${st.applied}` : ''}/pos${this.checker.position(s.id)}`;
    }).join(' ');
    const conf = this.membership();
    this.fail(`liveness: ${HEAL_LIMIT_MS} ms after healing, ` +
      `${this.upNodes().some((u) => u.node.isLeader) ? 'writes did not apply on every member' : 'no leader'}; ` +
      `voters ${conf.voters.join(',')} learners ${conf.learners.join(',')}; history ${this.checker.history.length}; ${states}`);
  }
}

function unionPeers(peers: { id: NodeId; url: string }[]): { id: NodeId; url: string }[] {
  const seen = new Map<NodeId, string>();
  for (const p of peers) if (!seen.has(p.id)) seen.set(p.id, p.url);
  return [...seen].map(([id, url]) => ({ id, url }));
}

function blankMessage(type: MessageType, from: NodeId, to: NodeId, term: number, fields: Partial<Message>): Message {
  return {
    type, from, to, term, logTerm: 0, index: 0, entries: [], commit: 0, snapshot: null, reject: false,
    rejectHint: 0, context: new Uint8Array(0), ...fields,
  } as Message;
}

export function isDeadProcessError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof SimProcessDeadError || (e as { code?: unknown }).code === 'ESIMDEAD') return true;
  }
  return false;
}

export function runSeed(options: SimNodeOptions): Promise<SimNodeResult> {
  return new SimNode(options).run();
}

/** The --enable/--disable flags that select `features` (relative to DEFAULT_FEATURES). */
export function featureFlags(features: readonly Feature[]): string[] {
  const on = FEATURES.filter((f) => features.includes(f) && !DEFAULT_FEATURES.includes(f));
  const off = DEFAULT_FEATURES.filter((f) => !features.includes(f));
  return [...(on.length > 0 ? [`--enable ${on.join(',')}`] : []), ...(off.length > 0 ? [`--disable ${off.join(',')}`] : [])];
}

export function formatFailure(result: SimNodeResult, options: SimNodeOptions): string {
  const flags = [
    `--seed ${result.seed}`, '--runs 1', `--steps ${options.steps}`,
    ...(options.mutation ? [`--mutation ${options.mutation}`] : []),
    ...featureFlags(options.features ?? DEFAULT_FEATURES),
  ].join(' ');
  return [
    `VIOLATION seed=${result.seed}: ${result.failure}`,
    `params: ${describeParams(result.params)}`,
    `last ${result.trace.length} events (time in µs of virtual time):`,
    ...result.trace.map((l) => `  ${l}`),
    `VIOLATION seed=${result.seed}: ${result.failure?.split('\n')[0]}`,
    `reproduce: npm run sim:node -- ${flags}`,
  ].join('\n');
}
