/** The KV state machine in isolation: commands, snapshots (raftexample's Test_kvstore_snapshot). */

import assert from 'node:assert/strict';

import { CommandError, decodeCommand, decodeSnapshot, decodeSnapshotStream, encodePut, KvStore, SNAPSHOT_PIECE_BYTES } from '../../src/kv/store.js';

const entry = (index: number, data: Uint8Array) => ({ index, term: 1, data });

describe('kv: KvStore', function () {
  it('applies puts with their index as revision; snapshot → restore gives an identical map', function () {
    const a = new KvStore();
    assert.deepEqual(a.apply(entry(5, encodePut('foo', Buffer.from('bar')))), { revision: 5 });
    a.apply(entry(6, encodePut('ключ/🔑', Buffer.from([0, 255, 1]))));
    a.apply(entry(7, encodePut('empty', Buffer.alloc(0))));
    a.apply(entry(8, encodePut('foo', Buffer.from('baz'))));
    const snap = a.snapshot();
    const b = new KvStore();
    b.apply(entry(1, encodePut('stale', Buffer.from('x'))));
    b.restore(snap);
    assert.equal(b.size, 3);
    assert.equal(b.get('stale'), undefined, 'restore replaces the whole state');
    assert.deepEqual(b.get('foo'), { value: Buffer.from('baz'), revision: 8 });
    assert.deepEqual(b.get('ключ/🔑'), { value: Buffer.from([0, 255, 1]), revision: 6 });
    assert.deepEqual(b.get('empty'), { value: Buffer.alloc(0), revision: 7 });
    assert.deepEqual(Buffer.from(b.snapshot()), Buffer.from(snap));
    const empty = new KvStore();
    empty.restore(new KvStore().snapshot());
    assert.equal(empty.size, 0);
  });

  it('applied values do not alias the entry buffer', function () {
    const s = new KvStore();
    const data = encodePut('k', Buffer.from('abc'));
    s.apply(entry(1, data));
    data.fill(0);
    assert.equal(s.get('k')?.value.toString(), 'abc');
  });

  it('an undecodable committed entry is reported and skipped deterministically, never thrown', function () {
    const s = new KvStore();
    const bad: string[] = [];
    s.onBadEntry = (index, why) => bad.push(`${index}: ${why}`);
    const result = s.apply(entry(3, Uint8Array.from([9, 0, 0, 0, 0])));
    assert.ok('error' in result);
    assert.equal(bad.length, 1);
    assert.match(bad[0]!, /^3: unknown command op 9/);
    assert.equal(s.size, 0);
  });

  it('rejects malformed commands and snapshots with CommandError naming the problem', function () {
    assert.throws(() => encodePut('', Buffer.alloc(1)), CommandError);
    assert.throws(() => encodePut('k'.repeat(5000), Buffer.alloc(1)), CommandError);
    assert.throws(() => decodeCommand(Uint8Array.from([1, 0])), /too short/);
    assert.throws(() => decodeCommand(Uint8Array.from([1, 200, 0, 0, 0, 65])), /bad key length/);
    assert.throws(() => decodeCommand(Uint8Array.from([1, 1, 0, 0, 0, 0xff])), /not valid UTF-8/);
    const s = new KvStore();
    s.apply(entry(1, encodePut('a', Buffer.from('value'))));
    const snap = Buffer.from(s.snapshot());
    assert.throws(() => decodeSnapshot(snap.subarray(0, 4)), /corrupt at byte 0/);
    assert.throws(() => decodeSnapshot(Buffer.concat([Buffer.from('XXXX'), snap.subarray(4)])), /bad magic/);
    for (let cut = 8; cut < snap.length; cut++) {
      assert.throws(() => decodeSnapshot(snap.subarray(0, cut)), CommandError, `truncated at ${cut}`);
    }
    assert.throws(() => decodeSnapshot(Buffer.concat([snap, Buffer.from([0])])), /trailing bytes/);
  });

  it('snapshotStream yields the bytes of snapshot() in pieces; restoreStream takes pieces of any size', async function () {
    const seed = Number(process.env.RAFTKV_TEST_SEED ?? Date.now() % 1_000_000);
    let x = seed || 1;
    const random = () => ((x = (x * 48271) % 2147483647) / 2147483647);
    const a = new KvStore();
    for (let i = 1; i <= 400; i++) {
      const value = Buffer.alloc(Math.floor(random() * 20_000), i & 0xff);
      a.apply(entry(i, encodePut(`key-${Math.floor(random() * 300)}`, value)));
    }
    const whole = Buffer.from(a.snapshot());
    const stream = a.snapshotStream();
    // Applied after the capture: not in the stream.
    a.apply(entry(401, encodePut('late', Buffer.from('x'))));
    const pieces: Buffer[] = [];
    for await (const p of stream) pieces.push(Buffer.from(p));
    assert.ok(Buffer.concat(pieces).equals(whole), `seed ${seed}`);
    assert.ok(pieces.length > 1 && pieces.slice(0, -1).every((p) => p.length >= SNAPSHOT_PIECE_BYTES), `seed ${seed}`);
    for (const size of [1, 7, 4096, 1 << 20]) {
      async function* cut(): AsyncGenerator<Uint8Array> {
        for (let off = 0; off < whole.length; off += size) yield whole.subarray(off, off + size);
      }
      const b = new KvStore();
      await b.restoreStream(cut());
      assert.ok(Buffer.from(b.snapshot()).equals(whole), `piece size ${size}, seed ${seed}`);
    }
  });

  it('decodeSnapshotStream refuses a corrupt stream like decodeSnapshot', async function () {
    const s = new KvStore();
    s.apply(entry(1, encodePut('a', Buffer.from('value'))));
    s.apply(entry(2, encodePut('b', Buffer.from('other'))));
    const snap = Buffer.from(s.snapshot());
    async function* of(b: Buffer): AsyncGenerator<Uint8Array> {
      for (let off = 0; off < b.length; off += 3) yield b.subarray(off, off + 3);
    }
    await assert.rejects(decodeSnapshotStream(of(Buffer.concat([Buffer.from('XXXX'), snap.subarray(4)]))), /bad magic/);
    for (let cut = 0; cut < snap.length; cut++) {
      await assert.rejects(decodeSnapshotStream(of(snap.subarray(0, cut))), CommandError, `truncated at ${cut}`);
    }
    await assert.rejects(decodeSnapshotStream(of(Buffer.concat([snap, Buffer.from([0])]))), /trailing bytes/);
    const kept = new KvStore();
    kept.apply(entry(1, encodePut('keep', Buffer.from('me'))));
    await assert.rejects(kept.restoreStream(of(snap.subarray(0, 10))), CommandError);
    assert.equal(kept.get('keep')?.value.toString(), 'me', 'a failed restore leaves the old state');
  });
});
