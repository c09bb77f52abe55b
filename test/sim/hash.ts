/**
 * Cheap 52-bit hashes for the checker. A "chain hash" at index i folds the entry at i into the
 * chain hash at i − 1, so two logs with equal chain hashes at i hold identical prefixes up to i
 * (up to hash collisions): log matching and state-machine equality checks become O(1) lookups.
 */
import type { Entry } from '../../src/raft/types.js';

const TWO_POW_20 = 0x100000;

function mix32(h: number, v: number): number {
  h = Math.imul(h ^ v, 0x5bd1e995);
  h ^= h >>> 15;
  return h;
}

function fin32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hash of a byte string, as a non-negative integer < 2^52. */
export function hashBytes(bytes: Uint8Array): number {
  let a = 0x811c9dc5 ^ bytes.length;
  let b = 0x01000193 + bytes.length;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i] as number;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b + c, 0x2c1b3c6d) ^ (b >>> 13);
  }
  return fin32(a) * TWO_POW_20 + (fin32(b) >>> 12);
}

/** Chain hash: H(previous chain hash, entry term, type, data). Result < 2^52. */
export function chainHash(prev: number, entry: Entry): number {
  return combine(prev, entry.term, entry.type, hashBytes(entry.data));
}

export function combine(prev: number, term: number, type: number, dataHash: number): number {
  const prevLo = prev % 0x100000000 | 0;
  const prevHi = Math.floor(prev / 0x100000000) | 0;
  const dLo = dataHash % 0x100000000 | 0;
  const dHi = Math.floor(dataHash / 0x100000000) | 0;
  const termLo = term % 0x100000000 | 0;
  const termHi = Math.floor(term / 0x100000000) | 0;
  let a = 0x9747b28c;
  let b = 0x3c6ef372;
  a = mix32(a, prevLo); b = mix32(b ^ 0x27d4eb2f, prevLo + 0x165667b1);
  a = mix32(a, prevHi); b = mix32(b ^ 0x27d4eb2f, prevHi + 0x165667b1);
  a = mix32(a, termLo); b = mix32(b ^ 0x27d4eb2f, termLo + 0x165667b1);
  a = mix32(a, termHi); b = mix32(b ^ 0x27d4eb2f, termHi + 0x165667b1);
  a = mix32(a, type); b = mix32(b ^ 0x27d4eb2f, type + 0x165667b1);
  a = mix32(a, dLo); b = mix32(b ^ 0x27d4eb2f, dLo + 0x165667b1);
  a = mix32(a, dHi); b = mix32(b ^ 0x27d4eb2f, dHi + 0x165667b1);
  return fin32(a) * TWO_POW_20 + (fin32(b) >>> 12);
}
