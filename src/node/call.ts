/** A pending API call: a promise settled at most once, with its own timeout. */

import { REAL_CLOCK, type RuntimeClock, type RuntimeTimer } from './runtime-io.js';

export class PendingCall<T> {
  readonly promise: Promise<T>;
  private settledFlag = false;
  private timer: RuntimeTimer | null = null;
  private resolveFn!: (value: T) => void;
  private rejectFn!: (error: Error) => void;

  /** `onTimeout` builds the rejection and may clean up bookkeeping; it runs only if the call
   * is still pending when the timer fires. */
  constructor(
    timeoutMs: number,
    onTimeout: () => Error,
    /** Runs once, synchronously, when the call settles (any way). */
    private readonly onSettle: (() => void) | null = null,
    /** Where the timeout runs (a virtual clock in the simulator). */
    clock: RuntimeClock = REAL_CLOCK,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timer = clock.setTimer(() => {
      this.timer = null;
      if (!this.settledFlag) this.reject(onTimeout());
    }, timeoutMs);
  }

  get settled(): boolean {
    return this.settledFlag;
  }

  resolve(value: T): void {
    if (this.settledFlag) return;
    this.settledFlag = true;
    this.clearTimer();
    this.onSettle?.();
    this.resolveFn(value);
  }

  reject(error: Error): void {
    if (this.settledFlag) return;
    this.settledFlag = true;
    this.clearTimer();
    this.onSettle?.();
    this.rejectFn(error);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      this.timer.cancel();
      this.timer = null;
    }
  }
}
