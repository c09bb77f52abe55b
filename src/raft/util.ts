import type { Entry, ConfState, HardState } from './types.js';

/** Fixed per-entry overhead counted in byte limits (term, index, type, framing). */
export const ENTRY_OVERHEAD_BYTES = 16;

/** Size an entry is charged in byte limits; cheap on purpose (no encoding). */
export function entrySize(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/** Payload bytes only, used for the uncommitted-size limit (an empty entry costs 0). */
export function payloadSize(e: Entry): number {
  return e.data.byteLength;
}

export function payloadsSize(ents: readonly Entry[]): number {
  let s = 0;
  for (let i = 0; i < ents.length; i++) s += ents[i]!.data.byteLength;
  return s;
}

/**
 * The longest prefix of `ents` whose total size is ≤ maxSize, but always at least one entry.
 * Returns `ents` itself (no copy) when nothing has to be cut.
 */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length <= 1) return ents;
  let size = entrySize(ents[0]!);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]!);
    if (size > maxSize) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === 0 && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: cs.voters.slice(), learners: cs.learners.slice() };
}

/** Binary string key for a byte array (used to index read contexts). */
export function bytesKey(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * `arr.slice(from, to)` cut to the longest prefix whose size is ≤ maxSize (at least one
 * entry), without building the intermediate array.
 */
export function limitedSlice(arr: Entry[], from: number, to: number, maxSize: number): Entry[] {
  if (to - from <= 1) return arr.slice(from, to);
  let size = entrySize(arr[from]!);
  let end = from + 1;
  for (; end < to; end++) {
    size += entrySize(arr[end]!);
    if (size > maxSize) break;
  }
  return arr.slice(from, end);
}
