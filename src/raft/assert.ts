import { InvariantError } from './errors.js';

/**
 * Asserts an invariant. Never compiled out: a violated invariant means the state can no longer
 * be trusted, so we fail loudly instead of continuing with a corrupt log.
 * On hot paths prefer `if (!cond) fail(...)` so the message string is only built on failure.
 */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}

export function fail(message: string): never {
  throw new InvariantError(message);
}

/** A term or index: a safe, non-negative integer. */
export function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

export function assertIndex(n: number, what: string): void {
  if (!(Number.isSafeInteger(n) && n >= 0)) {
    throw new InvariantError(`${what} must be a non-negative safe integer, got ${String(n)}`);
  }
}
