/**
 * The whole-node simulator's virtual time: one event queue for everything that happens later —
 * Ready passes, ticks, request timeouts (through ProcClock, a RuntimeClock), disk I/O
 * completions, network deliveries, client operations and faults. Events run in (time, order of
 * scheduling) order; after each one the microtask queue is drained, so every promise
 * continuation the real code chains onto an event completes before the next event, and a seed
 * decides everything.
 */
import type { RuntimeClock, RuntimeTimer } from '../../src/node/runtime-io.js';

interface SimEvent {
  at: number;
  order: number;
  run: () => void;
  /** Whose event it is: a dead process's events are skipped. */
  owner: ProcClock | null;
  cancelled: boolean;
}

/** A binary min-heap on (at, order). */
class EventHeap {
  private readonly items: SimEvent[] = [];

  get size(): number {
    return this.items.length;
  }

  push(e: SimEvent): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  peek(): SimEvent | undefined {
    return this.items[0];
  }

  pop(): SimEvent | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(x: SimEvent, y: SimEvent): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order);
}

/** Lets every pending promise continuation run (nothing in a run does real I/O, so one
 * macrotask turn empties the microtask queue). */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export class EventLoop {
  now = 0;
  private order = 0;
  private readonly heap = new EventHeap();
  /** Events run so far. */
  eventsRun = 0;

  at(time: number, run: () => void, owner: ProcClock | null = null): RuntimeTimer {
    if (!(time >= this.now)) throw new Error(`event scheduled in the past: ${time} < ${this.now}`);
    const e: SimEvent = { at: time, order: this.order++, run, owner, cancelled: false };
    this.heap.push(e);
    return { cancel: () => void (e.cancelled = true) };
  }

  after(ms: number, run: () => void, owner: ProcClock | null = null): RuntimeTimer {
    return this.at(this.now + Math.max(0, ms), run, owner);
  }

  get pending(): number {
    return this.heap.size;
  }

  /** Runs the next event (false when none is due by `until`). */
  async step(until: number): Promise<boolean> {
    for (;;) {
      const e = this.heap.peek();
      if (e === undefined || e.at > until) return false;
      this.heap.pop();
      if (e.cancelled || (e.owner !== null && !e.owner.alive)) continue;
      this.now = e.at;
      this.eventsRun++;
      e.run();
      await drainMicrotasks();
      return true;
    }
  }

  /** Runs events until virtual time `until` (then sets now to it). `stop` is checked after
   * every event. */
  async runUntil(until: number, stop: () => boolean = () => false): Promise<void> {
    while (await this.step(until)) {
      if (stop()) return;
    }
    this.now = Math.max(this.now, until);
  }
}

/**
 * One simulated process's clock: a RuntimeClock over the event loop. When the process dies
 * (crash, kill), its pending passes and timers never fire.
 */
export class ProcClock implements RuntimeClock {
  alive = true;

  constructor(
    private readonly loop: EventLoop,
    /** Extra delay of a scheduled pass (the event loop's turn), in ms. */
    private readonly passDelay: () => number,
  ) {}

  schedulePass(pass: () => void): void {
    this.loop.after(this.passDelay(), pass, this);
  }

  setTimer(fire: () => void, ms: number): RuntimeTimer {
    return this.loop.after(ms, fire, this);
  }

  /** Anything the process's I/O or network completions run: skipped once it is dead. */
  later(ms: number, run: () => void): void {
    this.loop.after(ms, run, this);
  }

  kill(): void {
    this.alive = false;
  }
}
