/**
 * Crash harness for the REAL WAL (src/wal/wal.ts, js backend) on a SimDisk: one seed = a few
 * incarnations of a process that creates/opens the WAL and runs a random workload (appends,
 * raft-style rewrites, hard states, synced and unsynced saves, concurrent saves, snapshot
 * markers + releases, small segments so it cuts often) until the disk loses power at a random
 * I/O step (or the process is killed, or closes cleanly). After each restart it checks:
 *
 *   - every acknowledged save (sync: true and resolved — and everything issued before it) is
 *     in the replayed log;
 *   - the replay is exactly the log as it stood after some prefix of the records issued (a
 *     torn last batch may lose its tail, but nothing is reordered, invented, or a hard state
 *     reported ahead of the entries it was written after): in particular nothing beyond the
 *     durable log is reported committed.
 *
 * Deterministic: everything comes from SimRandom(seed); the I/O completes through the disk's
 * scheduler (microtasks, or a random pending op first, pumped by setImmediate).
 */
import path from 'node:path';
import { EntryType, type Entry, type HardState } from '../../src/raft/types.js';
import { WalCorruptionError } from '../../src/wal/errors.js';
import { Wal, type OpenedWal, type SnapshotMarker } from '../../src/wal/wal.js';
import type { WalLogger } from '../../src/wal/logger.js';
import { ManualIoScheduler, SimDisk, type NamespaceCrashModel, type SimIoScheduler } from './disk.js';
import { SimRandom } from './prng.js';

export const WAL_DIR = '/data/node/wal';
const METADATA = { nodeId: 1, clusterId: 42 };

export interface WalCrashParams {
  segmentBytes: number;
  preallocate: 'zero' | 'none';
  namespaceCrash: NamespaceCrashModel;
  scheduling: 'microtask' | 'random-order';
  incarnations: number;
  /** Workload operations per incarnation (before the crash cuts it short). */
  opsPerIncarnation: number;
  maxInflight: number;
}

export type Ending = 'power-loss' | 'kill' | 'clean-close';

/**
 * WAL bugs this harness found, all fixed (regression seeds in wal-crash.test.ts, each failing
 * with its fix reverted):
 *  - hardStateAhead (fcca012): a cut copied the hard state of a save whose entries were not
 *    written yet into the new segment.
 *  - tornTailFollowedByValid (9bcfa81, WAL format 2): a torn last batch (a lost sector, later
 *    sectors intact) was taken for mid-log corruption.
 *  - staleTailAfterSnapshot: replay from snapshot S skipped a rewrite at an index ≤ S written
 *    after older entries above S, instead of truncating them (terms going down).
 *  - segmentNamedForLostBatch: a cut named the new segment after a rewrite before the rewrite
 *    was written; when it was lost, a later release deleted entries still needed.
 *  - releaseGap ('independent' namespace model): releaseTo fsynced the directory once after all
 *    unlinks; a newer unlink could survive an older one (a sequence gap open refuses).
 *  - walDirEntryNotDurable: a create killed between its rename and the parent fsync, adopted
 *    by Wal.open (which did not fsync the parent): a power loss took the WAL.
 */

export interface WalCrashResult {
  seed: number;
  params: WalCrashParams;
  ok: boolean;
  /** What went wrong (null when ok). */
  failure: string | null;
  failureKind: 'violation' | 'open-error' | 'workload-error' | null;
  crashes: number;
  steps: number;
  /** One line per incarnation: how it ended, steps, records acked/issued. */
  log: string[];
}

class QuietLogger implements WalLogger {
  readonly lines: string[] = [];
  warn(message: string): void {
    this.lines.push(`warn ${message}`);
  }
  info(message: string): void {
    this.lines.push(`info ${message}`);
  }
}

type ModelRecord = { kind: 'entry'; entry: Entry } | { kind: 'hs'; hs: HardState } | { kind: 'snap'; marker: SnapshotMarker };

interface LogState {
  /** Entries after `snapshotIndex`, in index order. */
  entries: Entry[];
  hardState: HardState;
}

/** The durable state a restart must find: `base` followed by some prefix of `records` of
 * length ≥ `acked`. */
interface Model {
  base: LogState;
  baseSnapshot: SnapshotMarker;
  records: ModelRecord[];
  acked: number;
  /** Newest snapshot marker whose save resolved (restarts open from it). */
  ackedSnapshot: SnapshotMarker;
  /** Closed cleanly and no power loss since: the page cache still holds every record, so the
   * next open must replay all of them. */
  requireAll: boolean;
}

function applyRecord(state: LogState, record: ModelRecord, snapshotIndex: number): void {
  if (record.kind === 'hs') state.hardState = record.hs;
  else if (record.kind === 'entry') {
    const e = record.entry;
    // A rewrite truncates the suffix; at or below the snapshot it truncates all we keep.
    state.entries.length = Math.max(0, e.index - snapshotIndex - 1);
    if (e.index > snapshotIndex) state.entries.push(e);
  }
}

function sameEntry(a: Entry, b: Entry): boolean {
  if (a.index !== b.index || a.term !== b.term || a.type !== b.type || a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function describeState(entries: readonly Entry[], hs: HardState): string {
  const first = entries[0];
  const last = entries[entries.length - 1];
  const span = first === undefined ? 'no entries' : `entries ${first.index}..${last!.index} (last term ${last!.term})`;
  return `${span}, hard state ${JSON.stringify(hs)}`;
}

/** null when `opened` is a state the model allows, else why not. */
export function checkReplay(
  model: Model,
  opened: Pick<OpenedWal, 'entries' | 'hardState'>,
  openedFrom: SnapshotMarker,
): { violation: string } | null {
  const state: LogState = { entries: [...model.base.entries], hardState: model.base.hardState };
  const entriesMatch = (): boolean => {
    const expected = state.entries.filter((e) => e.index > openedFrom.index);
    return expected.length === opened.entries.length && expected.every((e, i) => sameEntry(e, opened.entries[i]!));
  };
  const required = model.requireAll ? model.records.length : model.acked;
  let hardStateAhead = false;
  for (let l = 0; l <= model.records.length; l++) {
    if (l > 0) applyRecord(state, model.records[l - 1]!, model.baseSnapshot.index);
    if (l < required || !entriesMatch()) continue;
    if (sameHardState(state.hardState, opened.hardState)) return null;
    if (model.records.slice(l).some((r) => r.kind === 'hs' && sameHardState(r.hs, opened.hardState))) hardStateAhead = true;
  }
  const lastIndex = opened.entries.length > 0 ? opened.entries[opened.entries.length - 1]!.index : openedFrom.index;
  const ahead = opened.hardState.commit > lastIndex ? ` — the hard state's commit ${opened.hardState.commit} is beyond the last entry ${lastIndex}` : '';
  // The acked state, for the message.
  const acked: LogState = { entries: [...model.base.entries], hardState: model.base.hardState };
  for (let l = 0; l < model.acked; l++) applyRecord(acked, model.records[l]!, model.baseSnapshot.index);
  const violation =
    `replay is no prefix of the issued records at or after the acknowledged one${ahead}: ` +
    `got ${describeState(opened.entries, opened.hardState)}; acknowledged ${describeState(acked.entries.filter((e) => e.index > openedFrom.index), acked.hardState)} ` +
    `(${model.acked} of ${model.records.length} records since the last open acknowledged${model.requireAll ? '; closed cleanly, so all required' : ''})` +
    (hardStateAhead ? '; the entries match, the hard state is one issued after them' : '');
  return { violation };
}

export function paramsFor(seed: number): WalCrashParams {
  const r = new SimRandom(seed * 2654435761 % 2 ** 31);
  return {
    segmentBytes: r.pick([4096, 6144, 8192, 16384]),
    preallocate: r.pick(['zero', 'none'] as const),
    namespaceCrash: r.pick(['independent', 'prefix'] as const),
    scheduling: r.pick(['microtask', 'random-order'] as const),
    incarnations: r.range(2, 4),
    opsPerIncarnation: r.range(20, 120),
    maxInflight: r.pick([1, 1, 2, 4]),
  };
}

class Crashed extends Error {}

export interface RunOptions {
  /** Override the per-seed parameters. */
  params?: Partial<WalCrashParams>;
  /** Told every I/O step, each incarnation's plan, and the model when a replay is refused. */
  trace?: (line: string) => void;
}

export async function runWalCrashSeed(seed: number, options: RunOptions = {}): Promise<WalCrashResult> {
  const params = { ...paramsFor(seed), ...options.params };
  const random = new SimRandom(seed);
  const manual = params.scheduling === 'random-order' ? new ManualIoScheduler() : null;
  const scheduler: SimIoScheduler | undefined = manual ?? undefined;
  let crashAt = Number.POSITIVE_INFINITY;
  let ending: Ending = 'power-loss';
  let signalCrash: (() => void) | null = null;
  let isCrashed = false;
  const disk: SimDisk = new SimDisk({
    random: new SimRandom(seed + 0x5eed),
    namespaceCrash: params.namespaceCrash,
    ...(scheduler !== undefined ? { scheduler } : {}),
    onOp: (op) => {
      options.trace?.(`${op.step} ${op.mount} ${op.kind} ${op.path}${op.target !== undefined ? ` -> ${op.target}` : ''}${op.synchronous ? ' (sync)' : ''}`);
      if (op.step !== crashAt) return;
      if (ending === 'kill') disk.killProcesses();
      else {
        disk.crash();
        if (model !== null) model.requireAll = false;
      }
      manual?.clear();
      isCrashed = true;
      signalCrash?.();
    },
  });
  const log: string[] = [];
  const result = (failure: string | null, failureKind: WalCrashResult['failureKind']): WalCrashResult => ({
    seed,
    params,
    ok: failure === null,
    failure,
    failureKind,
    crashes: disk.crashes,
    steps: disk.steps,
    log,
  });

  // The directories above the WAL exist durably (the node's data dir is made before).
  {
    const setup = disk.mount('setup');
    setup.mkdirSync(path.dirname(WAL_DIR), { recursive: true });
    disk.flushAll();
    disk.killProcesses();
  }

  let model: Model | null = null; // null until the WAL exists
  let term = 1;
  /** A create or open has returned: the WAL must exist from now on. Until then a crash may
   * take the directory a killed create left (the create was never acknowledged). */
  let walAcknowledged = false;

  for (let incarnation = 0; incarnation < params.incarnations; incarnation++) {
    const fs = disk.mount(`run${incarnation}`);
    const logger = new QuietLogger();
    const crashed = new Promise<void>((resolve) => (signalCrash = resolve));
    isCrashed = false;
    // Pump the random-order scheduler: settle one random pending op per macrotask turn.
    let pumping = manual !== null;
    const pump = (async () => {
      while (pumping) {
        if (manual!.size > 0) manual!.settle(random.intn(manual!.size));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    })();
    const race = async <T>(p: Promise<T>): Promise<T> => {
      const r = await Promise.race([p.then((value) => ({ value })), crashed.then(() => null)]);
      if (r === null) throw new Crashed();
      return r.value;
    };
    const endingRoll = random.next();
    ending = incarnation === params.incarnations - 1 || endingRoll < 0.7 ? 'power-loss' : endingRoll < 0.85 ? 'kill' : 'clean-close';
    crashAt = ending === 'clean-close' ? Number.POSITIVE_INFINITY : disk.steps + random.range(1, params.opsPerIncarnation * 6);
    options.trace?.(`incarnation ${incarnation}: ends by ${ending}${ending === 'clean-close' ? '' : ` at step ${crashAt}`}`);
    let wal: Wal | null = null;
    let line = `#${incarnation} ${ending}`;
    try {
      // --- start: create (first time) or open, then check the replay against the model.
      if (!walAcknowledged) {
        // A create that crashed after the rename but before it returned: a valid empty log.
        model = Wal.exists(WAL_DIR, fs) ? emptyModel() : null;
      }
      if (model === null) {
        wal = await race(Wal.create(WAL_DIR, { fs, metadata: METADATA, segmentBytes: params.segmentBytes, preallocate: params.preallocate, logger }));
        walAcknowledged = true;
        model = emptyModel();
      } else {
        let opened: OpenedWal;
        try {
          opened = await race(Wal.open(WAL_DIR, { fs, snapshot: model.ackedSnapshot, segmentBytes: params.segmentBytes, preallocate: params.preallocate, logger }));
        } catch (err) {
          // Anything that fails once the process is dead is the crash (e.g. a synchronous call
          // of the dead mount throwing SimProcessDeadError).
          if (err instanceof Crashed || isCrashed) throw new Crashed();
          return result(`incarnation ${incarnation}: open failed: ${(err as Error).message}${logTail(logger)}`, 'open-error');
        }
        walAcknowledged = true;
        wal = opened.wal;
        const bad = checkReplay(model, opened, model.ackedSnapshot);
        if (bad !== null) {
          options.trace?.(describeModel(model, opened));
          return result(`incarnation ${incarnation}: ${bad.violation}${logTail(logger)}`, 'violation');
        }
        // What was replayed is durable now (open syncs it): the new base.
        model = {
          base: { entries: [...opened.entries], hardState: opened.hardState },
          baseSnapshot: model.ackedSnapshot,
          records: [],
          acked: 0,
          ackedSnapshot: model.ackedSnapshot,
          requireAll: false,
        };
        term = Math.max(term, opened.hardState.term, ...opened.entries.map((e) => e.term));
      }
      const m: Model = model;

      // --- workload
      let lastIndex = m.base.entries.length > 0 ? m.base.entries[m.base.entries.length - 1]!.index : m.baseSnapshot.index;
      let commit = Math.max(m.base.hardState.commit, m.baseSnapshot.index);
      const inflight: Promise<void>[] = [];
      const issue = (records: ModelRecord[], sync: boolean, run: () => Promise<void>): void => {
        m.records.push(...records);
        const countAtIssue = m.records.length;
        const p = run().then(() => {
          if (sync) m.acked = Math.max(m.acked, countAtIssue);
        });
        p.catch(() => undefined); // observed by drain(), unless the process crashes first
        inflight.push(p);
      };
      const drain = async (): Promise<void> => {
        const all = inflight.splice(0);
        await race(Promise.all(all));
      };
      const w: Wal = wal;
      for (let op = 0; op < params.opsPerIncarnation; op++) {
        const roll = random.next();
        if (roll < 0.75) {
          // Append (sometimes a rewrite from a new term), maybe with a hard state.
          const entries: Entry[] = [];
          let from = lastIndex + 1;
          if (random.chance(0.1) && lastIndex > commit) {
            term++;
            from = random.range(commit + 1, lastIndex);
          }
          const count = random.range(0, 6);
          for (let i = 0; i < count; i++) entries.push(makeEntry(from + i, term, random));
          const newLast = count > 0 ? from + count - 1 : lastIndex;
          let hs: HardState | null = null;
          if (count === 0 || random.chance(0.5)) {
            commit = random.range(commit, newLast);
            hs = { term, vote: random.range(0, 3), commit };
          }
          if (entries.length === 0 && hs === null) continue;
          lastIndex = newLast;
          const sync = random.chance(0.7);
          const records: ModelRecord[] = [...entries.map((entry) => ({ kind: 'entry' as const, entry })), ...(hs !== null ? [{ kind: 'hs' as const, hs }] : [])];
          options.trace?.(`save ${entries.length > 0 ? `${from}..${newLast}/${term}` : 'no entries'}${hs !== null ? ` hs(${hs.term},${hs.vote},${hs.commit})` : ''}${sync ? ' sync' : ''}`);
          issue(records, sync, () => w.save(hs, entries, { sync }));
        } else if (roll < 0.85 && commit > m.ackedSnapshot.index) {
          // Snapshot at the commit: marker, then (once it is durable) release.
          await drain();
          const index = random.range(m.ackedSnapshot.index + 1, commit);
          const marker = { index, term: termAt(m, index) };
          options.trace?.(`saveSnapshot ${index}/${marker.term}`);
          issue([{ kind: 'snap', marker }], true, () => w.saveSnapshot(marker));
          await drain();
          m.ackedSnapshot = marker;
          if (random.chance(0.8)) {
            options.trace?.(`releaseTo ${index}`);
            await race(w.releaseTo(index));
          }
        } else {
          await drain();
        }
        if (inflight.length >= params.maxInflight) await drain();
      }
      await drain();
      if (ending === 'clean-close') {
        await race(w.close());
        m.requireAll = true;
      } else {
        // The workload ended before the crash step: lose power now.
        if (ending === 'kill') disk.killProcesses();
        else {
          disk.crash();
          m.requireAll = false;
        }
        manual?.clear();
      }
      line += ` after the workload, step ${disk.steps}`;
    } catch (err) {
      if (!(err instanceof Crashed) && !isCrashed) {
        pumping = false;
        await pump;
        return result(`incarnation ${incarnation}: ${err instanceof WalCorruptionError ? 'corruption: ' : ''}${(err as Error).stack ?? String(err)}`, 'workload-error');
      }
      line += ` at step ${crashAt}`;
    } finally {
      pumping = false;
      await pump;
    }
    log.push(`${line}, ${model === null ? 'no WAL yet' : `${model.acked}/${model.records.length} records acked`}`);
  }
  return result(null, null);
}

function emptyModel(): Model {
  return {
    base: { entries: [], hardState: { term: 0, vote: 0, commit: 0 } },
    baseSnapshot: { index: 0, term: 0 },
    records: [],
    acked: 0,
    ackedSnapshot: { index: 0, term: 0 },
    requireAll: false,
  };
}

/** The term of the entry at `index` in the model's latest issued log. */
function termAt(model: Model, index: number): number {
  const state: LogState = { entries: [...model.base.entries], hardState: model.base.hardState };
  for (const r of model.records) applyRecord(state, r, model.baseSnapshot.index);
  const e = state.entries.find((x) => x.index === index);
  if (e === undefined) throw new Error(`harness: no entry at index ${index} to snapshot`);
  return e.term;
}

function makeEntry(index: number, term: number, random: SimRandom): Entry {
  const length = random.pick([0, 8, 40, 200, 700]);
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = random.intn(256);
  return { index, term, type: EntryType.Normal, data };
}

/** The model and a replay, compactly (index/term per entry), for --trace. */
function describeModel(model: Model, opened: Pick<OpenedWal, 'entries' | 'hardState'>): string {
  const hs = (h: HardState): string => `hs(${h.term},${h.vote},${h.commit})`;
  const records = model.records.map((r) => (r.kind === 'entry' ? `${r.entry.index}/${r.entry.term}` : r.kind === 'hs' ? hs(r.hs) : `snap(${r.marker.index}/${r.marker.term})`));
  return (
    `model: base snapshot ${model.baseSnapshot.index}/${model.baseSnapshot.term}, base ${model.base.entries.map((e) => `${e.index}/${e.term}`).join(' ')} ${hs(model.base.hardState)}; ` +
    `records ${records.join(' ')}; acked ${model.acked}; opened from snapshot ${model.ackedSnapshot.index}/${model.ackedSnapshot.term}\n` +
    `replay: ${opened.entries.map((e) => `${e.index}/${e.term}`).join(' ')} ${hs(opened.hardState)}`
  );
}

function logTail(logger: QuietLogger): string {
  return logger.lines.length === 0 ? '' : `\n    wal log: ${logger.lines.slice(-5).join('\n    wal log: ')}`;
}

export function formatWalCrashFailure(r: WalCrashResult): string {
  return (
    `WAL crash seed ${r.seed} failed (${r.failureKind}): ${r.failure}\n` +
    `  params ${JSON.stringify(r.params)}\n` +
    `  ${r.log.join('\n  ')}\n` +
    `  reproduce: npx tsx test/sim/wal-crash-cli.ts --seed ${r.seed}`
  );
}
