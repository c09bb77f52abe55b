/** Latency samples and percentiles for benchmarks. */

/** The p-th percentile (0..100) of ascending-sorted `sorted` (nearest rank); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be 0..100, got ${p}`);
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Collects samples (e.g. microseconds) into a growable Float64Array. */
export class SampleRecorder {
  private samples = new Float64Array(1024);
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(value: number): void {
    if (this.count === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.count++] = value;
  }

  pushAll(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) this.push(values[i]!);
  }

  /** Percentiles of everything recorded so far. */
  percentiles(...ps: number[]): number[] {
    const sorted = this.samples.slice(0, this.count).sort();
    return ps.map((p) => percentile(sorted, p));
  }
}
