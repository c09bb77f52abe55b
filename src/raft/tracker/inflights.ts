import { assert, fail } from '../assert.js';

/**
 * A sliding window of in-flight App messages to one follower: for each, the last entry index
 * it carried and its byte size. Full when either the count or the byte budget is reached.
 * A ring buffer that grows up to `size` entries, so idle followers cost little memory.
 */
export class Inflights {
  /** Max number of in-flight messages. */
  readonly size: number;
  /** Max in-flight bytes (0 = unlimited). */
  readonly maxBytes: number;
  private start = 0;
  private countValue = 0;
  private bytesValue = 0;
  private indexes: Float64Array;
  private byteSizes: Float64Array;

  constructor(size: number, maxBytes: number) {
    assert(Number.isSafeInteger(size) && size > 0, `inflights size must be positive, got ${size}`);
    this.size = size;
    this.maxBytes = maxBytes;
    const initial = Math.min(size, 16);
    this.indexes = new Float64Array(initial);
    this.byteSizes = new Float64Array(initial);
  }

  clone(): Inflights {
    const c = new Inflights(this.size, this.maxBytes);
    c.start = this.start;
    c.countValue = this.countValue;
    c.bytesValue = this.bytesValue;
    c.indexes = this.indexes.slice();
    c.byteSizes = this.byteSizes.slice();
    return c;
  }

  /** Records a message whose last entry is `index`; indexes must increase. */
  add(index: number, bytes: number): void {
    if (this.full()) fail('cannot add into a full inflights');
    if (this.countValue > 0) {
      const lastPos = (this.start + this.countValue - 1) % this.indexes.length;
      if (index <= this.indexes[lastPos]!) {
        fail(`inflights: index ${index} not greater than last ${this.indexes[lastPos]}`);
      }
    }
    if (this.countValue === this.indexes.length) this.grow();
    const next = (this.start + this.countValue) % this.indexes.length;
    this.indexes[next] = index;
    this.byteSizes[next] = bytes;
    this.countValue++;
    this.bytesValue += bytes;
  }

  private grow(): void {
    const newCap = Math.min(this.size, this.indexes.length * 2);
    assert(newCap > this.indexes.length, 'inflights cannot grow');
    const idx = new Float64Array(newCap);
    const bts = new Float64Array(newCap);
    const cap = this.indexes.length;
    for (let i = 0; i < this.countValue; i++) {
      const p = (this.start + i) % cap;
      idx[i] = this.indexes[p]!;
      bts[i] = this.byteSizes[p]!;
    }
    this.indexes = idx;
    this.byteSizes = bts;
    this.start = 0;
  }

  /** Frees every message whose last index is ≤ `to` (acknowledged). */
  freeLE(to: number): void {
    if (this.countValue === 0) return;
    const cap = this.indexes.length;
    let idx = this.start;
    let i = 0;
    let bytes = 0;
    for (; i < this.countValue; i++) {
      if (this.indexes[idx]! > to) break;
      bytes += this.byteSizes[idx]!;
      idx++;
      if (idx >= cap) idx -= cap;
    }
    this.countValue -= i;
    this.bytesValue -= bytes;
    this.start = idx;
    if (this.countValue === 0) this.start = 0;
  }

  full(): boolean {
    return this.countValue === this.size || (this.maxBytes !== 0 && this.bytesValue >= this.maxBytes);
  }

  count(): number {
    return this.countValue;
  }

  bytes(): number {
    return this.bytesValue;
  }

  reset(): void {
    this.start = 0;
    this.countValue = 0;
    this.bytesValue = 0;
  }
}
