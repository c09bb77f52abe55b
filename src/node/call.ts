/** A pending API call: a promise settled at most once, with its own timeout. */

export class PendingCall<T> {
  readonly promise: Promise<T>;
  private settledFlag = false;
  private timer: NodeJS.Timeout | null = null;
  private resolveFn!: (value: T) => void;
  private rejectFn!: (error: Error) => void;

  /** `onTimeout` builds the rejection and may clean up bookkeeping; it runs only if the call
   * is still pending when the timer fires. */
  constructor(
    timeoutMs: number,
    onTimeout: () => Error,
    /** Runs once, synchronously, when the call settles (any way). */
    private readonly onSettle: (() => void) | null = null,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.timer = setTimeout(() => {
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
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
