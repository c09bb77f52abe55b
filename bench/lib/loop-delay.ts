/**
 * Event-loop delay during a benchmark row, via perf_hooks.monitorEventLoopDelay.
 *
 * The histogram runs a timer every `resolutionMs` (1 ms is the finest Node allows) and records
 * the time between ticks, in nanoseconds — that INCLUDES the interval itself (an idle loop
 * records ~1.0–1.1 ms at resolution 1), so the delay reported here is that minus the interval.
 * Stalls are seen only where a tick was due: the resolution bounds how finely they are timed.
 *
 * A row runs in several interleaved rounds. Re-enabling one histogram would record the whole
 * disabled gap as a single huge sample, and ELD histograms cannot be added together, so every
 * round gets a fresh histogram and the row's percentiles are computed from the rounds'
 * distributions (finely sampled percentiles, weighted by sample count).
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export const LOOP_DELAY_RESOLUTION_MS = 1;

/** Where each round's distribution is sampled: fine toward the tail the report cares about. */
const CDF_PERCENTS: readonly number[] = [
  ...Array.from({ length: 90 }, (_, i) => i + 1),
  ...Array.from({ length: 90 }, (_, i) => (910 + i) / 10),
  ...Array.from({ length: 100 }, (_, i) => (9901 + i) / 100),
];

interface RoundDistribution {
  count: number;
  /** [percentile 0..100, delay ns], ascending. */
  points: Array<[number, number]>;
}

/** The largest sampled percentile (as a fraction) whose delay is <= value: a binary search, as
 * a row measured in many short slices has many rounds and many candidate values. */
function fractionAtOrBelow(points: ReadonlyArray<[number, number]>, value: number): number {
  let lo = 0;
  let hi = points.length; // first index whose delay is > value
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid]![1] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : points[lo - 1]![0] / 100;
}

export class LoopDelayMonitor {
  private current: IntervalHistogram | null = null;
  private readonly rounds: RoundDistribution[] = [];

  constructor(readonly resolutionMs = LOOP_DELAY_RESOLUTION_MS) {}

  start(): void {
    if (this.current) throw new Error('LoopDelayMonitor already running');
    this.current = monitorEventLoopDelay({ resolution: this.resolutionMs });
    this.current.enable();
  }

  stop(): void {
    const histogram = this.current;
    if (!histogram) throw new Error('LoopDelayMonitor not running');
    histogram.disable();
    this.current = null;
    if (histogram.count === 0) return;
    // Sample the round's distribution finely (the built-in `percentiles` map is coarse at the top).
    const points = CDF_PERCENTS.map((percent): [number, number] => [percent, histogram.percentile(percent)]);
    this.rounds.push({ count: histogram.count, points });
  }

  /** Delay percentile in microseconds (tick interval minus the resolution); NaN when no tick ran. */
  percentileUs(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be 0..100, got ${p}`);
    const total = this.rounds.reduce((sum, round) => sum + round.count, 0);
    if (total === 0) return Number.NaN;
    // Smallest recorded value v with sum over rounds of count * P(delay <= v) >= p% of all.
    const candidates = [...new Set(this.rounds.flatMap((round) => round.points.map(([, v]) => v)))].sort(
      (a, b) => a - b,
    );
    for (const value of candidates) {
      let below = 0;
      for (const round of this.rounds) below += fractionAtOrBelow(round.points, value) * round.count;
      if (below >= (p / 100) * total - 1e-9) return this.toDelayUs(value);
    }
    return this.toDelayUs(candidates.at(-1)!);
  }

  private toDelayUs(intervalNs: number): number {
    return Math.max(0, intervalNs / 1000 - this.resolutionMs * 1000);
  }
}
