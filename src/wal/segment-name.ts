/** Segment file names: `<seq:016x>-<firstIndex:016x>.wal` (docs/wal-format.md). */


export interface SegmentName {
  seq: number;
  firstIndex: number;
}

function hex16(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a non-negative safe integer: ${n}`);
  return n.toString(16).padStart(16, '0');
}

/** `<a:016x>-<b:016x>.<ext>`: the naming of WAL segments and snapshot files (as etcd's). */
export function hexPairFileName(a: number, b: number, ext: string): string {
  return `${hex16(a)}-${hex16(b)}.${ext}`;
}

/** Parses `hexPairFileName`'s output; null for anything else, or numbers past 2^53 (indexes
 * and terms are safe integers, so such a name cannot be ours). */
export function parseHexPairFileName(name: string, ext: string): [number, number] | null {
  if (name.length !== 34 + ext.length || name[16] !== '-' || name.slice(33) !== `.${ext}`) return null;
  const digits = /^[0-9a-f]{16}$/;
  const left = name.slice(0, 16);
  const right = name.slice(17, 33);
  if (!digits.test(left) || !digits.test(right)) return null;
  const a = Number.parseInt(left, 16);
  const b = Number.parseInt(right, 16);
  if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) return null;
  return [a, b];
}

export function segmentFileName(seq: number, firstIndex: number): string {
  return hexPairFileName(seq, firstIndex, 'wal');
}

/** Parses a segment file name; null for anything else (tmp files, LOCK, *.broken, …). */
export function parseSegmentFileName(name: string): SegmentName | null {
  const pair = parseHexPairFileName(name, 'wal');
  return pair === null ? null : { seq: pair[0], firstIndex: pair[1] };
}

/** The name a segment is prepared under before the cut gives it its firstIndex. */
export function preparedSegmentFileName(seq: number): string {
  return `${hex16(seq)}.wal.tmp`;
}

export function hex(n: number): string {
  return n.toString(16);
}
