/**
 * Latency trace for performance work (off unless RAFTKV_TRACE names a directory).
 *
 * Each process appends lines `<epochMs> <event> <lo> <hi> <peer>` to
 * `$RAFTKV_TRACE/trace-<pid>.txt`; bench/trace-report.ts joins the files by log index to show
 * where the time of a write goes (propose → leader Ready → App sent → follower receive → …).
 * Lives in the transport (the lowest layer that records events) so both the runtime and the
 * transport can use it without a dependency cycle.
 */

import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const dir = process.env.RAFTKV_TRACE ?? '';

/** True when tracing is on; callers test it before building event arguments. */
export const traceOn = dir !== '';

let lines: string[] = [];
let file = '';

function flushTrace(): void {
  if (lines.length === 0) return;
  const text = lines.join('');
  lines = [];
  try {
    appendFileSync(file, text);
  } catch {
    // tracing is best effort
  }
}

if (traceOn) {
  file = path.join(dir, `trace-${process.pid}.txt`);
  setInterval(flushTrace, 500).unref();
  process.on('exit', flushTrace);
}

/** Records `event` for log indexes lo..hi (and a peer id, 0 if none). */
export function trace(event: string, lo: number, hi: number, peer = 0, at = traceNow()): void {
  if (!traceOn) return;
  lines.push(`${at.toFixed(3)} ${event} ${lo} ${hi} ${peer}\n`);
}

/** Epoch milliseconds with sub-millisecond precision (comparable across local processes). */
export function traceNow(): number {
  return performance.timeOrigin + performance.now();
}
