/**
 * Picks the WAL backend once per process: the native addon where it loads, else the
 * pure-TypeScript one (with ONE warning line on stderr saying why).
 * RAFTKV_WAL_BACKEND=js|native forces a backend; forcing native when it cannot load throws.
 */

import type { WalBackend } from './backend.js';
import { createJsBackend } from './js-backend.js';
import { loadNativeBackend } from './native-backend.js';

export interface WalBackendInfo {
  name: 'native' | 'js';
  reason: string;
}

let selected: WalBackend | null = null;

function errorText(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

function select(): WalBackend {
  const forced = process.env.RAFTKV_WAL_BACKEND ?? '';
  if (forced === 'js') return createJsBackend('forced by RAFTKV_WAL_BACKEND=js');
  if (forced === 'native') {
    try {
      return loadNativeBackend();
    } catch (error) {
      throw new Error(`RAFTKV_WAL_BACKEND=native but the native addon cannot be loaded: ${errorText(error)}`, {
        cause: error,
      });
    }
  }
  if (forced !== '') {
    throw new Error(`RAFTKV_WAL_BACKEND must be 'js' or 'native', got '${forced}'`);
  }
  try {
    return loadNativeBackend();
  } catch (error) {
    const why = errorText(error);
    process.stderr.write(
      `raftkv: native WAL addon unavailable (${why}); using the slower pure-TypeScript WAL backend\n`,
    );
    return createJsBackend(`native addon unavailable: ${why}`);
  }
}

/** The process-wide WAL backend (chosen on first use, then memoized). */
export function getWalBackend(): WalBackend {
  selected ??= select();
  return selected;
}

/** Which WAL backend is active, and why. */
export function walBackend(): WalBackendInfo {
  const backend = getWalBackend();
  return { name: backend.name, reason: backend.reason };
}
