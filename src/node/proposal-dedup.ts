/**
 * At-most-once application of proposals, whatever the network repeats.
 *
 * Every proposal carries its request tag (origin node, incarnation, sequence number: see
 * envelope.ts). A transport that re-sends a request whose answer it never saw (undici re-sends
 * the unanswered requests of a closed pipelined connection) can make a leader append the same
 * proposal twice; both copies commit. Applying the second one would, for the KV store, let a
 * late `PUT x=1` overwrite an acknowledged `PUT x=2`. So the runtime asks this table before
 * applying a committed proposal, and skips a repeat.
 *
 * Every replica must decide alike, so the table depends only on the log (it is fed committed
 * entries in log order) and on snapshots (it travels in the snapshot's metadata and is restored
 * with it); nothing local (time, arrival order, this node's own requests) enters it.
 *
 * Why a window of sequence numbers per origin and not just the highest one: proposals from one
 * origin are not committed in sequence order. A follower forwards a proposal to the node it
 * believes leads; if that node has just lost leadership it forwards it again to the new leader,
 * and a later proposal sent straight to the new leader gets in first. So the table remembers
 * the `window` highest sequence numbers applied per (origin, incarnation); anything at or below
 * the highest one forgotten counts as applied. A proposal overtaken by more than `window` later
 * ones from the same origin would be skipped (its proposer then sees ProposalLostError, which
 * is true: it was not and will not be applied). At most `origins` (origin, incarnation) pairs
 * are tracked; when a new one arrives, the pair whose last proposal was applied earliest is
 * forgotten (each restart of a node starts a new incarnation, so old pairs go quiet).
 */

import type { NodeId } from '../raft/types.js';
import type { RequestTag } from './envelope.js';

export interface DedupLimits {
  /** (origin, incarnation) pairs remembered. */
  origins: number;
  /** Sequence numbers remembered per pair. */
  window: number;
}

export const DEFAULT_DEDUP_LIMITS: Readonly<DedupLimits> = { origins: 256, window: 4096 };

/** The table as it is stored in a snapshot (JSON): one record per (origin, incarnation). */
export interface DedupRecord {
  /** origin */
  o: NodeId;
  /** incarnation */
  i: number;
  /** Every sequence number ≤ this counts as applied. */
  f: number;
  /** Log index of the latest proposal applied from this pair (eviction order). */
  x: number;
  /** Applied sequence numbers above `f` as ascending inclusive ranges: [from, to, from, to…]. */
  r: number[];
}

interface Origin {
  origin: NodeId;
  incarnation: number;
  floor: number;
  lastIndex: number;
  /** Applied sequence numbers above `floor`, ascending: seqs[start..]. (A moving start keeps
   * dropping the oldest O(1); the dead prefix is cut off once it is as long as the window.) */
  seqs: number[];
  start: number;
}

function keyOf(origin: NodeId, incarnation: number): string {
  return `${origin}/${incarnation}`;
}

function isPositiveInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

function isNonNegativeInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

export class ProposalDedup {
  private readonly limits: DedupLimits;
  private readonly byKey = new Map<string, Origin>();

  constructor(limits: DedupLimits = DEFAULT_DEDUP_LIMITS) {
    if (!isPositiveInt(limits.origins) || !isPositiveInt(limits.window)) {
      throw new RangeError(`dedup limits must be positive integers, got ${JSON.stringify(limits)}`);
    }
    this.limits = { ...limits };
  }

  /**
   * Records that the proposal with `tag`, committed at log `index`, is being applied; returns
   * false when it is a repeat of one applied before (then nothing is recorded). Call for every
   * committed tagged entry, in log order.
   */
  admit(tag: RequestTag, index: number): boolean {
    const key = keyOf(tag.origin, tag.incarnation);
    let o = this.byKey.get(key);
    const seq = tag.seq;
    if (o === undefined) {
      o = { origin: tag.origin, incarnation: tag.incarnation, floor: 0, lastIndex: index, seqs: [seq], start: 0 };
      this.byKey.set(key, o);
      if (this.byKey.size > this.limits.origins) this.evictOldest();
      return true;
    }
    if (seq <= o.floor) return false;
    const seqs = o.seqs;
    if (seqs.length === o.start || seq > seqs[seqs.length - 1]!) {
      seqs.push(seq); // the usual case: the newest proposal of its origin
    } else {
      const at = lowerBound(seqs, o.start, seq);
      if (seqs[at] === seq) return false;
      seqs.splice(at, 0, seq);
    }
    o.lastIndex = index;
    if (seqs.length - o.start > this.limits.window) {
      o.floor = seqs[o.start]!;
      o.start++;
      if (o.start >= this.limits.window) {
        o.seqs = seqs.slice(o.start);
        o.start = 0;
      }
    }
    return true;
  }

  /** Number of (origin, incarnation) pairs tracked. */
  get size(): number {
    return this.byKey.size;
  }

  /** The table for a snapshot, in a fixed order (so equal tables encode to equal bytes). */
  toRecords(): DedupRecord[] {
    const out: DedupRecord[] = [];
    for (const o of this.byKey.values()) {
      const r: number[] = [];
      for (let k = o.start; k < o.seqs.length; k++) {
        const s = o.seqs[k]!;
        if (r.length > 0 && r[r.length - 1] === s - 1) r[r.length - 1] = s;
        else r.push(s, s);
      }
      out.push({ o: o.origin, i: o.incarnation, f: o.floor, x: o.lastIndex, r });
    }
    return out.sort((a, b) => a.o - b.o || a.i - b.i);
  }

  /** Rebuilds a table from `toRecords` output; throws on anything else (snapshot data comes
   * from peers). The records' windows may have been written under other limits. */
  static fromRecords(records: unknown, limits: DedupLimits = DEFAULT_DEDUP_LIMITS): ProposalDedup {
    const d = new ProposalDedup(limits);
    if (!Array.isArray(records)) throw new TypeError('proposal table: expected an array');
    for (const [n, rec] of records.entries()) {
      const where = `proposal table record ${n}`;
      if (rec === null || typeof rec !== 'object') throw new TypeError(`${where}: expected an object`);
      const { o, i, f, x, r } = rec as Partial<DedupRecord>;
      if (!isPositiveInt(o) || !isNonNegativeInt(i) || !isNonNegativeInt(f) || !isNonNegativeInt(x) || !Array.isArray(r)) {
        throw new TypeError(`${where}: malformed`);
      }
      if (r.length % 2 !== 0) throw new TypeError(`${where}: ranges must come in pairs`);
      const seqs: number[] = [];
      let prev = f;
      for (let k = 0; k < r.length; k += 2) {
        const from = r[k];
        const to = r[k + 1];
        if (!isPositiveInt(from) || !isPositiveInt(to) || from <= prev || to < from) {
          throw new TypeError(`${where}: ranges must ascend above ${f}`);
        }
        if (seqs.length + (to - from + 1) > Math.max(limits.window, DEFAULT_DEDUP_LIMITS.window) * 2) {
          throw new TypeError(`${where}: more sequence numbers than any window holds`);
        }
        for (let s = from; s <= to; s++) seqs.push(s);
        prev = to;
      }
      const key = keyOf(o, i);
      if (d.byKey.has(key)) throw new TypeError(`${where}: (${o}, ${i}) listed twice`);
      const drop = Math.max(0, seqs.length - limits.window);
      const floor = drop > 0 ? seqs[drop - 1]! : f;
      d.byKey.set(key, { origin: o, incarnation: i, floor, lastIndex: x, seqs: seqs.slice(drop), start: 0 });
    }
    while (d.byKey.size > limits.origins) d.evictOldest();
    return d;
  }

  private evictOldest(): void {
    let victim: string | null = null;
    let victimIndex = Infinity;
    for (const [key, o] of this.byKey) {
      if (o.lastIndex < victimIndex) {
        victim = key;
        victimIndex = o.lastIndex;
      }
    }
    if (victim !== null) this.byKey.delete(victim);
  }
}

/** First position in sorted `a[from..]` whose value is ≥ `v`. */
function lowerBound(a: readonly number[], from: number, v: number): number {
  let lo = from;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
