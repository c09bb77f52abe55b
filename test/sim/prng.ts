/**
 * The simulator's single source of randomness: one SeededRandom (the core's own PRNG) per run.
 * Every decision of a run — which step to take, faults, workload, and the Raft nodes' election
 * jitter (they share this instance as their RandomSource) — draws from it, so a seed replays the
 * exact same run.
 */
import { SeededRandom } from '../../src/raft/random.js';
import type { RandomSource } from '../../src/raft/types.js';

export class SimRandom implements RandomSource {
  private readonly source: SeededRandom;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    this.source = new SeededRandom(seed);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.source.next();
  }

  /** Uniform integer in [0, n). */
  intn(n: number): number {
    return Math.floor(this.source.next() * n);
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.intn(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.source.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.intn(items.length)] as T;
  }
}
