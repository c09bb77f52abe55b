/**
 * Event-loop delay during a benchmark row, via perf_hooks.monitorEventLoopDelay.
 *
 * The histogram runs a timer every `resolutionMs` (1 ms is the finest Node allows) and records
 * the time between ticks, in nanoseconds — that INCLUDES the interval itself (an idle loop
 * records ~1.0–1.1 ms at resolution 1), so the delay reported here is that minus the interval.
 * Stalls are seen only where a tick was due: the resolution bounds how finely they are timed.
 * One monitor per row, enabled only while that row runs, so interleaved rounds accumulate.
 */

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export const LOOP_DELAY_RESOLUTION_MS = 1;

export class LoopDelayMonitor {
  private readonly histogram: IntervalHistogram;
  private running = false;

  constructor(readonly resolutionMs = LOOP_DELAY_RESOLUTION_MS) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  }

  start(): void {
    if (this.running) throw new Error('LoopDelayMonitor already running');
    this.running = true;
    this.histogram.enable();
  }

  stop(): void {
    if (!this.running) throw new Error('LoopDelayMonitor not running');
    this.running = false;
    this.histogram.disable();
  }

  /** Delay percentile in microseconds (tick interval minus the resolution); NaN when no tick ran. */
  percentileUs(p: number): number {
    if (this.histogram.count === 0) return Number.NaN;
    return Math.max(0, this.histogram.percentile(p) / 1000 - this.resolutionMs * 1000);
  }
}
