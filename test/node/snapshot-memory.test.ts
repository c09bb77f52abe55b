/**
 * A snapshot many times larger than the memory budget goes from a leader to a lagging learner
 * (two real processes, real disks, sockets on 127.0.0.1) and both stay within the budget: the
 * state machine streams it into the leader's snapshot file, the transport streams it from that
 * file to a temp file on the learner, which restores from its file by streaming. Each child
 * reports its peak RSS (VmHWM) before and after; the state is checked byte for byte on restore.
 *
 *   RAFTKV_SNAPSHOT_TEST_MIB=N    snapshot size (default 384)
 *
 * The throughput it prints (the leader's send: file → socket → learner's fsynced file) is the
 * number in docs/benchmarks.md; it is reported, never asserted.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { freePorts, removeDir, tempDir } from './helpers.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'big-snapshot-node.ts');
const SNAPSHOT_MIB = Number(process.env.RAFTKV_SNAPSHOT_TEST_MIB ?? 384);
/** Peak RSS may grow this much over what the process had before the snapshot: chunks of 1 MiB
 * times a small constant, plus what the garbage collector lets pile up between runs. */
const BUDGET_MIB = 96;

type Event = Record<string, unknown> & { event: string };

class Child {
  readonly events: Event[] = [];
  private readonly waiters: Array<() => void> = [];
  readonly stderr: string[] = [];
  private readonly proc: ChildProcessByStdio<Writable, Readable, Readable>;

  constructor(readonly name: string, args: string[]) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Event);
      } catch {
        this.stderr.push(`(stdout) ${line}`);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    createInterface({ input: this.proc.stderr }).on('line', (line) => this.stderr.push(line));
    this.proc.on('exit', (code) => {
      this.events.push({ event: 'exit', code });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  send(cmd: Record<string, unknown>): void {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  /** The first event named `name` after position `from` (a liveness guard, not a timing check). */
  async next(name: string, from = 0, timeoutMs = 300_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find((e) => e.event === name);
      if (found !== undefined) return found;
      const failed = this.events.find((e) => e.event === 'error' || e.event === 'exit');
      if (failed !== undefined) throw new Error(`${this.name}: ${JSON.stringify(failed)}\n${this.stderr.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no '${name}' event\n${this.stderr.join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async request(cmd: Record<string, unknown>, answer: string): Promise<Event> {
    const from = this.events.length;
    this.send(cmd);
    return this.next(answer, from);
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

describe(`node: a ${SNAPSHOT_MIB} MiB snapshot to a lagging learner within a ${BUDGET_MIB} MiB memory budget (processes)`, function () {
  this.timeout(600_000);
  const children: Child[] = [];
  const dirs: string[] = [];

  after(async function () {
    for (const c of children) c.kill();
    for (const d of dirs) await removeDir(d);
  });

  it('streams state machine → file → socket → file → state machine; peak RSS stays bounded on both sides', async function () {
    const [p1, p2] = await freePorts(2);
    const url1 = `http://127.0.0.1:${p1}`;
    const url2 = `http://127.0.0.1:${p2}`;
    const dir1 = await tempDir('bigsnap-1');
    const dir2 = await tempDir('bigsnap-2');
    dirs.push(dir1, dir2);

    const leader = new Child('leader', ['1', dir1, JSON.stringify([{ id: 1, url: url1 }]), '0', String(SNAPSHOT_MIB)]);
    children.push(leader);
    const leaderReady = await leader.next('ready');
    await leader.request({ cmd: 'propose', n: 4 }, 'proposed');
    const taken = await leader.next('snapshot-taken');
    assert.ok(Number(taken.bytes) >= SNAPSHOT_MIB * 1024 * 1024, `snapshot taken: ${JSON.stringify(taken)}`);

    const learner = new Child('learner', ['2', dir2, JSON.stringify([{ id: 1, url: url1 }, { id: 2, url: url2 }]), '1', String(SNAPSHOT_MIB)]);
    children.push(learner);
    const learnerReady = await learner.next('ready');
    await leader.request({ cmd: 'addLearner', id: 2, url: url2 }, 'added');
    const restored = await learner.next('restored');
    const sent = await leader.next('snapshot-sent');
    const leaderStatus = await leader.request({ cmd: 'status' }, 'status');
    const learnerStatus = await learner.request({ cmd: 'status' }, 'status');

    const mib = (v: unknown) => Math.round(Number(v));
    const throughput = (SNAPSHOT_MIB / (Number(sent.ms) / 1000)).toFixed(0);
    console.log(
      `      snapshot ${SNAPSHOT_MIB} MiB: sent in ${mib(sent.ms)} ms (${throughput} MiB/s, file → socket → fsynced file), ` +
        `restored in ${mib(restored.ms)} ms\n` +
        `      leader  RSS ${mib(leaderReady.rssMiB)} MiB at start, peak ${mib(leaderReady.hwmMiB)} → ${mib(leaderStatus.hwmMiB)} MiB\n` +
        `      learner RSS ${mib(learnerReady.rssMiB)} MiB at start, peak ${mib(learnerReady.hwmMiB)} → ${mib(learnerStatus.hwmMiB)} MiB`,
    );

    for (const [who, ready, status] of [['leader', leaderReady, leaderStatus], ['learner', learnerReady, learnerStatus]] as const) {
      const grew = Number(status.hwmMiB) - Number(ready.hwmMiB);
      assert.ok(
        grew <= BUDGET_MIB,
        `${who}: peak RSS grew by ${grew.toFixed(0)} MiB (from ${mib(ready.hwmMiB)} to ${mib(status.hwmMiB)}) for a ${SNAPSHOT_MIB} MiB snapshot; budget ${BUDGET_MIB} MiB`,
      );
    }
    assert.equal(restored.bytes, SNAPSHOT_MIB * 1024 * 1024);
    assert.equal(learnerStatus.restores, 1);
    assert.equal(learnerStatus.count, restored.count);
    // The leader's state when it took the snapshot (proposals applied): some, and no more than now.
    assert.ok(Number(restored.count) >= 1 && Number(restored.count) <= Number(leaderStatus.count), `restored count ${String(restored.count)}, leader ${String(leaderStatus.count)}`);
    assert.equal(sent.streamed, true, 'the snapshot went as a stream');
    await leader.request({ cmd: 'stop' }, 'stopped');
    await learner.request({ cmd: 'stop' }, 'stopped');
  });
});
