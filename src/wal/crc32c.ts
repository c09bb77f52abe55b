/**
 * CRC-32C (Castagnoli) in pure TypeScript, slice-by-8.
 *
 * Standard reflected form with pre/post inversion: crc32c("123456789") === 0xE3069283.
 * `seed` is the previous result, so crc32c(b, crc32c(a)) === crc32c(a ‖ b) — the "continue"
 * semantics docs/wal-format.md uses for chaining frames.
 */

const CASTAGNOLI_REFLECTED = 0x82f63b78;

/** TABLES[k * 256 + b]: CRC contribution of byte b followed by k zero bytes. */
const TABLES = buildTables();

function buildTables(): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 1 ? (crc >>> 1) ^ CASTAGNOLI_REFLECTED : crc >>> 1;
    }
    tables[byte] = crc;
  }
  for (let slice = 1; slice < 8; slice++) {
    for (let byte = 0; byte < 256; byte++) {
      const previous = tables[(slice - 1) * 256 + byte]!;
      tables[slice * 256 + byte] = (previous >>> 8) ^ tables[previous & 0xff]!;
    }
  }
  return tables;
}

/** CRC-32C of `data`, continuing from `seed` (the CRC of everything before it; 0 to start). */
export function crc32c(data: Uint8Array, seed = 0): number {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`crc32c seed must be a uint32, got ${seed}`);
  }
  return crc32cRange(data, 0, data.length, seed);
}

/** CRC-32C of data[start, end) continuing from `seed` (no argument checks: internal hot path). */
export function crc32cRange(data: Uint8Array, start: number, end: number, seed: number): number {
  const t = TABLES;
  let crc = ~seed;
  let i = start;
  const blockEnd = end - ((end - start) & 7);
  while (i < blockEnd) {
    const low =
      crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24));
    crc =
      t[1792 + (low & 0xff)]! ^
      t[1536 + ((low >>> 8) & 0xff)]! ^
      t[1280 + ((low >>> 16) & 0xff)]! ^
      t[1024 + (low >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
    i += 8;
  }
  while (i < end) {
    crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
    i++;
  }
  return ~crc >>> 0;
}

/** Continue a CRC over the 4 little-endian bytes of `value` (used for the segment salt). */
export function crc32cU32(value: number, seed: number): number {
  const t = TABLES;
  let crc = ~seed;
  for (let shift = 0; shift < 32; shift += 8) {
    crc = t[(crc ^ (value >>> shift)) & 0xff]! ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}
