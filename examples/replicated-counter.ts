/**
 * A service that replicates its own state machine with raftkv: named counters.
 *
 *   npx tsx examples/replicated-counter.ts            # 3 members in this process, then exits
 *
 * Each CounterService owns one RaftNode. `add` goes through Raft and resolves with the value
 * the state machine computed once the increment is committed and applied; `get` is
 * linearizable (a ReadIndex barrier, then a local read). In production each member runs in its
 * own process or machine with its own `id`, the same `peers` list and its own `dataDir`.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

// In your project: import { RaftNode, type StateMachine } from 'raftkv';
import { RaftNode, type AppliedEntry, type PeerSpec, type StateMachine } from '../src/index.js';

type Command = { op: 'add'; name: string; delta: number };

/** The replicated state: deterministic, applied in log order on every member. */
class Counters implements StateMachine<number> {
  private readonly values = new Map<string, number>();

  apply(entry: AppliedEntry): number {
    const cmd = JSON.parse(new TextDecoder().decode(entry.data)) as Command;
    const next = (this.values.get(cmd.name) ?? 0) + cmd.delta;
    this.values.set(cmd.name, next);
    return next; // what add() resolves with on the member that proposed it
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify([...this.values]));
  }

  restore(data: Uint8Array): void {
    this.values.clear();
    for (const [k, v] of JSON.parse(new TextDecoder().decode(data)) as [string, number][]) this.values.set(k, v);
  }

  read(name: string): number {
    return this.values.get(name) ?? 0;
  }
}

class CounterService {
  private constructor(
    readonly node: RaftNode<number>,
    private readonly counters: Counters,
  ) {}

  static async start(id: number, peers: PeerSpec[], dataDir: string): Promise<CounterService> {
    const counters = new Counters();
    const node = await RaftNode.start<number>({ id, peers, dataDir, stateMachine: counters, snapshotCount: 1000 });
    node.on('leader-change', (e) => console.log(`[node ${id}] leader is now ${e.leader} (term ${e.term})`));
    node.on('fatal', (e) => console.error(`[node ${id}] FATAL: ${e.detail}`));
    return new CounterService(node, counters);
  }

  /** Works on any member: followers forward to the leader. During an election it waits for
   * the new leader (within the node's request timeout), so no retry loop is needed here. */
  async add(name: string, delta: number): Promise<number> {
    const cmd: Command = { op: 'add', name, delta };
    return this.node.propose(new TextEncoder().encode(JSON.stringify(cmd)));
  }

  /** Linearizable: reflects every add that completed before this call, on any member. */
  async get(name: string): Promise<number> {
    await this.node.readBarrier();
    return this.counters.read(name);
  }
}

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(tmpdir(), 'raftkv-counter-'));
  const peers: PeerSpec[] = [
    { id: 1, url: 'http://127.0.0.1:17001' },
    { id: 2, url: 'http://127.0.0.1:17002' },
    { id: 3, url: 'http://127.0.0.1:17003' },
  ];
  const services = await Promise.all(peers.map((p) => CounterService.start(p.id, peers, path.join(root, `member-${p.id}`))));
  try {
    // Every member increments concurrently; each call resolves with the value after ITS add.
    const results = await Promise.all(services.flatMap((s) => [1, 2, 3].map(() => s.add('visits', 1))));
    console.log('values seen by the adds:', results.sort((a, b) => a - b).join(' '));
    for (const s of services) console.log(`member ${s.node.id} reads visits = ${await s.get('visits')}`);

    const st = services[0]!.node.status();
    console.log(`leader ${st.leader} (${st.leaderUrl}), term ${st.term}, commit ${st.commit}, WAL ${st.wal.backend}/${st.wal.mode}`);
  } finally {
    await Promise.all(services.map((s) => s.node.stop()));
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
