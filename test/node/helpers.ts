/** Helpers for the runtime tests: free ports, temp dirs, a recording state machine, clusters. */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { RaftNode, type AppliedEntry, type NodeLogger, type RaftNodeOptions, type StateMachine } from '../../src/node/index.js';
import { freePorts } from '../../bench/lib/ports.js';

export { freePorts };

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `raftkv-node-${prefix}-`));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/**
 * A state machine that records every applied payload (as text) in order, and snapshots the
 * whole list as JSON. apply returns the entry's index, so a proposer learns where it landed.
 */
export class LogStateMachine implements StateMachine<number> {
  applied: string[] = [];
  appliedIndexes: number[] = [];
  restores = 0;
  snapshots = 0;
  lastIndex = 0;

  apply(entry: AppliedEntry): number {
    if (entry.index <= this.lastIndex) throw new Error(`apply out of order: ${entry.index} after ${this.lastIndex}`);
    this.lastIndex = entry.index;
    this.applied.push(new TextDecoder().decode(entry.data));
    this.appliedIndexes.push(entry.index);
    return entry.index;
  }

  snapshot(): Uint8Array {
    this.snapshots++;
    return new TextEncoder().encode(JSON.stringify({ applied: this.applied, lastIndex: this.lastIndex }));
  }

  restore(data: Uint8Array): void {
    this.restores++;
    const parsed = JSON.parse(new TextDecoder().decode(data)) as { applied: string[]; lastIndex: number };
    this.applied = parsed.applied;
    this.appliedIndexes = [];
    this.lastIndex = parsed.lastIndex;
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

export function testLogger(prefix: string): NodeLogger {
  const verbose = process.env.RAFTKV_TEST_LOG === '1';
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    if (verbose || level === 'error') process.stderr.write(`[${prefix}] ${level} ${msg} ${fields ? JSON.stringify(fields) : ''}\n`);
  };
  return { debug: verbose ? line('debug') : () => {}, info: line('info'), warn: line('warn'), error: line('error') };
}

export interface TestMember {
  id: number;
  url: string;
  dataDir: string;
  sm: LogStateMachine;
  node: RaftNode<number> | null;
}

/** A cluster of RaftNodes in this process on real sockets and real files. */
export class TestCluster {
  readonly members = new Map<number, TestMember>();

  constructor(
    readonly root: string,
    readonly extra: Partial<RaftNodeOptions<number>> = {},
  ) {}

  static async create(n: number, extra: Partial<RaftNodeOptions<number>> = {}): Promise<TestCluster> {
    const root = await tempDir('cluster');
    const c = new TestCluster(root, extra);
    const ports = await freePorts(n);
    ports.forEach((port, i) => c.define(i + 1, port));
    return c;
  }

  define(id: number, port: number): TestMember {
    const m: TestMember = {
      id,
      url: `http://127.0.0.1:${port}`,
      dataDir: path.join(this.root, `node-${id}`),
      sm: new LogStateMachine(),
      node: null,
    };
    this.members.set(id, m);
    return m;
  }

  peers(): { id: number; url: string }[] {
    return [...this.members.values()].map((m) => ({ id: m.id, url: m.url }));
  }

  async start(id: number, extra: Partial<RaftNodeOptions<number>> = {}): Promise<RaftNode<number>> {
    const m = this.members.get(id)!;
    m.sm = new LogStateMachine();
    m.node = await RaftNode.start<number>({
      id,
      peers: this.peers(),
      dataDir: m.dataDir,
      stateMachine: m.sm,
      tickMs: 20,
      electionTicks: 10,
      heartbeatTicks: 1,
      walMode: 'buffered',
      walSegmentBytes: 1024 * 1024,
      logger: testLogger(`n${id}`),
      ...this.extra,
      ...extra,
    });
    return m.node;
  }

  async startAll(): Promise<void> {
    await Promise.all([...this.members.keys()].map((id) => this.start(id)));
  }

  node(id: number): RaftNode<number> {
    const n = this.members.get(id)?.node;
    if (!n) throw new Error(`node ${id} is not running`);
    return n;
  }

  running(): RaftNode<number>[] {
    return [...this.members.values()].flatMap((m) => (m.node !== null && m.node.nodeState === 'running' ? [m.node] : []));
  }

  async stop(id: number): Promise<void> {
    const m = this.members.get(id)!;
    if (m.node !== null) await m.node.stop();
    m.node = null;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.members.keys()].map((id) => this.stop(id)));
  }

  async destroy(): Promise<void> {
    await this.stopAll();
    await removeDir(this.root);
  }

  /** Waits until every running node agrees on one leader; returns its id. */
  async waitForLeader(timeoutMs = 10_000): Promise<number> {
    return waitFor(() => {
      const nodes = this.running();
      const leaders = new Set(nodes.map((n) => n.leaderId));
      const [leader] = [...leaders];
      if (leaders.size === 1 && leader !== 0 && nodes.some((n) => n.id === leader && n.isLeader)) return leader;
      return undefined;
    }, timeoutMs, 'a leader agreed on by every running node');
  }
}

/** Polls `probe` every 10 ms until it returns a value other than undefined. */
export async function waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Retries `fn` while it fails with a retryable RaftNodeError (no leader yet, lost entry). */
export async function withRetry<T>(fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const retryable = (err as { retryable?: boolean }).retryable === true;
      if (!retryable || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
