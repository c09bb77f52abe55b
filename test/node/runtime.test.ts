/**
 * NodeRuntime over injected fakes: a manual clock (passes run only when the test says so), an
 * in-memory disk whose writes complete only when the test says so, and a recording transport.
 */
import assert from 'node:assert/strict';

import { InvariantError, SeededRandom } from '../../src/raft/index.js';
import type { Entry, HardState, Message } from '../../src/raft/types.js';
import { SILENT_LOGGER, type AppliedEntry } from '../../src/node/options.js';
import { NodeRuntime, type RuntimeHooks } from '../../src/node/runtime.js';
import type { RuntimeClock, RuntimeStorage, RuntimeTransport } from '../../src/node/runtime-io.js';

class Fakes {
  passes: (() => void)[] = [];
  writes: { hs: HardState | null; entries: Entry[]; sync: boolean; done: () => void }[] = [];
  sent: Message[] = [];
  applied: string[] = [];
  fatal: Error | null = null;

  storage: RuntimeStorage = {
    save: (hs, entries, sync) => new Promise((done) => this.writes.push({ hs, entries, sync, done })),
    saveSnapshot: () => Promise.resolve(),
    releaseTo: () => Promise.resolve(),
  };
  transport: RuntimeTransport = { send: (m) => void this.sent.push(...m), flushNow: () => {}, setMembers: () => {} };
  clock: RuntimeClock = {
    schedulePass: (pass) => void this.passes.push(pass),
    setTimer: () => ({ cancel: () => {} }),
  };
  hooks: RuntimeHooks<void> = {
    feedCore: () => {},
    hasQueuedInput: () => false,
    softStateChanged: () => {},
    entriesAppended: () => {},
    readStateReady: () => {},
    entryApplied: () => {},
    snapshotInstalled: () => {},
    appliedAdvanced: () => {},
    fatal: (error) => void (this.fatal ??= error),
  };

  runtime(clock: RuntimeClock = this.clock): NodeRuntime<void> {
    return new NodeRuntime<void>({
      id: 1,
      replay: { snapshot: null, hardState: { term: 0, vote: 0, commit: 0 }, entries: [] },
      peerUrls: new Map(),
      removedIds: new Set(),
      raft: { electionTick: 10, heartbeatTick: 1 },
      random: new SeededRandom(7),
      incarnation: 1,
      storage: this.storage,
      transport: this.transport,
      clock,
      stateMachine: {
        apply: (e: AppliedEntry) => void this.applied.push(new TextDecoder().decode(e.data)),
        snapshot: () => new Uint8Array(),
        restore: () => {},
      },
      hooks: this.hooks,
      logger: SILENT_LOGGER,
      snapshotCount: 1000,
      snapshotCatchUpEntries: 10,
      commitNotifyDelayMs: 0,
      onPassStart: null,
      tracer: null,
    });
  }
}

const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('NodeRuntime with injected storage, transport and clock', function () {
  it('applies an entry only after the injected storage reports it durable', async () => {
    const f = new Fakes();
    const rt = f.runtime();
    rt.rawNode.bootstrap([1]);
    rt.rawNode.campaign();
    rt.schedule();
    // Run passes and complete writes until the node leads and its log is applied.
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 50 && (f.passes.length > 0 || f.writes.length > 0); i++) {
        if (f.passes.length > 0) f.passes.shift()!();
        else f.writes.shift()!.done();
        await drain();
      }
    };
    await settle();
    assert.equal(rt.rawNode.status().role, 'leader');
    rt.rawNode.propose(new TextEncoder().encode('x'));
    rt.schedule();
    f.passes.shift()!();
    await drain();
    assert.equal(f.writes.length, 1, 'the entry was handed to storage');
    assert.deepEqual(f.applied, [], 'nothing applied before the write is durable');
    await settle();
    assert.deepEqual(f.applied, ['x']);
    assert.equal(f.fatal, null);
  });

  it('at most one Ready in flight: a clock that runs passes synchronously is an InvariantError', async () => {
    const f = new Fakes();
    // Breaks the RuntimeClock contract: runs the pass at once, so an input given inside a pass
    // (here: by storage, as a write is handed to it) re-enters the pass.
    let rt: NodeRuntime<void> | null = null;
    const syncClock: RuntimeClock = { schedulePass: (pass) => pass(), setTimer: () => ({ cancel: () => {} }) };
    f.storage.save = () => {
      rt!.schedule();
      return Promise.resolve();
    };
    rt = f.runtime(syncClock);
    rt.rawNode.bootstrap([1]);
    rt.rawNode.campaign();
    rt.schedule();
    await drain();
    assert.ok(f.fatal instanceof InvariantError, `expected an InvariantError, got ${String(f.fatal)}`);
    assert.match(f.fatal.message, /another Ready is in flight/);
  });
});
