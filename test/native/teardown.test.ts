/**
 * A process that exits with native segments still open (no close(), an append in flight) must
 * exit normally. It used to abort (SIGABRT, exit 134): the writer thread released its
 * thread-safe function after Node had already torn it down.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tempRoot } from '../wal/fixtures/backends.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixture = path.join(here, 'fixtures', 'exit-open.ts');
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

describe('native segments at process exit', function () {
  this.timeout(60_000);
  for (const mode of ['buffered', 'direct'] as const) {
    for (const how of ['return', 'exit'] as const) {
      it(`${mode}: ${how === 'exit' ? 'process.exit()' : 'the event loop running empty'} with open segments exits cleanly`, function () {
        const dir = tempRoot('exit');
        try {
          const r = spawnSync(process.execPath, ['--import', tsx, fixture, dir, mode, how], { encoding: 'utf8' });
          assert.equal(r.signal, null, `killed by ${r.signal}; stderr: ${r.stderr}`);
          assert.equal(r.status, 0, `exit ${r.status}; stderr: ${r.stderr}`);
          assert.match(r.stdout, /opened/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  }
});
