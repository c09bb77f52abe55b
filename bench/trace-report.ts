/**
 * Joins RAFTKV_TRACE files (see src/transport/trace.ts) by log index and prints where the time
 * of a write goes, as percentiles of each step:
 *
 *   RAFTKV_TRACE=/tmp/t npm run bench:cluster -- --quick --clients 1
 *   npx tsx bench/trace-report.ts /tmp/t
 *
 * The leader is the process with `prop` events; followers are those that received appends.
 */

import fs from 'node:fs';
import path from 'node:path';

interface Ev {
  t: number;
  lo: number;
  hi: number;
  peer: number;
}

type Proc = Map<string, Ev[]>;

function load(file: string): Proc {
  const byEvent: Proc = new Map();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    const [t, ev, lo, hi, peer] = line.split(' ');
    const list = byEvent.get(ev!) ?? [];
    list.push({ t: Number(t), lo: Number(lo), hi: Number(hi), peer: Number(peer) });
    byEvent.set(ev!, list);
  }
  for (const list of byEvent.values()) list.sort((a, b) => a.t - b.t);
  return byEvent;
}

/** Time of the first `event` covering index i (for acks: the first reaching i). */
function at(p: Proc, event: string, i: number, peer?: number, reaching = false): number | undefined {
  for (const e of p.get(event) ?? []) {
    if (peer !== undefined && e.peer !== peer) continue;
    if (reaching ? e.hi >= i : e.lo <= i && i <= e.hi) return e.t;
  }
  return undefined;
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write('usage: tsx bench/trace-report.ts TRACE_DIR [SKIP_FIRST_WRITES]\n');
  process.exit(2);
}
const procs = fs.readdirSync(dir).filter((f) => f.startsWith('trace-')).map((f) => load(path.join(dir, f)));
const leader = procs.find((p) => (p.get('prop')?.length ?? 0) > 0);
if (leader === undefined) throw new Error('no process proposed anything');
const followers = procs.filter((p) => p !== leader && (p.get('rcvApp')?.length ?? 0) > 0);
const idOf = (p: Proc): number => p.get('node')?.[0]?.lo ?? 0;
const leaderId = idOf(leader);

/** Time of the first `event` strictly after t (or the last one before t, with before). */
function near(p: Proc, event: string, t: number | undefined, before = false): number | undefined {
  if (t === undefined) return undefined;
  const list = p.get(event) ?? [];
  if (before) {
    let found: number | undefined;
    for (const e of list) {
      if (e.t > t) break;
      found = e.t;
    }
    return found;
  }
  for (const e of list) if (e.t >= t) return e.t;
  return undefined;
}
let blocked = 0;

const steps = new Map<string, number[]>();
const add = (name: string, a: number | undefined, b: number | undefined): void => {
  if (a === undefined || b === undefined) return;
  const list = steps.get(name) ?? [];
  list.push(b - a);
  steps.set(name, list);
};

const props = leader.get('prop')!;
// bench:cluster preloads 1000 keys with 32 clients first: skip those (argv[3], default 1050).
const skip = Math.min(Number(process.argv[3] ?? 1050), props.length - 20);
for (const pr of props.slice(skip, props.length - 5)) {
  const i = pr.lo;
  const rdy = at(leader, 'rdy', i);
  const wal = at(leader, 'wal', i);
  const adv = at(leader, 'adv', i);
  const crdy = at(leader, 'crdy', i);
  const apl = at(leader, 'apl', i);
  add('L HTTP request → propose', near(leader, 'hreq', pr.t, true), pr.t);
  const run = near(leader, 'run', pr.t);
  const blk = near(leader, 'blk', pr.t);
  if (blk !== undefined && (run === undefined || blk < run)) blocked++;
  add('L propose → first pass run (Ready)', pr.t, Math.min(run ?? Infinity, blk ?? Infinity));
  add('L propose → Ready taken', pr.t, rdy);
  add('L Ready → transport flush ran', rdy, near(leader, 'flush', rdy));
  add('L Ready → WAL synced', rdy, wal);
  add('L WAL synced → advanced', wal, adv);
  let firstAck: number | undefined;
  for (const peer of followers.map(idOf)) {
    const out = at(leader, 'outApp', i, peer);
    add(`L Ready → App dispatched (to ${peer})`, rdy, out);
    const ack = at(leader, 'rcvAck', i, peer, true);
    add(`L App dispatched → ack received (from ${peer})`, out, ack);
    if (ack !== undefined && (firstAck === undefined || ack < firstAck)) firstAck = ack;
  }
  for (const [k, f] of followers.entries()) {
    const name = `F${idOf(f)}`;
    void k;
    const rcv = at(f, 'rcvApp', i);
    const frdy = at(f, 'rdy', i);
    const fwal = at(f, 'wal', i);
    const fout = at(f, 'outAck', i, leaderId, true);
    const out = at(leader, 'outApp', i, idOf(f));
    add(`${name} App dispatched → received`, out, rcv);
    add(`${name} App dispatched → HTTP request parsed`, out, near(f, 'srv', out));
    add(`${name} received → Ready taken`, rcv, frdy);
    add(`${name} Ready → WAL synced`, frdy, fwal);
    add(`${name} WAL synced → ack dispatched`, fwal, fout);
    add(`${name} WAL synced → transport flush ran`, fwal, near(f, 'flush', fwal));
    add(`${name} ack dispatched → leader received`, fout, at(leader, 'rcvAck', i, idOf(f), true));
  }
  const quorum = wal !== undefined && firstAck !== undefined ? Math.max(adv ?? wal, firstAck) : undefined;
  add('L quorum (own advance & first ack) → commit Ready', quorum, crdy);
  add('L commit Ready → applied', crdy, apl);
  // The response is written (from a microtask) before the apply pass records 'apl'.
  add('L commit Ready → HTTP response written', crdy, at(leader, 'hres', i));
  add('L propose → applied (total)', pr.t, apl);
}

const rows = [...steps.entries()];
const width = Math.max(...rows.map(([k]) => k.length));
process.stdout.write(`${props.length - skip - 5} writes (${blocked} found a Ready pass in flight); ms: p10 / p50 / p90 / p99\n`);
for (const [name, xs] of rows) {
  const f = (q: number): string => pct(xs, q).toFixed(2).padStart(7);
  process.stdout.write(`${name.padEnd(width)}  ${f(0.1)} ${f(0.5)} ${f(0.9)} ${f(0.99)}  (n=${xs.length})\n`);
}
