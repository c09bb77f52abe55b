/**
 * Event-loop delay during a benchmark row, via perf_hooks.monitorEventLoopDelay.
 *
 * The histogram samples with a timer every `resolutionMs` (1 ms is the finest Node allows) and
 * records how late each tick ran, in nanoseconds: a stall shorter than the resolution can still
 * show up (the tick after it is late), but stalls are only seen where a tick was due.
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

  /** Delay percentile in microseconds; NaN when no tick was recorded. */
  percentileUs(p: number): number {
    if (this.histogram.count === 0) return Number.NaN;
    return this.histogram.percentile(p) / 1000;
  }
}
