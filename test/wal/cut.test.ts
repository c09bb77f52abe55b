/**
 * A crash at any step of a segment cut, with saves in flight, never leaves a hard state ahead
 * of the log. The cut writes a hard state into the new segment (so a replay starting there knows
 * it) and syncs it; it must be one whose records are durable in the old segment — never the one
 * of the save that triggered the cut, nor of a save queued behind it, whose entries are not
 * written yet.
 *
 * Every I/O call of the WAL runs through SerialDisk (fixtures/serial-disk.ts), which copies the
 * directory between two calls: once as a killed process leaves it, once as a power loss does
 * (writes no fdatasync covered are lost). Each image is reopened as a restart would, and:
 *  - commit ≤ the last replayed entry (else raft refuses to start: "hardState.commit 29 is out
 *    of range [0, 26]");
 *  - every entry up to commit is the entry that was committed at that index, same term and data
 *    (else the node applies entries that were never committed, e.g. a deposed leader's);
 *  - commit ≥ the commit of every save that had resolved (acknowledged means durable).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import type { WalBackend } from '../../src/wal/backend.js';
import { Wal } from '../../src/wal/wal.js';
import { backends, makeRandom, MemoryLogger, randomInt, SEED, tempRoot } from './fixtures/backends.js';
import { SerialDisk, type CrashImage } from './fixtures/serial-disk.js';

const METADATA = { nodeId: 2, clusterId: 7 };
const SEGMENT_BYTES = 8192;

/** Entry data that names its term and index, padded to `size` bytes. */
function entry(term: number, index: number, size: number): Entry {
  const data = new Uint8Array(size);
  const tag = new TextEncoder().encode(`t${term} i${index} `);
  for (let i = 0; i < size; i++) data[i] = i < tag.length ? tag[i]! : (term * 131 + index * 17 + i) & 0xff;
  return { term, index, type: EntryType.Normal, data };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** What the follower was told: its log as saved, and the entry committed at each index. */
class Truth {
  private log: Entry[] = [];
  readonly committed = new Map<number, Entry>();
  commit = 0;

  get lastIndex(): number {
    return this.log.length;
  }

  append(entries: readonly Entry[]): void {
    for (const e of entries) {
      assert.ok(e.index > this.commit, `test bug: rewriting committed index ${e.index}`);
      this.log.length = e.index - 1; // a rewrite drops the conflicting suffix, as the WAL does
      this.log.push(e);
    }
  }

  /** Commit up to `index` of the log as it stands now. */
  advance(index: number): void {
    for (let i = this.commit + 1; i <= index; i++) this.committed.set(i, this.log[i - 1]!);
    this.commit = Math.max(this.commit, index);
  }
}

/** Reopen every image (as a restart would) and list what is wrong with it. */
async function violations(images: CrashImage[], backend: WalBackend, truth: Truth): Promise<string[]> {
  const found: string[] = [];
  for (const image of images) {
    const where = `crash ${image.moment} (${image.kind} image ${path.basename(image.dir)})`;
    // A huge segmentBytes: the restart only reads, it need not prepare a next segment.
    const opened = await Wal.open(image.dir, { backend, logger: new MemoryLogger(), mode: 'buffered', segmentBytes: 1 << 30 });
    try {
      const { hardState, entries } = opened;
      const last = entries.length === 0 ? 0 : entries[entries.length - 1]!.index;
      if (hardState.commit > last) {
        found.push(`${where}: hardState.commit ${hardState.commit} is beyond the last durable entry ${last}`);
        continue;
      }
      for (let i = 1; i <= hardState.commit; i++) {
        const got = entries[i - 1]!;
        const want = truth.committed.get(i);
        if (want === undefined) {
          found.push(`${where}: commit ${hardState.commit} covers index ${i}, which was never committed`);
          break;
        }
        if (got.term !== want.term || !sameBytes(got.data, want.data)) {
          found.push(`${where}: commit ${hardState.commit} covers entry ${i} of term ${got.term}, but the entry committed at ${i} has term ${want.term}`);
          break;
        }
      }
      if (hardState.commit < image.acked) {
        found.push(`${where}: commit ${image.acked} was acknowledged, the restart has commit ${hardState.commit}`);
      }
    } finally {
      await opened.wal.close();
    }
  }
  return found;
}

function report(found: string[], images: number): string {
  return `${found.length} of ${images} crash images are wrong:\n  ${found.slice(0, 6).join('\n  ')}`;
}

for (const { name, backend } of backends) {
  describe(`WAL segment cut under crashes (${name} backend)`, function () {
    let root: string;
    let dir: string;
    let disk: SerialDisk;
    let truth: Truth;
    let wal: Wal;

    beforeEach(async () => {
      root = tempRoot(`cut-${name}`);
      dir = path.join(root, 'wal');
      disk = new SerialDisk(backend, dir, path.join(root, 'images'));
      truth = new Truth();
      wal = await Wal.create(dir, { backend: disk.backend, logger: new MemoryLogger(), mode: 'buffered', segmentBytes: SEGMENT_BYTES, metadata: METADATA });
    });
    afterEach(async () => {
      await wal.close();
      fs.rmSync(root, { recursive: true, force: true });
    });

    /** Save and keep the truth: entries, then the commit the hard state carries. */
    function save(hardState: HardState | null, entries: Entry[], sync = true): Promise<void> {
      truth.append(entries);
      if (hardState !== null) truth.advance(hardState.commit);
      const done = wal.save(hardState, entries, { sync });
      return done.then(() => {
        if (sync && hardState !== null) disk.acked = Math.max(disk.acked, hardState.commit);
      });
    }

    function segments(): number {
      return fs.readdirSync(dir).filter((n) => n.endsWith('.wal')).length;
    }

    async function assertEveryCrashRecovers(): Promise<void> {
      await wal.close();
      const found = await violations(disk.images, backend, truth);
      assert.ok(disk.images.length > 10, `only ${disk.images.length} crash images`);
      assert.ok(found.length === 0, report(found, disk.images.length));
    }

    it('a catching-up save whose entries and commit fill the segment: no crash leaves commit past the log', async () => {
      for (let i = 1; i <= 5; i++) await save({ term: 1, vote: 1, commit: i }, [entry(1, i, 1000)]);
      assert.equal(segments(), 1);
      // 3 KB do not fit in the ~2.6 KB left: this save cuts, and commits its own entries.
      await save({ term: 1, vote: 1, commit: 8 }, [entry(1, 6, 1000), entry(1, 7, 1000), entry(1, 8, 1000)]);
      assert.equal(segments(), 2, 'the save cut a new segment');
      await assertEveryCrashRecovers();
    });

    it("a new leader's rewrite of uncommitted entries, committed in the save that cuts: no crash commits the old term's entries", async () => {
      for (let i = 1; i <= 5; i++) await save({ term: 1, vote: 1, commit: Math.min(i, 2) }, [entry(1, i, 1000)]);
      // Term 2 replaces the uncommitted 3–5 and commits them at once.
      await save({ term: 2, vote: 3, commit: 5 }, [entry(2, 3, 1000), entry(2, 4, 1000), entry(2, 5, 1000)]);
      assert.equal(segments(), 2, 'the save cut a new segment');
      await assertEveryCrashRecovers();
    });

    it('a save issued while a cut waits on I/O: its commit is not carried into the new segment', async () => {
      for (let i = 1; i <= 5; i++) await save({ term: 1, vote: 1, commit: i }, [entry(1, i, 1000)]);
      // The first cuts (and commits nothing new); the second, queued behind the cut, commits
      // the first one's entries.
      const cutting = save(null, [entry(1, 6, 1000), entry(1, 7, 1000), entry(1, 8, 1000)]);
      const behind = save({ term: 1, vote: 1, commit: 8 }, [], false);
      await Promise.all([cutting, behind]);
      assert.equal(segments(), 2, 'the save cut a new segment');
      await assertEveryCrashRecovers();
    });

    it(`a follower's random saves, in concurrent waves across many cuts (seed ${SEED})`, async function () {
      this.timeout(120_000);
      const random = makeRandom(SEED);
      let term = 1;
      let waves = 0;
      for (let saves = 0; saves < 80; waves++) {
        const wave: Promise<void>[] = [];
        for (let n = randomInt(random, 1, 4); n > 0; n--, saves++) {
          const r = random();
          if (r < 0.15 && truth.lastIndex > truth.commit) {
            // A new leader rewrites part of the uncommitted tail and commits what it sent.
            term++;
            const from = randomInt(random, truth.commit + 1, truth.lastIndex);
            const entries = Array.from({ length: randomInt(random, 1, 4) }, (_, k) => entry(term, from + k, randomInt(random, 100, 900)));
            wave.push(save({ term, vote: 1 + (term % 3), commit: entries[entries.length - 1]!.index }, entries));
          } else if (r < 0.3 && truth.lastIndex > truth.commit) {
            // Only the commit moved: Ready.mustSync is false.
            wave.push(save({ term, vote: 1 + (term % 3), commit: randomInt(random, truth.commit + 1, truth.lastIndex) }, [], false));
          } else {
            // Catching up: new entries, usually with a commit over (some of) them.
            const first = truth.lastIndex + 1;
            const entries = Array.from({ length: randomInt(random, 1, 3) }, (_, k) => entry(term, first + k, randomInt(random, 100, 900)));
            const last = entries[entries.length - 1]!.index;
            const commit = random() < 0.6 ? last : Math.max(truth.commit, last - randomInt(random, 1, 3));
            wave.push(save(random() < 0.15 ? null : { term, vote: 1 + (term % 3), commit }, entries));
          }
        }
        await Promise.all(wave);
      }
      const cuts = segments() - 1;
      assert.ok(cuts >= 5, `only ${cuts} cuts (seed ${SEED})`);
      await wal.close();
      const found = await violations(disk.images, backend, truth);
      assert.ok(found.length === 0, `seed ${SEED}: ${report(found, disk.images.length)}`);
      const power = disk.images.filter((i) => i.kind === 'power').length;
      console.log(`      (${name}: ${waves} waves, ${cuts} cuts, ${disk.images.length} crash images checked (${power} with unsynced writes lost), seed ${SEED})`);
    });
  });
}
