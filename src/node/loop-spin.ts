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
 */

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
  /** Loop turns spent spinning (for tests and stats). */
  turns = 0;

  constructor(
    private readonly yieldCpu: (() => void) | null,
    private readonly clock: LoopSpinClock = realClock,
  ) {}

  /** Keep the loop turning for at least `windowUs` from now (0 or no yield: nothing). */
  poke(windowUs: number): void {
    if (windowUs <= 0 || this.yieldCpu === null) return;
    const until = this.clock.now() + windowUs / 1000;
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
      return;
    }
    this.turns++;
    if (!this.pokedSinceTurn) this.yieldCpu!();
    this.pokedSinceTurn = false;
    this.clock.schedule(this.turn);
  };
}
