/**
 * Snapshot files on real disk, for every backend's CRC-32C: save/load round trip, newest wins,
 * a corrupt newest file is renamed *.broken, reported, and the next older one is used; purge;
 * the dirSync policy applies (real FIFO EINVAL).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Snapshot } from '../../src/raft/types.js';
import { Packr } from 'msgpackr';
import { SNAPSHOT_CHUNK_BYTES, SnapshotBodyMismatchError, SnapshotCorruptionError, Snapshotter, snapshotFileName } from '../../src/snap/index.js';
import { DirSyncUnsupportedError } from '../../src/wal/errors.js';
import { backends, makeRandom, MemoryLogger, SEED, tempRoot } from '../wal/fixtures/backends.js';

/** A body of `bytes` pseudo-random bytes, generated in pieces of `piece` bytes. */
async function* randomBody(bytes: number, piece: number, random: () => number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < bytes; off += piece) {
    const chunk = new Uint8Array(Math.min(piece, bytes - off));
    for (let i = 0; i < chunk.length; i++) chunk[i] = Math.floor(random() * 256);
    yield chunk;
  }
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of source) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

function snapshot(index: number, term: number, bytes: number, random: () => number): Snapshot {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = Math.floor(random() * 256);
  return { metadata: { index, term, confState: { voters: [1, 2, 3], learners: [4] } }, data };
}

for (const { name, backend } of backends) {
  describe(`Snapshotter (${name} backend crc, seed ${SEED})`, function () {
    let root: string;
    let dir: string;
    let logger: MemoryLogger;
    beforeEach(() => {
      root = tempRoot(`snap-${name}`);
      dir = path.join(root, 'snap');
      logger = new MemoryLogger();
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    it('saves atomically and loads the newest', async () => {
      const random = makeRandom(SEED);
      const snap = new Snapshotter(dir, { backend, logger });
      assert.deepEqual(await snap.loadNewest(), { snapshot: null, info: null, file: null, broken: [] });
      const a = snapshot(10, 1, 1000, random);
      const b = snapshot(250, 3, 70_000, random);
      const c = snapshot(0x1234, 4, 0, random);
      for (const s of [a, c, b]) await snap.save(s);
      assert.deepEqual(
        fs.readdirSync(dir).sort(),
        [snapshotFileName(1, 10), snapshotFileName(3, 250), snapshotFileName(4, 0x1234)].sort(),
        'no temp files left behind',
      );
      const newest = await snap.loadNewest();
      assert.deepEqual(newest.snapshot, c);
      assert.equal(newest.file, path.join(dir, '0000000000000004-0000000000001234.snap'));
      assert.deepEqual(await snap.load(path.join(dir, snapshotFileName(3, 250))), b);
      // accept lets a caller skip snapshots the WAL has no marker for.
      const accepted = await snap.loadNewest({ accept: (m) => m.index <= 250 });
      assert.deepEqual(accepted.snapshot, b);
      assert.deepEqual(logger.warnings, []);
    });

    it('a corrupt newest snapshot is renamed *.broken, reported, and the next older one is used', async () => {
      const random = makeRandom(SEED + 1);
      const snap = new Snapshotter(dir, { backend, logger });
      const older = snapshot(100, 2, 5000, random);
      const newer = snapshot(200, 2, 5000, random);
      const newest = snapshot(300, 3, 5000, random);
      await snap.save(older);
      const newerFile = await snap.save(newer);
      const newestFile = await snap.save(newest);
      // Newest: one flipped bit in the body. Newer: truncated.
      const bytes = fs.readFileSync(newestFile);
      const at = 24 + Math.floor(random() * (bytes.length - 24));
      bytes[at] = bytes[at]! ^ 0x10;
      fs.writeFileSync(newestFile, bytes);
      fs.truncateSync(newerFile, 4000);

      const loaded = await snap.loadNewest();
      assert.deepEqual(loaded.snapshot, older);
      assert.deepEqual(
        loaded.broken.map((b) => [b.file, b.renamedTo]),
        [
          [newestFile, `${newestFile}.broken`],
          [newerFile, `${newerFile}.broken`],
        ],
      );
      assert.match(loaded.broken[0]!.reason, /crc32c mismatch/);
      assert.match(loaded.broken[1]!.reason, /length/);
      assert.ok(fs.existsSync(`${newestFile}.broken`) && !fs.existsSync(newestFile));
      assert.equal(logger.warnings.length, 2);
      assert.ok(logger.warnings[0]!.includes(newestFile), logger.warnings[0]);
      // Next time the broken ones are out of the way.
      const again = await snap.loadNewest();
      assert.deepEqual(again.snapshot, older);
      assert.deepEqual(again.broken, []);
    });

    it('a file whose contents do not match its name is corrupt', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      const file = await snap.save(snapshot(5, 1, 10, makeRandom(SEED + 2)));
      fs.renameSync(file, path.join(dir, snapshotFileName(1, 6)));
      const loaded = await snap.loadNewest();
      assert.equal(loaded.snapshot, null);
      assert.match(loaded.broken[0]!.reason, /named for/);
    });

    it('purge keeps the newest N', async () => {
      const random = makeRandom(SEED + 3);
      const snap = new Snapshotter(dir, { backend, logger });
      for (let i = 1; i <= 5; i++) await snap.save(snapshot(i * 10, 1, 100, random));
      const deleted = await snap.purge(2);
      assert.deepEqual(deleted.map((f) => path.basename(f)), [snapshotFileName(1, 30), snapshotFileName(1, 20), snapshotFileName(1, 10)]);
      assert.deepEqual(snap.list().map((f) => path.basename(f)), [snapshotFileName(1, 50), snapshotFileName(1, 40)]);
      await assert.rejects(snap.purge(0), RangeError);
    });

    it('refuses bad input without writing anything', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      await assert.rejects(snap.save({ metadata: { index: -1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array() }), RangeError);
      await assert.rejects(snap.save({ metadata: { index: 1, term: 1, confState: { voters: [0], learners: [] } }, data: new Uint8Array() }), RangeError);
      assert.equal(fs.existsSync(dir), false);
    });

    it('applies the dirSync policy: strict refuses, auto warns once (real FIFO EINVAL)', async () => {
      const fifo = path.join(root, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const random = makeRandom(SEED + 4);
      const strict = new Snapshotter(dir, { backend, logger, dirSync: 'strict', dirSyncTarget: fifo });
      await assert.rejects(strict.save(snapshot(1, 1, 10, random)), DirSyncUnsupportedError);
      assert.deepEqual(strict.list(), [], 'strict refuses before writing a snapshot');
      const auto = new Snapshotter(dir, { backend, logger, dirSync: 'auto', dirSyncTarget: fifo });
      await auto.save(snapshot(2, 1, 10, random));
      await auto.save(snapshot(3, 1, 10, random));
      assert.equal(logger.warnings.filter((w) => w.includes(`directory ${dir}:`)).length, 1, logger.warnings.join('\n'));
      assert.equal((await auto.loadNewest()).snapshot?.metadata.index, 3);
    });
    it('streams a body of many chunks in and out, with its length and crc', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      const bytes = 2 * SNAPSHOT_CHUNK_BYTES + 12345;
      const seedBody = SEED + 6;
      const metadata = { index: 42, term: 3, confState: { voters: [1], learners: [] } };
      const head = new Uint8Array([9, 8, 7]);
      // Pieces bigger than a chunk are split; smaller ones are kept as they come.
      const saved = await snap.saveStream(metadata, head, randomBody(bytes, SNAPSHOT_CHUNK_BYTES + 777, makeRandom(seedBody)));
      assert.equal(saved.bodyBytes, bytes);
      const expected = await collect(randomBody(bytes, 4096, makeRandom(seedBody)));
      assert.equal(saved.bodyCrc, backend.crc32c(expected, 0) >>> 0);
      const info = await snap.inspect(saved.file);
      assert.deepEqual({ ...info, head: Buffer.from(info.head) }, { file: saved.file, version: 2, metadata, head: Buffer.from(head), bodyBytes: bytes, bodyCrc: saved.bodyCrc });
      const chunks: number[] = [];
      const parts: Buffer[] = [];
      for await (const c of snap.readBody(saved.file)) {
        chunks.push(c.length);
        parts.push(Buffer.from(c));
      }
      assert.ok(chunks.every((n) => n <= SNAPSHOT_CHUNK_BYTES), `chunk sizes ${chunks.join(',')}`);
      assert.ok(Buffer.concat(parts).equals(expected));
      await assert.rejects(snap.load(saved.file), /readBody/);
    });

    it('a flipped bit in a body chunk is found by inspect and by readBody', async () => {
      const random = makeRandom(SEED + 7);
      const snap = new Snapshotter(dir, { backend, logger });
      const metadata = { index: 7, term: 1, confState: { voters: [1], learners: [] } };
      const { file } = await snap.saveStream(metadata, new Uint8Array(), randomBody(3 * SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_BYTES, random));
      const bytes = fs.readFileSync(file);
      const at = bytes.length - 20 - 1 - Math.floor(random() * SNAPSHOT_CHUNK_BYTES); // inside the last chunk
      bytes[at] = bytes[at]! ^ 0x01;
      fs.writeFileSync(file, bytes);
      await assert.rejects(snap.inspect(file), (err: unknown) => err instanceof SnapshotCorruptionError && /crc32c mismatch in the chunk/.test(err.message));
      let yielded = 0;
      await assert.rejects(
        (async () => {
          for await (const c of snap.readBody(file)) yielded += c.length;
        })(),
        /crc32c mismatch in the chunk/,
      );
      assert.equal(yielded, 2 * SNAPSHOT_CHUNK_BYTES, 'the good chunks came first, the bad one never');
      const loaded = await snap.loadNewest();
      assert.equal(loaded.snapshot, null);
      assert.equal(loaded.broken.length, 1);
    });

    it('a body that does not match what was expected (or is too big) is never renamed into place', async () => {
      const snap = new Snapshotter(dir, { backend, logger });
      const metadata = { index: 9, term: 2, confState: { voters: [1], learners: [] } };
      await assert.rejects(
        snap.saveStream(metadata, new Uint8Array(), randomBody(1000, 100, makeRandom(SEED + 8)), { expect: { bytes: 1000, crc: 1 } }),
        SnapshotBodyMismatchError,
      );
      await assert.rejects(
        snap.saveStream(metadata, new Uint8Array(), randomBody(1000, 100, makeRandom(SEED + 8)), { bytesMax: 999 }),
        SnapshotBodyMismatchError,
      );
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array(10);
        throw new Error('the sender went away');
      }
      await assert.rejects(snap.saveStream(metadata, new Uint8Array(), failing()), /went away/);
      assert.deepEqual(fs.readdirSync(dir), [], 'no snapshot and no temp file left');
    });

    it('still reads version 1 files', async () => {
      const random = makeRandom(SEED + 9);
      const old = snapshot(77, 4, 3000, random);
      const body = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true }).pack({ metadata: old.metadata, data: old.data });
      const header = Buffer.alloc(24);
      header.write('RAFTKVSN', 0, 'latin1');
      header.writeUInt32LE(1, 8);
      header.writeUInt32LE(backend.crc32c(body, 0) >>> 0, 12);
      header.writeBigUInt64LE(BigInt(body.length), 16);
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, snapshotFileName(4, 77));
      fs.writeFileSync(file, Buffer.concat([header, body]));
      const snap = new Snapshotter(dir, { backend, logger });
      const info = await snap.inspect(file);
      assert.equal(info.version, 1);
      assert.equal(info.bodyBytes, 0);
      assert.deepEqual(await snap.load(file), old);
      assert.equal((await collect(snap.readBody(file))).length, 0);
      assert.deepEqual((await snap.loadNewest()).snapshot, old);
    });
  });
}
