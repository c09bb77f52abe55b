/**
 * The README points users at examples/replicated-counter.ts as "a complete runnable example":
 * run it as users would (a child process, real sockets on 127.0.0.1, real disks) so it cannot
 * rot unnoticed. tsconfig's include typechecks it too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const EXAMPLE = fileURLToPath(new URL('../examples/replicated-counter.ts', import.meta.url));

describe('examples/replicated-counter.ts', function () {
  this.timeout(60_000);

  it('runs to completion: every add is applied once and every member reads the same total', function () {
    const r = spawnSync(process.execPath, ['--import', 'tsx', EXAMPLE], { encoding: 'utf8', timeout: 50_000 });
    const output = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
    assert.equal(r.status, 0, `exit status ${r.status} (signal ${r.signal})\n${output}`);
    assert.match(r.stdout, /^values seen by the adds: 1 2 3 4 5 6 7 8 9$/m, output);
    for (const id of [1, 2, 3]) assert.match(r.stdout, new RegExp(`^member ${id} reads visits = 9$`, 'm'), output);
    assert.doesNotMatch(r.stderr, /FATAL/, output);
  });
});
