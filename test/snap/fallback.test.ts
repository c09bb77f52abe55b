/**
 * A corrupt newest snapshot file does not stop a node from starting: start-up falls back to an
 * older kept snapshot (its file set aside as *.broken), and the WAL still holds everything from
 * that snapshot's marker on, because segments are released only up to the oldest snapshot kept.
 * Checked on NodeStorage directly (every backend) and on a real single-node RaftNode, which has
 * no peer to repair from: everything it committed must come back from its own disk.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NodeStorage } from '../../src/node/storage.js';
import { EntryType, type Entry, type Snapshot } from '../../src/raft/types.js';
import { parseSnapshotFileName } from '../../src/snap/index.js';
import type { WalBackend } from '../../src/wal/backend.js';
import { parseSegmentFileName } from '../../src/wal/segment-name.js';
import { enc, TestCluster, waitFor } from '../node/helpers.js';
import { backends, tempRoot } from '../wal/fixtures/backends.js';

const SNAPSHOT_EVERY = 10;
const ENTRIES = 75;

interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

function recordingLogger(into: Logged[]) {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void into.push({ level, msg, fields });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Snapshot files in `snapDir`, newest first. */
function snapshotFiles(snapDir: string): { file: string; index: number }[] {
  return fs
    .readdirSync(snapDir)
    .flatMap((name) => {
      const parsed = parseSnapshotFileName(name);
      return parsed === null ? [] : [{ file: path.join(snapDir, name), index: parsed.index }];
    })
    .sort((a, b) => b.index - a.index);
}

/** First indexes of the WAL segments in `walDir`. */
function segmentFirstIndexes(walDir: string): number[] {
  return fs.readdirSync(walDir).flatMap((name) => {
    const parsed = parseSegmentFileName(name);
    return parsed === null ? [] : [parsed.firstIndex];
  });
}

/** That the test means something: the newer snapshot's replay starts in a later segment than
 * the older one's, so releasing up to the newer one would have taken the older one's segment.
 * (Checked last: without the fix those segments are gone and the restart already failed.) */
function assertSegmentBoundaryBetween(walDir: string, older: number, newer: number): void {
  const firsts = segmentFirstIndexes(walDir);
  assert.ok(
    firsts.some((f) => f > older && f <= newer),
    `no WAL segment starts in (${older}, ${newer}]: segments start at ${firsts.join(' ')}`,
  );
}

/** Flip one byte in the middle of the file: its CRC no longer checks out. */
function corrupt(file: string): void {
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x5a;
  fs.writeFileSync(file, bytes);
}

function entry(index: number): Entry {
  return { term: 1, index, type: EntryType.Normal, data: enc(`entry ${index} ${'x'.repeat(200)}`) };
}

/** The "state machine" of the NodeStorage test: the indexes applied, as the snapshot data. */
function snapshotAt(index: number): Snapshot {
  const applied = Array.from({ length: index }, (_, i) => i + 1);
  return { metadata: { index, term: 1, confState: { voters: [1], learners: [] } }, data: enc(JSON.stringify(applied)) };
}

for (const { name, backend } of backends) {
  describe(`NodeStorage: start-up with corrupt newest snapshots (${name} backend)`, function () {
    let root: string;
    let logs: Logged[];
    const open = (wal: WalBackend) =>
      NodeStorage.open({
        dir: root,
        nodeId: 1,
        clusterId: 'fallback',
        walMode: 'buffered',
        dirSync: 'auto',
        logger: recordingLogger(logs),
        walBackend: wal,
        walSegmentBytes: 4096,
      });

    beforeEach(async () => {
      root = tempRoot(`fallback-${name}`);
      logs = [];
      // A node's life: entries committed one by one, a snapshot every SNAPSHOT_EVERY entries
      // followed by the release that goes with it, and a tail after the last snapshot.
      const { storage } = await open(backend);
      for (let i = 1; i <= ENTRIES; i++) {
        await storage.save({ term: 1, vote: 1, commit: i }, [entry(i)], true);
        if (i % SNAPSHOT_EVERY === 0) {
          await storage.saveSnapshot(snapshotAt(i));
          await storage.releaseTo(i);
        }
      }
      await storage.close();
      const snaps = snapshotFiles(path.join(root, 'snap'));
      assert.deepEqual(snaps.map((s) => s.index), [70, 60, 50], 'three snapshot files are kept');
      assert.ok(!segmentFirstIndexes(path.join(root, 'wal')).includes(0), 'early WAL segments were released');
    });
    afterEach(() => {
      fs.rmSync(root, { recursive: true, force: true });
    });

    for (const corrupted of [1, 2]) {
      it(`the ${corrupted} newest snapshot file(s) corrupt: an older one + the WAL bring back every committed entry`, async () => {
        const snaps = snapshotFiles(path.join(root, 'snap'));
        for (const s of snaps.slice(0, corrupted)) corrupt(s.file);
        const fallback = snaps[corrupted]!.index;

        const { storage, replay } = await open(backend);
        try {
          assert.equal(replay.snapshot?.metadata.index, fallback, 'started from the newest snapshot that loads');
          assert.equal(replay.hardState.commit, ENTRIES);
          const fromSnapshot = JSON.parse(new TextDecoder().decode(replay.snapshot!.data)) as number[];
          const restored = [...fromSnapshot, ...replay.entries.map((e) => e.index)];
          assert.deepEqual(restored, Array.from({ length: ENTRIES }, (_, i) => i + 1), 'every committed entry, once, in order');
          for (const e of replay.entries) assert.deepEqual(e, entry(e.index));
          assert.equal(logs.filter((l) => l.msg === 'corrupt snapshot file set aside').length, corrupted);
          for (const s of snaps.slice(0, corrupted)) assert.ok(fs.existsSync(`${s.file}.broken`), `${s.file} set aside`);
          assertSegmentBoundaryBetween(path.join(root, 'wal'), fallback, snaps[corrupted - 1]!.index);
        } finally {
          await storage.close();
        }
      });
    }
  });
}

describe('RaftNode: a single node restarts with its newest snapshot file corrupt', function () {
  let cluster: TestCluster | null = null;
  afterEach(async () => {
    await cluster?.destroy();
    cluster = null;
  });

  it('falls back to an older snapshot and recovers every committed entry from its own disk', async function () {
    this.timeout(60_000);
    const logs: Logged[] = [];
    // Small segments and frequent snapshots: segments are cut and released many times.
    cluster = await TestCluster.create(1, { snapshotCount: 8, snapshotCatchUpEntries: 2, walSegmentBytes: 4096, logger: recordingLogger(logs) });
    const c = cluster;
    await c.start(1);
    await c.waitForLeader();
    // ~1 KB entries: 3 to a segment, so a snapshot every 8 entries lies segments apart.
    for (let k = 0; k < 60; k++) await c.node(1).propose(enc(`v${k} ${'y'.repeat(1000)}`));
    const before = c.members.get(1)!.sm.applied.slice();
    await waitFor(() => (c.node(1).status().snapshotIndex >= 40 ? true : undefined), 10_000, 'snapshots to be taken');
    await c.stop(1);

    const snapDir = path.join(c.members.get(1)!.dataDir, 'snap');
    const snaps = snapshotFiles(snapDir);
    assert.equal(snaps.length, 3, `three snapshot files are kept: ${snaps.map((s) => s.index).join(' ')}`);
    const walDir = path.join(c.members.get(1)!.dataDir, 'wal');
    assert.ok(!segmentFirstIndexes(walDir).includes(0), 'early WAL segments were released');
    corrupt(snaps[0]!.file);

    const node = await c.start(1);
    const sm = c.members.get(1)!.sm;
    assert.equal(sm.restores, 1, 'restored a snapshot at start');
    assert.ok(logs.some((l) => l.msg === 'corrupt snapshot file set aside'), 'the corrupt file was reported');
    await waitFor(() => (node.isLeader ? true : undefined), 10_000, 'the single node to lead again');
    await node.readBarrier();
    assert.deepEqual(sm.applied, before, 'every committed entry, in order');
    assertSegmentBoundaryBetween(walDir, snaps[1]!.index, snaps[0]!.index);
  });
});
