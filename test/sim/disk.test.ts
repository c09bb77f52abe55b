/**
 * SimDisk (test/sim/disk.ts): its crash model, fault injection, scheduling and locks. Seeded
 * loops run fixed seed ranges; a failure names the seed (the disk's PRNG is SimRandom(seed)).
 */
import assert from 'node:assert/strict';
import { constants as C } from 'node:fs';
import {
  ManualIoScheduler,
  SECTOR_BYTES,
  SimDisk,
  SimProcessDeadError,
  type SimDiskOptions,
  type SimMount,
} from './disk.js';
import { SimRandom } from './prng.js';

function forSeeds(first: number, count: number, body: (seed: number) => void | Promise<void>): () => Promise<void> {
  return async () => {
    for (let seed = first; seed < first + count; seed++) {
      try {
        await body(seed);
      } catch (err) {
        (err as Error).message = `seed ${seed}: ${(err as Error).message}`;
        throw err;
      }
    }
  };
}

function newDisk(seed: number, options: Partial<SimDiskOptions> = {}): SimDisk {
  return new SimDisk({ random: new SimRandom(seed), ...options });
}

function pattern(length: number, salt: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = ((i * 131 + salt * 7919) % 255) + 1; // never 0
  return b;
}

function writev(fs: SimMount, fd: number, bytes: Uint8Array, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.writev(fd, [bytes], position, (err, n) => (err ? reject(err) : resolve(n))));
}

function fdatasync(fs: SimMount, fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function dirsync(fs: SimMount, dir: string): void {
  const fd = fs.openSync(dir, C.O_RDONLY | C.O_NONBLOCK);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A durable file /d/f holding `content` (data synced, directory synced). */
async function durableFile(fs: SimMount, content: Uint8Array, file = '/d/f'): Promise<number> {
  fs.mkdirSync('/d', { recursive: true });
  dirsync(fs, '/');
  const fd = await fs.open(file, 'w+');
  await writev(fs, fd, content, 0);
  await fdatasync(fs, fd);
  dirsync(fs, '/d');
  return fd;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function never(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return new Promise((resolve) => setImmediate(() => resolve(!settled)));
}

describe('SimDisk', function () {
  describe('crash model: file data', function () {
    it(
      'synced data survives every crash; unsynced writes leave each sector old or new',
      forSeeds(1, 300, async (seed) => {
        const random = new SimRandom(seed * 7 + 1);
        const disk = newDisk(seed);
        const fs = disk.mount();
        const fd = await durableFile(fs, new Uint8Array(0));
        // The model: what fdatasync made durable, and every write since.
        let durable = new Uint8Array(0);
        let current = new Uint8Array(0);
        let unsynced: { offset: number; bytes: Uint8Array }[] = [];
        const steps = random.range(1, 30);
        for (let i = 0; i < steps; i++) {
          if (random.chance(0.25)) {
            await fdatasync(fs, fd);
            durable = current.slice();
            unsynced = [];
            continue;
          }
          const offset = random.intn(6000);
          const bytes = pattern(random.range(1, 3000), seed * 100 + i);
          await writev(fs, fd, bytes, offset);
          const grown = new Uint8Array(Math.max(current.length, offset + bytes.length));
          grown.set(current);
          grown.set(bytes, offset);
          current = grown;
          unsynced.push({ offset, bytes });
        }
        disk.crash();
        const after = disk.fileContent('/d/f');
        assert.ok(after !== null, 'a durable file vanished');
        // Every byte is its durable value or the value of some unsynced write covering it, and
        // sectors are atomic per write: a write's bytes in one sector all show or none do.
        for (let sector = 0; sector * SECTOR_BYTES < Math.max(after.length, durable.length); sector++) {
          const lo = sector * SECTOR_BYTES;
          const hi = lo + SECTOR_BYTES;
          for (let at = lo; at < Math.min(hi, after.length); at++) {
            const candidates = [at < durable.length ? durable[at]! : 0];
            for (const w of unsynced) if (at >= w.offset && at < w.offset + w.bytes.length) candidates.push(w.bytes[at - w.offset]!);
            assert.ok(candidates.includes(after[at]!), `byte ${at} is ${after[at]}, none of ${candidates.join(',')}`);
          }
        }
        if (unsynced.length === 0) assert.ok(equalBytes(after, durable), 'fully synced file changed across a crash');
        else assert.ok(after.length >= durable.length, `file shrank below its synced size: ${after.length} < ${durable.length}`);
      }),
    );

    it('an unsynced write comes back whole, lost or torn (sector by sector), and the policy can force each', async () => {
      const seen = new Set<string>();
      const size = 8 * SECTOR_BYTES;
      const oldBytes = pattern(size, 1);
      const newBytes = pattern(size, 2);
      for (let seed = 1; seed <= 60; seed++) {
        const disk = newDisk(seed);
        const fs = disk.mount();
        const fd = await durableFile(fs, oldBytes);
        await writev(fs, fd, newBytes, 0);
        const report = disk.crash();
        const after = disk.fileContent('/d/f')!;
        const sectors = [...Array(8).keys()].map((s) => {
          const a = after.subarray(s * SECTOR_BYTES, (s + 1) * SECTOR_BYTES);
          if (equalBytes(a, newBytes.subarray(s * SECTOR_BYTES, (s + 1) * SECTOR_BYTES))) return 'new';
          if (equalBytes(a, oldBytes.subarray(s * SECTOR_BYTES, (s + 1) * SECTOR_BYTES))) return 'old';
          return 'mixed';
        });
        assert.ok(!sectors.includes('mixed'), `seed ${seed}: a sector mixes old and new bytes`);
        if (report.writesKept === 1) {
          assert.ok(sectors.every((s) => s === 'new'), `seed ${seed}: kept write not whole`);
          seen.add('whole');
        } else if (report.writesLost === 1) {
          assert.ok(sectors.every((s) => s === 'old'), `seed ${seed}: lost write left traces`);
          seen.add('lost');
        } else {
          assert.equal(report.writesTorn, 1, `seed ${seed}`);
          if (sectors.includes('new') && sectors.includes('old')) seen.add('torn');
        }
      }
      assert.deepEqual([...seen].sort(), ['lost', 'torn', 'whole'], 'seeds 1..60 should show all three outcomes');

      for (const [policy, expect] of [
        ['keep', newBytes],
        ['lose', oldBytes],
      ] as const) {
        const disk = newDisk(1);
        const fs = disk.mount();
        const fd = await durableFile(fs, oldBytes);
        await writev(fs, fd, newBytes, 0);
        disk.crash({ data: policy });
        assert.ok(equalBytes(disk.fileContent('/d/f')!, expect), `policy ${policy}`);
      }
    });

    it('lost sectors read back as the zeros of preallocation', async () => {
      const disk = newDisk(5);
      const fs = disk.mount();
      const fd = await durableFile(fs, new Uint8Array(4 * SECTOR_BYTES)); // preallocated zeros
      await writev(fs, fd, pattern(4 * SECTOR_BYTES, 3), 0);
      disk.crash({ data: 'lose' });
      const after = disk.fileContent('/d/f')!;
      assert.equal(after.length, 4 * SECTOR_BYTES);
      assert.ok(after.every((b) => b === 0));
      void fd;
    });

    it('a write past the synced end that is lost does not extend the file', async () => {
      const disk = newDisk(6);
      const fs = disk.mount();
      const fd = await durableFile(fs, pattern(100, 1));
      await writev(fs, fd, pattern(100, 2), 1000);
      disk.crash({ data: 'lose' });
      assert.equal(disk.fileContent('/d/f')!.length, 100);
      void fd;
    });

    it('O_DSYNC writes are durable when they complete', async () => {
      const disk = newDisk(7);
      const fs = disk.mount();
      await durableFile(fs, new Uint8Array(0));
      const fd = await fs.open('/d/f', C.O_RDWR | C.O_DSYNC);
      await writev(fs, fd, pattern(1500, 4), 0);
      disk.crash({ data: 'lose' });
      assert.ok(equalBytes(disk.fileContent('/d/f')!, pattern(1500, 4)));
    });

    it('fdatasync makes durable only what was written before it was issued, when it completes', async () => {
      const scheduler = new ManualIoScheduler();
      const disk = newDisk(8, { scheduler });
      const fs = disk.mount();
      fs.mkdirSync('/d');
      dirsync(fs, '/');
      const opening = fs.open('/d/f', 'w+');
      scheduler.settleAll();
      const fd = await opening;
      dirsync(fs, '/d');
      const first = writev(fs, fd, pattern(100, 1), 0);
      const sync = fdatasync(fs, fd);
      const second = writev(fs, fd, pattern(100, 2), 100);
      assert.equal(scheduler.size, 3);
      assert.deepEqual(
        scheduler.pending.map((op) => op.kind),
        ['writev', 'fdatasync', 'writev'],
      );
      scheduler.settleAll();
      await Promise.all([first, sync, second]);
      assert.equal(disk.pendingDataOps('/d/f'), 1, 'the write issued after the fdatasync is still pending');
      disk.crash({ data: 'lose' });
      assert.ok(equalBytes(disk.fileContent('/d/f')!, pattern(100, 1)));
    });

    it('a crash before an fdatasync completes may lose what it covers; its caller never hears back', async () => {
      const scheduler = new ManualIoScheduler();
      const disk = newDisk(9, { scheduler });
      const fs = disk.mount();
      fs.mkdirSync('/d');
      dirsync(fs, '/');
      const opening = fs.open('/d/f', 'w+');
      scheduler.settleAll();
      const fd = await opening;
      dirsync(fs, '/d');
      const w = writev(fs, fd, pattern(100, 1), 0);
      scheduler.settleAll();
      await w;
      const sync = fdatasync(fs, fd);
      disk.crash({ data: 'lose' });
      scheduler.settleAll(); // too late: the process is dead
      assert.ok(await never(sync), 'an fdatasync answered after the crash');
      assert.equal(disk.fileContent('/d/f')!.length, 0);
    });
  });

  describe('crash model: namespace', function () {
    it(
      'a rename without a directory fsync happens entirely or not at all; with one it stays',
      forSeeds(1, 200, async (seed) => {
        const disk = newDisk(seed);
        const fs = disk.mount();
        await durableFile(fs, pattern(10, 1), '/d/a');
        await durableFile(fs, pattern(10, 2), '/d/b');
        await fs.rename('/d/a', '/d/b'); // replaces b
        const synced = seed % 4 === 0;
        if (synced) dirsync(fs, '/d');
        disk.crash();
        const names = disk.listDir('/d')!;
        if (synced || names.length === 1) {
          assert.deepEqual(names, ['b']);
          assert.ok(equalBytes(disk.fileContent('/d/b')!, pattern(10, 1)), 'b is not the renamed file');
        } else {
          assert.deepEqual(names, ['a', 'b']);
          assert.ok(equalBytes(disk.fileContent('/d/a')!, pattern(10, 1)));
          assert.ok(equalBytes(disk.fileContent('/d/b')!, pattern(10, 2)));
        }
      }),
    );

    it('both outcomes of an unsynced rename occur', async () => {
      const outcomes = new Set<string>();
      for (let seed = 1; seed <= 20; seed++) {
        const disk = newDisk(seed);
        const fs = disk.mount();
        await durableFile(fs, pattern(10, 1), '/d/a');
        fs.renameSync('/d/a', '/d/c');
        disk.crash();
        outcomes.add(disk.listDir('/d')!.join(','));
      }
      assert.deepEqual([...outcomes].sort(), ['a', 'c']);
    });

    it('a new file whose data was fdatasynced can vanish without a directory fsync; not with one', async () => {
      const outcomes = new Set<boolean>();
      for (let seed = 1; seed <= 20; seed++) {
        for (const synced of [false, true]) {
          const disk = newDisk(seed);
          const fs = disk.mount();
          fs.mkdirSync('/d');
          dirsync(fs, '/');
          const fd = await fs.open('/d/new', 'wx');
          await writev(fs, fd, pattern(50, 1), 0);
          await fdatasync(fs, fd);
          if (synced) dirsync(fs, '/d');
          disk.crash();
          if (synced) assert.ok(equalBytes(disk.fileContent('/d/new')!, pattern(50, 1)), `seed ${seed}`);
          else outcomes.add(disk.exists('/d/new'));
        }
      }
      assert.deepEqual([...outcomes].sort(), [false, true]);
    });

    it('a file inside a directory whose own entry is not durable goes with it', async () => {
      const disk = newDisk(3);
      const fs = disk.mount();
      fs.mkdirSync('/a/b', { recursive: true }); // /a durable below, /a/b not
      dirsync(fs, '/');
      const fd = await fs.open('/a/b/f', 'wx');
      await fdatasync(fs, fd);
      dirsync(fs, '/a/b');
      disk.crash({ namespace: 'lose' });
      assert.deepEqual(disk.listDir('/a'), []);
    });

    it('an unsynced unlink may be undone, bringing the file back with its data', async () => {
      const outcomes = new Set<boolean>();
      for (let seed = 1; seed <= 20; seed++) {
        const disk = newDisk(seed);
        const fs = disk.mount();
        await durableFile(fs, pattern(20, 5), '/d/x');
        await fs.rm('/d/x');
        assert.equal(disk.exists('/d/x'), false);
        disk.crash();
        const back = disk.exists('/d/x');
        outcomes.add(back);
        if (back) assert.ok(equalBytes(disk.fileContent('/d/x')!, pattern(20, 5)));
      }
      assert.deepEqual([...outcomes].sort(), [false, true]);
    });

    it(
      'an entry ends with one of its historical values (create, unlink, re-create)',
      forSeeds(1, 100, async (seed) => {
        const disk = newDisk(seed);
        const fs = disk.mount();
        await durableFile(fs, pattern(10, 1), '/d/x');
        fs.unlinkSync('/d/x');
        const fd = await fs.open('/d/x', 'wx');
        await writev(fs, fd, pattern(10, 2), 0);
        await fdatasync(fs, fd);
        disk.crash();
        const content = disk.fileContent('/d/x');
        assert.ok(
          content === null || equalBytes(content, pattern(10, 1)) || equalBytes(content, pattern(10, 2)),
          'x holds something it never held',
        );
      }),
    );

    it(
      "'prefix' namespace model: unlinks done oldest first never leave a gap",
      forSeeds(1, 100, async (seed) => {
        const disk = newDisk(seed, { namespaceCrash: 'prefix' });
        const fs = disk.mount();
        for (let i = 0; i < 5; i++) await durableFile(fs, pattern(5, i), `/d/${i}`);
        for (let i = 0; i < 4; i++) fs.unlinkSync(`/d/${i}`);
        disk.crash();
        const left = disk.listDir('/d')!.map(Number);
        assert.deepEqual(left, [...Array(left.length).keys()].map((k) => 5 - left.length + k), `not a suffix: ${left.join(',')}`);
      }),
    );

    it("'independent' namespace model: unlinks may survive out of order", async () => {
      const shapes = new Set<string>();
      for (let seed = 1; seed <= 40; seed++) {
        const disk = newDisk(seed);
        const fs = disk.mount();
        for (let i = 0; i < 3; i++) await durableFile(fs, pattern(5, i), `/d/${i}`);
        fs.unlinkSync('/d/0');
        fs.unlinkSync('/d/1');
        disk.crash();
        shapes.add(disk.listDir('/d')!.join(','));
      }
      assert.ok(shapes.has('1,2'), `never lost only the older unlink: ${[...shapes].join(' | ')}`);
    });

    it('flushAll (writeback) makes everything durable', async () => {
      const disk = newDisk(11);
      const fs = disk.mount();
      fs.mkdirSync('/d');
      const fd = await fs.open('/d/f', 'w');
      await writev(fs, fd, pattern(700, 1), 0);
      disk.flushAll();
      disk.crash({ data: 'lose', namespace: 'lose' });
      assert.ok(equalBytes(disk.fileContent('/d/f')!, pattern(700, 1)));
    });
  });

  describe('processes, steps and scheduling', function () {
    it('crashing at an I/O step: that op never happens, the mount is dead, a new mount sees the crashed disk', async () => {
      let crashAt = -1;
      const disk = newDisk(12, {
        onOp: (op) => {
          if (op.step === crashAt) disk.crash({ data: 'keep', namespace: 'keep' });
        },
      });
      const fs = disk.mount('n1');
      const fd = await durableFile(fs, pattern(10, 1));
      crashAt = disk.steps + 1;
      const write = writev(fs, fd, pattern(10, 2), 0);
      assert.ok(await never(write), 'the crashed write completed');
      assert.equal(fs.isAlive, false);
      assert.throws(() => fs.readdirSync('/d'), SimProcessDeadError);
      assert.ok(await never(fs.readFile('/d/f')), 'a dead mount answered');
      const fs2 = disk.mount('n1-restarted');
      assert.ok(equalBytes(await fs2.readFile('/d/f'), pattern(10, 1)), 'the write at the crash step took effect');
    });

    it('a crash inside a synchronous op throws SimProcessDeadError from it', () => {
      const disk = newDisk(13, { onOp: (op) => void (op.kind === 'mkdir' && disk.crash()) });
      const fs = disk.mount();
      assert.throws(() => fs.mkdirSync('/x'), SimProcessDeadError);
      assert.equal(disk.mount().existsSync('/x'), false);
    });

    it('killProcesses keeps the page cache: nothing is lost, but the old mount is dead', async () => {
      const disk = newDisk(14);
      const fs = disk.mount();
      fs.mkdirSync('/d');
      const fd = await fs.open('/d/f', 'w');
      await writev(fs, fd, pattern(10, 1), 0);
      disk.killProcesses();
      assert.throws(() => fs.statSync('/d/f'), SimProcessDeadError);
      const fs2 = disk.mount();
      assert.ok(equalBytes(await fs2.readFile('/d/f'), pattern(10, 1)));
      disk.crash({ data: 'lose', namespace: 'lose' }); // still unsynced: a later power loss takes it
      assert.equal(disk.exists('/d'), false);
    });

    it('counts every op of every mount as an I/O step, and the same seed replays the same crash', async () => {
      const run = async (seed: number) => {
        const kinds: string[] = [];
        const disk = newDisk(seed, { onOp: (op) => void kinds.push(`${op.step}:${op.mount}:${op.kind}`) });
        const a = disk.mount('a');
        const b = disk.mount('b');
        const fd = await durableFile(a, pattern(3000, 1));
        await writev(a, fd, pattern(3000, 2), 0);
        b.existsSync('/d/f');
        const report = disk.crash();
        return { kinds, report, content: disk.fileContent('/d/f') };
      };
      const one = await run(21);
      const two = await run(21);
      assert.deepEqual(one, two);
      assert.deepEqual(
        one.kinds.map((k) => k.split(':')[0]),
        one.kinds.map((_, i) => String(i + 1)),
      );
      assert.ok(one.kinds.at(-1)!.endsWith(':b:exists'));
    });
  });

  describe('faults', function () {
    it('EIO on a chosen fdatasync / writev, shaped like node:fs errors', async () => {
      const disk = newDisk(15);
      const fs = disk.mount();
      const fd = await durableFile(fs, new Uint8Array(0));
      disk.injectFault({ kinds: ['fdatasync'], code: 'EIO', skip: 1 });
      await fdatasync(fs, fd); // skipped
      const err = await fdatasync(fs, fd).then(
        () => null,
        (e: NodeJS.ErrnoException) => e,
      );
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'EIO');
      assert.equal(err.errno, -5);
      assert.equal(err.syscall, 'fdatasync');
      assert.match(err.message, /^EIO: i\/o error, fdatasync/);
      await fdatasync(fs, fd); // times: 1

      disk.injectFault({ kinds: ['writev'], code: 'EIO', match: (op) => (op.position ?? 0) >= 100 });
      await writev(fs, fd, pattern(10, 1), 0);
      await assert.rejects(writev(fs, fd, pattern(10, 1), 100), { code: 'EIO', syscall: 'write' });
      assert.equal(disk.fileContent('/d/f')!.length, 10, 'the failed write must not land');
    });

    it('ENOSPC past the capacity, for writes and preallocation by truncate', async () => {
      const disk = newDisk(16, { capacityBytes: 1000 });
      const fs = disk.mount();
      const fd = await durableFile(fs, pattern(600, 1));
      await assert.rejects(writev(fs, fd, pattern(500, 2), 600), { code: 'ENOSPC' });
      await writev(fs, fd, pattern(400, 2), 600);
      const other = await fs.open('/d/g', 'wx');
      await assert.rejects(fs.ftruncate(other, 1), { code: 'ENOSPC', syscall: 'ftruncate' });
      disk.capacityBytes = Number.POSITIVE_INFINITY;
      await fs.ftruncate(other, 1 << 20);
    });

    it("dirSync 'EINVAL' (vboxsf): a directory fsync fails with EINVAL, a file fsync works", async () => {
      const disk = newDisk(17, { dirSync: 'EINVAL' });
      const fs = disk.mount();
      fs.mkdirSync('/d');
      assert.equal(fs.filesystemType('/d'), 'vboxsf');
      assert.throws(() => dirsync(fs, '/d'), { code: 'EINVAL', syscall: 'fsync', errno: -22 });
      const fd = await fs.open('/d/f', 'w');
      await fdatasync(fs, fd);
    });

    it('onOp can fail an op with an errno instead of crashing', async () => {
      const disk = newDisk(18, { onOp: (op) => (op.kind === 'rename' ? 'EIO' : undefined) });
      const fs = disk.mount();
      await durableFile(fs, pattern(1, 1), '/d/a');
      assert.throws(() => fs.renameSync('/d/a', '/d/b'), { code: 'EIO', syscall: 'rename' });
      assert.deepEqual(disk.listDir('/d'), ['a']);
    });
  });

  describe('node:fs semantics', function () {
    it('errors: ENOENT, EEXIST, ENOTEMPTY, EISDIR, EBADF', async () => {
      const disk = newDisk(19);
      const fs = disk.mount();
      assert.throws(() => fs.readdirSync('/nope'), { code: 'ENOENT', syscall: 'scandir', path: '/nope' });
      fs.mkdirSync('/d/e', { recursive: true });
      assert.throws(() => fs.mkdirSync('/d'), { code: 'EEXIST' });
      const fd = await fs.open('/d/f', 'wx');
      await assert.rejects(fs.open('/d/f', 'wx'), { code: 'EEXIST', syscall: 'open' });
      assert.throws(() => fs.rmdirSync('/d'), { code: 'ENOTEMPTY' });
      assert.throws(() => fs.openSync('/d/e', 'w'), { code: 'EISDIR' });
      await fs.close(fd);
      await assert.rejects(fs.close(fd), { code: 'EBADF' });
      await fs.rm('/d/missing', { force: true });
      await assert.rejects(fs.rm('/d/missing'), { code: 'ENOENT' });
      await fs.rm('/d', { recursive: true, force: true });
      assert.equal(fs.existsSync('/d'), false);
    });

    it("renames a directory with its contents (Wal.create's tmp-dir rename)", async () => {
      const disk = newDisk(20);
      const fs = disk.mount();
      await durableFile(fs, pattern(10, 1), '/d/f');
      fs.mkdirSync('/e');
      fs.rmdirSync('/e');
      fs.renameSync('/d', '/e');
      assert.ok(equalBytes(fs.readFileSync('/e/f'), pattern(10, 1)));
      assert.throws(() => fs.renameSync('/e', '/e/sub'), { code: 'EINVAL' });
    });

    it('reads, stat, truncate and link', async () => {
      const disk = newDisk(22);
      const fs = disk.mount();
      const fd = await durableFile(fs, pattern(100, 1));
      const buf = new Uint8Array(50);
      assert.equal(await fs.read(fd, buf, 10, 40, 80), 20);
      assert.ok(equalBytes(buf.subarray(10, 30), pattern(100, 1).subarray(80, 100)));
      await fs.ftruncate(fd, 30);
      assert.equal((await fs.fstat(fd)).size, 30);
      fs.linkSync('/d/f', '/d/g');
      assert.equal(fs.statSync('/d/g').ino, fs.statSync('/d/f').ino);
      assert.equal(fs.statSync('/d').isDirectory(), true);
      assert.equal(fs.writeSync(fd, 'hé', 0), 3);
      assert.equal(Buffer.from(fs.readFileSync('/d/g').subarray(0, 3)).toString('utf8'), 'hé');
    });
  });

  describe('locks', function () {
    it('one holder per file per disk; a second process gets ELOCKED; locks die with the process', () => {
      const disk = newDisk(23);
      const a = disk.mount('a');
      const b = disk.mount('b');
      a.mkdirSync('/w');
      const release = a.flock('/w/LOCK');
      assert.ok(b.existsSync('/w/LOCK'), 'flock creates the file');
      assert.throws(() => b.flock('/w/LOCK'), { code: 'ELOCKED' });
      release();
      const releaseB = b.flock('/w/LOCK');
      disk.crash({ namespace: 'keep' });
      releaseB(); // a dead process's release is a no-op
      const c = disk.mount('c');
      c.flock('/w/LOCK')();
    });
  });
});
