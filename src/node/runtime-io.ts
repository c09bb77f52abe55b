/**
 * The seams of NodeRuntime (runtime.ts): everything it needs from the world, as interfaces, so
 * the same Ready-pass code runs in production (NodeStorage, Transport, real timers; composed by
 * RaftNode) and in a deterministic simulator (simulated disk, network and virtual clock).
 *
 * The runtime calls no global timer, clock or random source itself: it schedules passes and
 * timers only through RuntimeClock, and its randomness (the core's RandomSource, the
 * incarnation) is given to it.
 */

import type { Entry, HardState, Message, NodeId, RandomSource, Snapshot, SnapshotMetadata } from '../raft/types.js';
import type { TransportOptions, TransportStats } from '../transport/types.js';

/** Durable storage, as the Ready pass uses it (NodeStorage in production). Any rejection is
 * fatal: the runtime stops and never retries a write. */
export interface RuntimeStorage {
  /** One WAL append: `entries` then `hardState` (null: unchanged). Resolves once durable when
   * `mustSync`; otherwise once written (a commit-index-only hard state, which a crash may lose).
   * Writes take effect in call order. */
  save(hardState: HardState | null, entries: Entry[], mustSync: boolean): Promise<void>;
  /** Makes a snapshot durable (the snapshot file first, then its WAL marker; both synced). */
  saveSnapshot(snapshot: Snapshot): Promise<void>;
  /** Everything before `index` is covered by a durable snapshot: storage may drop it. */
  releaseTo(index: number): Promise<void>;
  /** Snapshot files written and read as streams (NodeStorage). Without them the runtime keeps
   * the state machine's snapshot inline in `Snapshot.data` (the simulator). */
  readonly snapshotFiles?: SnapshotFiles;
}

/** Snapshot state kept in files, out of memory (see snapshot-ref.ts). */
export interface SnapshotFiles {
  /** Writes the snapshot file (head + body, durably) but not its WAL marker: saveSnapshot with
   * the descriptor does that. Resolves with the body's length and CRC-32C. */
  write(metadata: SnapshotMetadata, head: Uint8Array, body: AsyncIterable<Uint8Array>): Promise<{ bodyBytes: number; bodyCrc: number }>;
  /** The body of a written snapshot file, chunk by chunk, checked as it is read. */
  readBody(metadata: SnapshotMetadata): AsyncIterable<Uint8Array>;
}

/** The peer transport, as the Ready pass uses it (Transport in production). */
export interface RuntimeTransport {
  /** Queues messages for their peers; never throws for an unreachable peer. */
  send(messages: Message[]): void;
  /** Puts queued messages on the wire now (the leader's appends, before its own WAL write). */
  flushNow(): void;
  /** Makes the member list exactly `members` (id → URL, not this node) and the ids answered
   * 410 Gone exactly `removed` (membership.ts derives both from the applied configuration). */
  setMembers(members: ReadonlyMap<NodeId, string>, removed: ReadonlySet<NodeId>): void;
}

/** A pending timer of a RuntimeClock. */
export interface RuntimeTimer {
  /** Stops the timer; nothing happens if it already fired. */
  cancel(): void;
}

/** Scheduling, as the Ready pass uses it (setImmediate/setTimeout in production). */
export interface RuntimeClock {
  /** Runs `pass` soon, after every input already queued (production: setImmediate, so all
   * inputs of one event-loop turn go into one pass). Must NOT run it synchronously. */
  schedulePass(pass: () => void): void;
  /** Runs `fire` once after `ms` milliseconds unless cancelled. */
  setTimer(fire: () => void, ms: number): RuntimeTimer;
}

/** Latency tracing (RAFTKV_TRACE in production): events for log index ranges. */
export type RuntimeTracer = (event: string, lo: number, hi: number, peer?: number) => void;

/** The production clock: setImmediate for passes, setTimeout for timers. */
export const REAL_CLOCK: RuntimeClock = {
  schedulePass: (pass) => void setImmediate(pass),
  setTimer: (fire, ms) => {
    const timer = setTimeout(fire, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};

/** The peer transport as RaftNode uses it: Transport in production. */
export interface NodeTransport extends RuntimeTransport {
  start(): Promise<void>;
  stop(): Promise<void>;
  address(): { host: string; port: number };
  stats(): TransportStats;
}

/**
 * @internal For the deterministic whole-node simulator (test/simnode) only, not a public
 * option: replaces everything RaftNode takes from the world besides its filesystem (which
 * `fileSystem` replaces) — timers (ticks, request timeouts, Ready passes), randomness, the
 * incarnation, and the peer transport (built from the options RaftNode would give Transport).
 */
export interface NodeSimulation {
  clock: RuntimeClock;
  random: RandomSource;
  /** Never 0. */
  incarnation: number;
  createTransport(options: TransportOptions): NodeTransport;
}
