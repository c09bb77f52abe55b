/** Segment file names: `<seq:016x>-<firstIndex:016x>.wal` (docs/wal-format.md). */

const SEGMENT_NAME_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface SegmentName {
  seq: number;
  firstIndex: number;
}

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a non-negative safe integer: ${n}`);
  return n.toString(16).padStart(16, '0');
}

export function segmentFileName(seq: number, firstIndex: number): string {
  return `${hex16(seq)}-${hex16(firstIndex)}.wal`;
}

/** Parses a segment file name; null for anything else (tmp files, LOCK, *.broken, …). */
export function parseSegmentFileName(name: string): SegmentName | null {
  const m = SEGMENT_NAME_RE.exec(name);
  if (m === null) return null;
  const seq = Number.parseInt(m[1]!, 16);
  const firstIndex = Number.parseInt(m[2]!, 16);
  // Names beyond 2^53 cannot be ours (indexes are safe integers): treat them as foreign.
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(firstIndex)) return null;
  return { seq, firstIndex };
}

/** The name a segment is prepared under before the cut gives it its firstIndex. */
export function preparedSegmentFileName(seq: number): string {
  return `${hex16(seq)}.wal.tmp`;
}

export function hex(n: number): string {
  return n.toString(16);
}
