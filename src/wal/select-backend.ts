/**
 * Picks the WAL backend once per process: the native addon where it loads, else the
 * pure-TypeScript one (with ONE warning line on stderr saying why).
 * RAFTKV_WAL_BACKEND=js|native forces a backend; forcing native when it cannot load throws.
 *
 * Over any FileSystem other than node:fs (a simulated disk) the backend is the js one over
 * that FileSystem: the native addon does its I/O in C++ on real files and cannot go through
 * the seam (`backendFor`).
 */

import type { WalBackend } from './backend.js';
import { nodeFileSystem, type FileSystem } from './file-system.js';
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

const jsBackends = new WeakMap<FileSystem, WalBackend>();

/**
 * The backend for a WAL/snapshotter given its options: `backend` if set (it must do its I/O
 * through `fs` when both are given), else for node:fs the process-wide backend, else the js
 * backend over `fs`.
 */
export function backendFor(options: { backend?: WalBackend | undefined; fs?: FileSystem | undefined }): WalBackend {
  const { backend, fs } = options;
  if (backend !== undefined) {
    if (fs !== undefined && backend.fileSystem !== fs) {
      throw new Error(
        `the ${backend.name} WAL backend does its I/O through ${backend.fileSystem.name}, not the given filesystem ${fs.name}; ` +
          `pass only fs (the js backend is used over it) or a js backend created over it`,
      );
    }
    return backend;
  }
  if (fs === undefined || fs === nodeFileSystem) return getWalBackend();
  let js = jsBackends.get(fs);
  if (js === undefined) {
    js = createJsBackend(`filesystem ${fs.name} (the native backend works on real files only)`, { fileSystem: fs });
    jsBackends.set(fs, js);
  }
  return js;
}
