/**
 * Safety invariants, checked incrementally as the hosts report what they persist, commit,
 * apply, send and read. Every check is O(change), so it runs on every step of every run.
 *
 * Bookkeeping is by chain hash (see hash.ts): `chain(i)` of a log identifies its whole prefix
 * up to i, so "log matching" is "two logs with the same (index, term) have the same chain",
 * and "no two nodes apply different entries at one index" is "every node's applied chain at i
 * equals the global applied chain at i".
 */
import type { ConfState, Entry, NodeId, Snapshot } from '../../src/raft/types.js';
import { chainHash } from './hash.js';

export class SimViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimViolation';
  }
}

export function violation(message: string): never {
  throw new SimViolation(message);
}

/** The checker's view of one node's durable log (mirrors what the host persisted). */
export interface LogMirror {
  readonly id: NodeId;
  /** chain[i] / terms[i] / writeId[i] are valid for logFirst ≤ i ≤ logLast. */
  chain: number[];
  terms: number[];
  writeId: number[];
  /** Index of the snapshot the durable log starts after (0 when none). */
  logFirst: number;
  logLast: number;
}

export interface PendingRead {
  readId: number;
  node: NodeId;
  /** Highest index of a write that was committed (anywhere) when the read was requested. */
  minIndex: number;
  requestedAtStep: number;
}

const TERM_LIMIT = 0x100000;

export class Checker {
  readonly leaderByTerm = new Map<number, NodeId>();
  /** (index, term) → chain hash, as first persisted by any node. */
  private readonly chainByIndexTerm = new Map<number, number>();
  /** Global committed log: index → chain/term/write id (defined from the first node whose
   * commit index covered it). */
  private readonly committedChain: number[] = [0];
  private readonly committedWrite: number[] = [0];
  /** Term of the node that first recorded each index as committed (≥ the true commit term). */
  private readonly committedTerm: number[] = [0];
  commitIndex = 0;
  /** Highest committed index holding a client write. */
  maxCommittedWriteIndex = 0;
  /** Global applied history: index → chain hash after applying it, from the first applier. */
  private readonly appliedChain: number[] = [0];
  private readonly appliedTerm: number[] = [0];
  private readonly appliedConf = new Map<number, string>();
  appliedIndex = 0;
  /** Client write id → index where it was first applied. */
  readonly writeAppliedAt = new Map<number, number>();

  /** Number of bootstrap ConfChange entries at the start of the log. */
  bootstrapEntries = 0;
  readonly pendingReads = new Map<number, PendingRead>();
  readsChecked = 0;
  leadersSeen = 0;

  /** Records that `id` acted as leader of `term`; two leaders in one term is a violation. */
  onLeader(term: number, id: NodeId, source: string): void {
    const existing = this.leaderByTerm.get(term);
    if (existing === undefined) {
      this.leaderByTerm.set(term, id);
      this.leadersSeen++;
      return;
    }
    if (existing !== id) {
      violation(`two leaders in term ${term}: n${existing} and n${id} (seen via ${source})`);
    }
  }

  /** Leader completeness: every entry committed in a term < `term` must be in the log of the
   * leader of `term`. Called right after the leader persisted a Ready (its whole log is then
   * durable, and a leader's log only grows, so it is a superset of its log at election). */
  checkLeaderCompleteness(log: LogMirror, term: number): void {
    // Highest index committed by a node whose term was < `term` (commit is a prefix, so every
    // entry below it was committed by then too).
    let c = this.commitIndex;
    while (c > 0 && (this.committedTerm[c] as number) >= term) c--;
    if (c === 0 || c <= log.logFirst) return; // nothing, or covered by its checked snapshot
    if (log.logLast < c) {
      violation(`leader completeness: n${log.id} leads term ${term} but its log ends at ` +
        `${log.logLast}, before entry ${c} committed in term ${this.committedTerm[c]}`);
    }
    if (log.chain[c] !== this.committedChain[c]) {
      violation(`leader completeness: n${log.id} leads term ${term} but its log up to ${c} ` +
        `(entry ${c}@${log.terms[c]}) differs from the entries committed in term ${this.committedTerm[c]}`);
    }
  }

  /** A node made `entries` durable: update its mirror; same (index, term) ⇒ same prefix. */
  onPersistEntries(log: LogMirror, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    if (first > log.logLast + 1) {
      violation(`n${log.id} persisted entries from ${first} but its log ends at ${log.logLast} (gap)`);
    }
    let prevIndex = first - 1;
    for (const e of entries) {
      if (e.index !== prevIndex + 1) violation(`n${log.id} persisted non-contiguous entries at ${e.index}`);
      prevIndex = e.index;
      if (e.index <= log.logFirst) continue; // already covered by the snapshot
      const prevTerm = log.terms[e.index - 1] as number;
      if (e.term < prevTerm) {
        violation(`n${log.id} log terms decrease: entry ${e.index} has term ${e.term} after term ${prevTerm}`);
      }
      if (e.term >= TERM_LIMIT) violation(`term ${e.term} is beyond the simulator's key range`);
      const chain = chainHash(log.chain[e.index - 1] as number, e);
      log.chain[e.index] = chain;
      log.terms[e.index] = e.term;
      log.writeId[e.index] = writeIdOf(e);
      const key = e.index * TERM_LIMIT + e.term;
      const known = this.chainByIndexTerm.get(key);
      if (known === undefined) {
        this.chainByIndexTerm.set(key, chain);
      } else if (known !== chain) {
        violation(`log matching: n${log.id} has entry ${e.index}@${e.term} whose log prefix ` +
          `differs from another node's entry ${e.index}@${e.term}`);
      }
    }
    log.logLast = prevIndex;
  }

  /** A node made a snapshot durable (received from a leader). */
  onPersistSnapshot(log: LogMirror, snap: Snapshot): void {
    const { index, term } = snap.metadata;
    if (index > this.appliedIndex) {
      violation(`n${log.id} received snapshot at ${index} beyond anything applied (${this.appliedIndex})`);
    }
    if (this.appliedTerm[index] !== term) {
      violation(`n${log.id} received snapshot ${index}@${term} but the entry applied at ${index} ` +
        `has term ${this.appliedTerm[index]}`);
    }
    log.logFirst = index;
    log.logLast = index;
    log.chain[index] = this.appliedChain[index] as number;
    log.terms[index] = term;
    log.writeId[index] = 0;
  }

  /** A node compacted its log up to `index` after snapshotting its state machine there. */
  onCompact(log: LogMirror, index: number): void {
    if (index > log.logFirst) log.logFirst = index;
  }

  /** A node's durable commit index advanced from `from` to `to`: its log prefix up to `to`
   * is committed and must agree with every other node's committed prefix. */
  onCommitAdvance(log: LogMirror, from: number, to: number, term: number): void {
    if (to > log.logLast) {
      violation(`n${log.id} commit ${to} beyond its durable log end ${log.logLast}`);
    }
    for (let i = Math.max(from + 1, log.logFirst); i <= to; i++) {
      const chain = log.chain[i] as number;
      const known = this.committedChain[i];
      if (known === undefined) {
        if (i > this.commitIndex + 1) {
          // A gap can only appear below a snapshot boundary; fill lazily when known.
          continue;
        }
        this.committedChain[i] = chain;
        this.committedTerm[i] = term;
        this.committedWrite[i] = log.writeId[i] as number;
        this.commitIndex = i;
        if ((log.writeId[i] as number) > 0) this.maxCommittedWriteIndex = i;
      } else if (known !== chain) {
        violation(`committed entries differ at index ${i}: n${log.id} committed ` +
          `entry ${i}@${log.terms[i]} which differs from the entry committed there before`);
      }
    }
  }

  /** A node applied `entry`, its state-machine chain becoming `chain`. */
  onApply(node: NodeId, entry: Entry, chain: number): void {
    const i = entry.index;
    const known = this.appliedChain[i];
    if (known === undefined) {
      if (i !== this.appliedIndex + 1) {
        violation(`n${node} applied index ${i} but nothing was applied anywhere at ${this.appliedIndex + 1}`);
      }
      this.appliedChain[i] = chain;
      this.appliedTerm[i] = entry.term;
      this.appliedIndex = i;
      const w = writeIdOf(entry);
      if (w > 0 && !this.writeAppliedAt.has(w)) this.writeAppliedAt.set(w, i);
      // Applying means committed: extend the committed view if no durable commit showed it yet.
      if (this.committedChain[i] === undefined && i === this.commitIndex + 1) {
        this.committedChain[i] = chain;
        this.committedTerm[i] = Number.POSITIVE_INFINITY; // unknown: exclude from completeness
        this.committedWrite[i] = writeIdOf(entry);
        this.commitIndex = i;
        if (writeIdOf(entry) > 0) this.maxCommittedWriteIndex = i;
      }
    } else if (known !== chain) {
      violation(`state machines diverge at index ${i}: n${node} applied ${i}@${entry.term} ` +
        `(after a different history or with different data) than the first node that applied ${i}@${this.appliedTerm[i]}`);
    }
    const committed = this.committedChain[i];
    if (committed !== undefined && committed !== chain) {
      violation(`n${node} applied entry ${i}@${entry.term} that differs from the committed entry at ${i}`);
    }
  }

  /** Every node's ConfState after applying the ConfChange at `index` must be the same. */
  onConfApplied(node: NodeId, index: number, cs: ConfState): void {
    // Bootstrap entries are applied inside bootstrap() on the original nodes (so their result
    // is the full initial config) but one by one after a restart: not comparable.
    if (index <= this.bootstrapEntries) return;
    const text = describeConf(cs);
    const known = this.appliedConf.get(index);
    if (known === undefined) this.appliedConf.set(index, text);
    else if (known !== text) {
      violation(`n${node} has config ${text} after applying conf change ${index}; another node had ${known}`);
    }
  }

  /** A node's state machine was restored from a snapshot with this (index, chain). */
  onRestore(node: NodeId, index: number, chain: number): void {
    if (this.appliedChain[index] !== chain) {
      violation(`n${node} restored a snapshot at ${index} whose state differs from the state applied at ${index}`);
    }
  }

  registerRead(read: PendingRead): void {
    this.pendingReads.set(read.readId, read);
  }

  /** A ReadIndex request completed at `index` (served once applied ≥ index). */
  onReadState(node: NodeId, readId: number, index: number): PendingRead | null {
    const read = this.pendingReads.get(readId);
    if (read === undefined) return null; // a duplicate response or an earlier incarnation's
    if (read.node !== node) violation(`n${node} got read state for read ${readId} issued on n${read.node}`);
    if (index < read.minIndex) {
      violation(`stale read: read ${readId} on n${node} (requested at step ${read.requestedAtStep}) ` +
        `got read index ${index} but a write was already committed at ${read.minIndex}`);
    }
    return read;
  }

  /** The read is served on a state machine that has applied `applied` entries. */
  onReadServed(read: PendingRead, applied: number): void {
    if (applied < read.minIndex) {
      violation(`stale read: read ${read.readId} served at applied ${applied} < ${read.minIndex}`);
    }
    this.pendingReads.delete(read.readId);
    this.readsChecked++;
  }
}


export function describeConf(cs: ConfState): string {
  const v = [...cs.voters].sort((a, b) => a - b).join(',');
  const l = [...cs.learners].sort((a, b) => a - b).join(',');
  return `v[${v}] l[${l}]`;
}

/** Client writes carry 'W' + a u32 write id; 0 for anything else. */
export const WRITE_MAGIC = 0x57;

export function writeIdOf(e: Entry): number {
  const d = e.data;
  if (e.type !== 0 || d.length < 5 || d[0] !== WRITE_MAGIC) return 0;
  return ((d[1] as number) | ((d[2] as number) << 8) | ((d[3] as number) << 16)) + (d[4] as number) * 0x1000000;
}

export function encodeWrite(writeId: number, padding: number): Uint8Array {
  const d = new Uint8Array(5 + padding);
  d[0] = WRITE_MAGIC;
  d[1] = writeId & 0xff;
  d[2] = (writeId >>> 8) & 0xff;
  d[3] = (writeId >>> 16) & 0xff;
  d[4] = (writeId >>> 24) & 0xff;
  for (let i = 5; i < d.length; i++) d[i] = (writeId * 31 + i) & 0xff;
  return d;
}
