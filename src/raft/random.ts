import type { RandomSource } from './types.js';
import { assert } from './assert.js';

/**
 * Small, fast, seedable PRNG (mulberry32). Deterministic for a given seed, so a simulation run
 * can be replayed exactly. Not cryptographic.
 */
export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    assert(Number.isFinite(seed), `seed must be a finite number, got ${seed}`);
    // Fold in the high bits so seeds above 2^32 still differ.
    this.state = (seed >>> 0) ^ (Math.floor(seed / 4294967296) >>> 0);
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [0, n). */
  intn(n: number): number {
    assert(Number.isSafeInteger(n) && n > 0, `intn: n must be a positive safe integer, got ${n}`);
    return Math.floor(this.next() * n);
  }
}
