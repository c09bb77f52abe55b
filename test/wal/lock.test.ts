/**
 * The WAL directory lock on every path a user can end up on: native flock (our addon), fs-ext
 * flock, and the O_EXCL pid lock file. Real child processes: while one holds the directory, a
 * second process (and this one) gets a clear error naming the directory and the holder; a holder
 * killed with SIGKILL does not block the next open. Methods exclude each other too.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { WalBackend } from '../../src/wal/backend.js';
import { EntryType } from '../../src/raft/types.js';
import { WalLockedError } from '../../src/wal/errors.js';
import { loadFsExt, type LockMethod } from '../../src/wal/lock.js';
import { Wal } from '../../src/wal/wal.js';
import { backendByName, backends, MemoryLogger, tempRoot, type BackendName } from './fixtures/backends.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/hold-lock.ts', import.meta.url));

interface Holder {
  child: ChildProcessByStdio<Writable, Readable, Readable>;
  pid: number;
  lines: string[];
  waitFor(prefix: string): Promise<string>;
  exited: Promise<void>;
}

function startHolder(dir: string, method: LockMethod, backendName: BackendName): Holder {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir, method, backendName], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { prefix: string; resolve: (line: string) => void }[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (line.startsWith(w.prefix) || line.startsWith('error')) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    child,
    pid: child.pid!,
    lines,
    exited,
    waitFor(prefix: string) {
      const seen = lines.find((l) => l.startsWith(prefix) || l.startsWith('error'));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ prefix, resolve });
        void exited.then(() => reject(new Error(`holder exited before "${prefix}": ${lines.join(' | ')} ${stderr}`)));
      });
    },
  };
}

const methods: { method: LockMethod; backend: BackendName }[] = [];
if (backends.some((b) => b.name === 'native')) methods.push({ method: 'native', backend: 'native' });
else console.log('      (lock tests: native flock not tested: native backend unavailable)');
if (loadFsExt().module !== null) methods.push({ method: 'fs-ext', backend: 'js' });
else console.log(`      (lock tests: fs-ext flock not tested: ${loadFsExt().error})`);
methods.push({ method: 'pidfile', backend: 'js' });

describe('WAL directory lock', function () {
  let root: string;
  let dir: string;
  let logger: MemoryLogger;
  beforeEach(async () => {
    root = tempRoot('lock');
    dir = path.join(root, 'wal');
    logger = new MemoryLogger();
    const wal = await Wal.create(dir, { backend: backendByName('js'), logger, metadata: { nodeId: 1, clusterId: 2 }, segmentBytes: 8192, lockMethod: 'pidfile' });
    await wal.close();
  });
  afterEach(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const openWith = (method: LockMethod, backend: WalBackend) =>
    Wal.open(dir, { backend, logger, lockMethod: method, segmentBytes: 8192 });

  for (const { method, backend: backendName } of methods) {
    describe(`method ${method}`, function () {
      it('a second process opening the same directory fails with an error naming the directory and the holder', async () => {
        const holder = startHolder(dir, method, backendName);
        try {
          assert.match(await holder.waitFor('locked'), /^locked \d+$/);
          // This test process is the second one:
          await assert.rejects(openWith(method, backendByName(backendName)), (err: unknown) => {
            assert.ok(err instanceof WalLockedError, String(err));
            assert.equal(err.dir, dir);
            assert.equal(err.holder, `pid ${holder.pid}`);
            assert.ok(err.message.includes(dir) && err.message.includes(`pid ${holder.pid}`), err.message);
            return true;
          });
          holder.child.stdin.end();
          assert.equal(await holder.waitFor('released'), 'released');
          await holder.exited;
        } finally {
          holder.child.kill('SIGKILL');
        }
        const { wal } = await openWith(method, backendByName(backendName));
        assert.equal(wal.status().lock.kind, method);
        await wal.close();
      });

      it('a second open in this process through a symlink to the directory is refused (identity, not path)', async () => {
        const backend = backendByName(backendName);
        const link = path.join(root, 'link-to-wal');
        fs.symlinkSync(dir, link, 'dir');
        const first = await openWith(method, backend);
        try {
          await first.wal.save(null, [{ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array([1]) }]);
          await assert.rejects(
            Wal.open(link, { backend, logger, lockMethod: method, segmentBytes: 8192 }),
            (err: unknown) => {
              assert.ok(err instanceof WalLockedError, `expected WalLockedError, got ${String(err)}`);
              assert.equal(err.holder, `this process (pid ${process.pid})`);
              return true;
            },
          );
          assert.ok(!logger.warnings.some((w) => w.includes('took over')), logger.warnings.join('\n'));
          // The first holder's lock is intact: it keeps appending, and releases on close.
          await first.wal.save(null, [{ term: 1, index: 2, type: EntryType.Normal, data: new Uint8Array([2]) }]);
        } finally {
          await first.wal.close();
        }
        const again = await Wal.open(link, { backend, logger, lockMethod: method, segmentBytes: 8192 });
        assert.deepEqual(again.entries.map((e) => e.index), [1, 2]);
        await again.wal.close();
      });

      it('a holder killed with SIGKILL does not block the next open', async () => {
        const holder = startHolder(dir, method, backendName);
        assert.match(await holder.waitFor('locked'), /^locked/);
        holder.child.kill('SIGKILL');
        await holder.exited;
        const { wal } = await openWith(method, backendByName(backendName));
        await wal.close();
        if (method === 'pidfile') assert.ok(logger.warnings.some((w) => w.includes('stale') && w.includes(String(holder.pid))), logger.warnings.join('\n'));
      });
    });
  }

  const flockMethods = methods.filter((m) => m.method !== 'pidfile');
  for (const { method, backend: backendName } of flockMethods) {
    it(`${method} flock and the pid lock file exclude each other`, async () => {
      const flockHolder = startHolder(dir, method, backendName);
      try {
        await flockHolder.waitFor('locked');
        await assert.rejects(openWith('pidfile', backendByName('js')), (err: unknown) => err instanceof WalLockedError && err.holder === `pid ${flockHolder.pid}`);
      } finally {
        flockHolder.child.stdin.end();
        await flockHolder.exited;
      }
      const pidHolder = startHolder(dir, 'pidfile', 'js');
      try {
        await pidHolder.waitFor('locked');
        await assert.rejects(openWith(method, backendByName(backendName)), (err: unknown) => err instanceof WalLockedError && err.holder === `pid ${pidHolder.pid}`);
      } finally {
        pidHolder.child.stdin.end();
        await pidHolder.exited;
      }
    });
  }

  it('picks native flock, then fs-ext, then the pid lock file by default', async () => {
    for (const { name, backend } of backends) {
      const { wal } = await Wal.open(dir, { backend, logger, segmentBytes: 8192 });
      const kind = wal.status().lock.kind;
      await wal.close();
      const expected = backend.flock !== null ? 'native' : loadFsExt().module !== null ? 'fs-ext' : 'pidfile';
      assert.equal(kind, expected, `${name} backend`);
    }
  });

  it('pid lock file: a dead owner is taken over, an unreadable fresh file is respected, an old one is not', async () => {
    const lockFile = path.join(dir, 'LOCK');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout);
    assert.ok(deadPid > 0);
    fs.writeFileSync(lockFile, `pid ${deadPid} start - method pidfile\n`);
    const taken = await openWith('pidfile', backendByName('js'));
    assert.ok(logger.warnings.some((w) => w.includes(`owner pid ${deadPid} is gone`)), logger.warnings.join('\n'));
    await taken.wal.close();
    assert.equal(fs.existsSync(lockFile), false, 'the pid lock file is removed on close');

    fs.writeFileSync(lockFile, ''); // a creator between O_EXCL create and writing its pid
    await assert.rejects(openWith('pidfile', backendByName('js')), WalLockedError);
    const longAgo = new Date(Date.now() - 60_000);
    fs.utimesSync(lockFile, longAgo, longAgo); // ... or one that died right there, long ago
    const again = await openWith('pidfile', backendByName('js'));
    await again.wal.close();
  });
});
