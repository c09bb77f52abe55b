/**
 * Idle spinning of the event loop. After a Ready pass the runtime keeps the loop turning for a
 * short window (setImmediate, so each turn polls for I/O with a zero timeout) instead of
 * letting the thread sleep in epoll. The answer to what it just sent — a follower's ack, the
 * next heartbeat of a read round — usually arrives within that window, and it is then picked up
 * without a wake-up. A wake-up is what costs: a thread that sleeps lets its CPU go idle, and on
 * virtual machines an idle vCPU halts, so waking it goes through the hypervisor (measured on the
 * 2-core benchmark VM: serial linearizable GETs 1,074–1,945/s without spinning, 1,565–2,502/s
 * with a 1 ms window; docs/benchmarks.md). Go runtimes such as etcd's spin the same way.
 *
 * An idle turn calls sched_yield, so a runnable thread on the same CPU (another node, the WAL
 * writer, a client) gets it first: under load the spinner costs little. A turn after a pass
 * (the loop had work since the last turn) does not give the CPU away. Without the native
 * addon there is no sched_yield and no spinning. One spinner per process (one event loop);
 * the window is the largest any caller asked for.
 *
 * Spinning pays only when the next input comes within the window; when inputs are further
 * apart (a follower of an idle cluster hears a heartbeat every 100 ms) every window is pure
 * cost. So the spinner parks after PARK_AFTER_MISSES windows in a row ran out with no new pass,
 * and unparks as soon as a pass comes within one window of the previous one (measured whether
 * parked or not, so it notices when load returns). Idle nodes: 3.3 → 2.3–2.6 % of a core each.
 */

/** Windows in a row that end with no new pass before the spinner parks. */
export const PARK_AFTER_MISSES = 3;

export interface LoopSpinClock {
  now(): number; // milliseconds
  schedule(fn: () => void): void;
}

const realClock: LoopSpinClock = { now: () => performance.now(), schedule: (fn) => setImmediate(fn) };

export class LoopSpinner {
  private until = 0;
  private spinning = false;
  /** Pokes since the last turn: the loop had work, so that turn does not give the CPU away. */
  private pokedSinceTurn = false;
  /** Windows in a row that ran out with no poke inside them. */
  private misses = 0;
  private lastPokeAt = Number.NEGATIVE_INFINITY;
  /** Loop turns spent spinning (for tests and stats). */
  turns = 0;
  /** Pokes that started no spin because the spinner was parked (for tests and stats). */
  parkedPokes = 0;

  constructor(
    private readonly yieldCpu: (() => void) | null,
    private readonly clock: LoopSpinClock = realClock,
  ) {}

  /** Keep the loop turning for at least `windowUs` from now (0 or no yield: nothing). */
  poke(windowUs: number): void {
    if (windowUs <= 0 || this.yieldCpu === null) return;
    const now = this.clock.now();
    const windowMs = windowUs / 1000;
    // Work inside a running window, or (parked) within one window of the last pass: spinning
    // would catch, or did catch, this input without a wake-up.
    if (this.spinning || now - this.lastPokeAt <= windowMs) this.misses = 0;
    this.lastPokeAt = now;
    if (this.misses >= PARK_AFTER_MISSES) {
      this.parkedPokes++;
      return;
    }
    const until = now + windowMs;
    if (until > this.until) this.until = until;
    this.pokedSinceTurn = true;
    if (!this.spinning) {
      this.spinning = true;
      this.clock.schedule(this.turn);
    }
  }

  get active(): boolean {
    return this.spinning;
  }

  private readonly turn = (): void => {
    if (this.clock.now() >= this.until) {
      this.spinning = false;
      this.misses++; // no pass came within the window since it was last extended
      return;
    }
    this.turns++;
    if (!this.pokedSinceTurn) this.yieldCpu!();
    this.pokedSinceTurn = false;
    this.clock.schedule(this.turn);
  };
}
