/**
 * Raft core throughput: entries committed per second through a 3-node in-memory cluster whose
 * messages are delivered instantly (no I/O, no network, MemoryStorage), for 256-byte entries
 * proposed 1 and 64 at a time, plus CPU time per committed entry (process.cpuUsage).
 *
 *   npm run bench:raft [-- --seconds S] [--json FILE]
 *
 * An entry counts as committed when the leader hands it out in Ready.committedEntries.
 * Rows: single proposals; 64 entries in one proposeBatch() call; 64 propose() calls per cycle.
 * The cluster runs on one thread: the numbers are for one core.
 */
import { writeFileSync } from 'node:fs';
import { MemoryStorage, RawNode, SeededRandom, decodeConfChange } from '../src/raft/index.js';
import { EntryType, Role, type Message, type NodeId } from '../src/raft/types.js';

const ENTRY_BYTES = 256;
const COMPACT_EVERY = 20_000;

type ProposeMode = 'propose' | 'proposeBatch';

interface Result {
  mode: string;
  batch: number;
  entries: number;
  seconds: number;
  entriesPerSec: number;
  cpuMicrosPerEntry: number;
  readies: number;
  messages: number;
}

class Cluster {
  readonly nodes = new Map<NodeId, { raw: RawNode; storage: MemoryStorage; applied: number; snapIndex: number }>();
  private queue: Message[] = [];
  committed = 0;
  readies = 0;
  messages = 0;

  constructor() {
    const ids = [1, 2, 3];
    const random = new SeededRandom(1);
    for (const id of ids) {
      const storage = new MemoryStorage();
      const raw = new RawNode({
        id, electionTick: 10, heartbeatTick: 1, storage, random,
        maxSizePerMsg: 1 << 20, maxInflightMsgs: 256, maxCommittedSizePerReady: 1 << 22,
      });
      raw.bootstrap(ids);
      this.nodes.set(id, { raw, storage, applied: 0, snapIndex: 0 });
    }
    this.pump(); // persist and apply the bootstrap entries (no campaign with unapplied conf changes)
    this.leaderNode().raw.campaign();
    this.pump();
    if (this.leaderNode().raw.status().role !== Role.Leader) throw new Error('node 1 did not become leader');
  }

  leaderNode(): { raw: RawNode } {
    return this.nodes.get(1)!;
  }

  /** Runs Ready cycles and delivers messages until the cluster is quiet. */
  pump(): void {
    for (;;) {
      let progress = false;
      for (const [id, n] of this.nodes) {
        while (n.raw.hasReady()) {
          progress = true;
          this.readies++;
          const rd = n.raw.ready();
          for (const m of rd.parallelMessages) this.queue.push(m);
          if (rd.snapshot !== null) n.storage.applySnapshot(rd.snapshot);
          if (rd.entries.length > 0) n.storage.append(rd.entries);
          if (rd.hardState !== null) n.storage.setHardState(rd.hardState);
          for (const m of rd.messages) this.queue.push(m);
          const ce = rd.committedEntries;
          if (ce.length > 0) {
            for (const e of ce) {
              if (e.type === EntryType.ConfChange) n.raw.applyConfChange(decodeConfChange(e.data));
              else if (id === 1 && e.data.length === ENTRY_BYTES) this.committed++;
            }
            n.applied = ce[ce.length - 1]!.index;
          }
          n.raw.advance(rd);
          if (n.applied - n.snapIndex >= COMPACT_EVERY) {
            n.storage.createSnapshot(n.applied, n.raw.status().config, new Uint8Array(0));
            n.storage.compact(n.applied);
            n.snapIndex = n.applied;
          }
        }
      }
      if (this.queue.length > 0) {
        progress = true;
        const q = this.queue;
        this.queue = [];
        this.messages += q.length;
        for (const m of q) this.nodes.get(m.to)!.raw.step(m);
      }
      if (!progress) return;
    }
  }
}

function runBatch(batch: number, mode: ProposeMode, seconds: number): Result {
  const cluster = new Cluster();
  const leader = cluster.leaderNode().raw;
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  const startCpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(seconds * 1e9));
  let now = start;
  const startReadies = cluster.readies;
  const startMessages = cluster.messages;
  const batchData: Uint8Array[] = new Array<Uint8Array>(batch).fill(payload);
  while (now < deadline) {
    for (let k = 0; k < 100; k++) {
      // proposeBatch: one proposal of `batch` entries (one Prop message, like etcd's
      // multi-entry Propose); propose: `batch` separate calls before the next Ready cycle.
      if (mode === 'proposeBatch') leader.proposeBatch(batchData);
      else for (let i = 0; i < batch; i++) leader.propose(payload);
      cluster.pump();
    }
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(startCpu);
  const elapsed = Number(now - start) / 1e9;
  return {
    mode: mode === 'proposeBatch' ? `proposeBatch(${batch})` : batch === 1 ? 'propose' : `${batch}x propose`,
    batch,
    entries: cluster.committed,
    seconds: elapsed,
    entriesPerSec: cluster.committed / elapsed,
    cpuMicrosPerEntry: (cpu.user + cpu.system) / cluster.committed,
    readies: cluster.readies - startReadies,
    messages: cluster.messages - startMessages,
  };
}

function main(): void {
  const args = process.argv.slice(2);
  let seconds = 3;
  let jsonFile: string | null = null;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--seconds') seconds = Number(args[++i]);
    else if (args[i] === '--json') jsonFile = args[++i] ?? null;
    else throw new Error(`unknown argument ${args[i]}`);
  }
  runBatch(64, 'proposeBatch', Math.min(1, seconds / 3)); // warm up the JIT
  const results = [
    runBatch(1, 'propose', seconds),
    runBatch(64, 'proposeBatch', seconds),
    runBatch(64, 'propose', seconds),
  ];
  // entries per CPU-second is the robust number on a shared machine (wall time includes waits).
  const header = 'proposal           entries   seconds  entries/s  entries/cpu-s  cpu µs/entry  readies   messages';
  console.log(`raft core, 3 nodes in memory, instant delivery, ${ENTRY_BYTES} B entries (node ${process.version})`);
  console.log(header);
  for (const r of results) {
    console.log(
      `${r.mode.padEnd(16)} ${String(r.entries).padStart(9)}  ${r.seconds.toFixed(2).padStart(7)}  ` +
      `${Math.round(r.entriesPerSec).toString().padStart(9)}  ${Math.round(1e6 / r.cpuMicrosPerEntry).toString().padStart(13)}  ` +
      `${r.cpuMicrosPerEntry.toFixed(2).padStart(12)}  ` +
      `${String(r.readies).padStart(7)}  ${String(r.messages).padStart(9)}`,
    );
  }
  if (jsonFile !== null) {
    writeFileSync(jsonFile, JSON.stringify({ node: process.version, entryBytes: ENTRY_BYTES, results }, null, 2) + '\n');
  }
}

main();
