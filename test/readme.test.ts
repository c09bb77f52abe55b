/**
 * The README's code is what new users paste first: every TypeScript block in it must typecheck
 * against the package's public API, and every block marked `<!-- runnable -->` must run as
 * written (a child process, real sockets on 127.0.0.1, real files). See
 * scripts/readme-snippets.ts; scripts/pack-test.sh checks the same blocks once more in a new
 * project that installed the packed tarball.
 *
 * Here `raftkv` is mapped to src/index.ts (tsconfig `paths`, which tsx honours too), so the
 * blocks are checked against exactly what the package exports, without a build.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  README_PATH,
  readmeSnippets,
  runProblem,
  runSnippet,
  typecheckProject,
  writeSnippets,
  type ReadmeSnippet,
} from '../scripts/readme-snippets.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

describe('README.md code blocks', function () {
  this.timeout(120_000);
  let snippets: ReadmeSnippet[] = [];
  let dir = '';

  before(async () => {
    snippets = readmeSnippets(await readFile(README_PATH, 'utf8'));
    // Inside the repository (git-ignored), so node_modules and package.json's "type" apply.
    const root = path.join(REPO, '.readme-test');
    await mkdir(root, { recursive: true });
    dir = await mkdtemp(path.join(root, 'snippets-'));
    await writeSnippets(snippets, dir);
    const tsconfig = {
      extends: path.join(REPO, 'tsconfig.json'),
      compilerOptions: {
        types: ['node'],
        paths: { raftkv: [path.join(REPO, 'src', 'index.ts')] },
        // Whether a user's project flags unused names is its own choice, not the README's.
        noUnusedLocals: false,
        noUnusedParameters: false,
      },
      include: ['*.ts'],
    };
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
  });

  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('has TypeScript blocks, the Embedding one among the runnable ones', function () {
    assert.ok(snippets.length >= 3, `found ${snippets.length} TypeScript blocks`);
    const embedding = snippets.find((s) => s.code.includes('RaftNode.start'));
    assert.ok(embedding !== undefined, 'a block starts a RaftNode');
    assert.ok(embedding.runnable, `the Embedding block (README line ${embedding.line}) is marked <!-- runnable -->`);
  });

  it('every block typechecks against the public API (import ... from \'raftkv\')', function () {
    const errors = typecheckProject(path.join(dir, 'tsconfig.json'));
    assert.deepEqual(errors, [], `README blocks (files are named after their README line):\n${errors.join('\n')}`);
  });

  it('every runnable block runs as written', function () {
    const runnable = snippets.filter((s) => s.runnable);
    assert.ok(runnable.length > 0);
    for (const s of runnable) {
      const problem = runProblem(s, runSnippet(path.join(dir, s.fileName), dir, 60_000));
      assert.equal(problem, null, problem ?? '');
    }
  });

  it('the extractor: markers, expectations and malformed input', function () {
    const md = [
      'text',
      '<!-- runnable expect="hello" -->',
      '```ts',
      "console.log('hello');",
      '```',
      '```sh',
      'not ts',
      '```',
      '```typescript',
      'const x: number = 1;',
      '```',
    ].join('\n');
    assert.deepEqual(readmeSnippets(md), [
      { line: 3, fileName: 'readme-line-3.ts', code: "console.log('hello');\n", runnable: true, expect: 'hello' },
      { line: 9, fileName: 'readme-line-9.ts', code: 'const x: number = 1;\n', runnable: false, expect: null },
    ]);
    assert.throws(() => readmeSnippets('```ts\nnever closed'), /never closed/);
    assert.throws(() => readmeSnippets('<!-- runnable -->\n\n```ts\nx\n```'), /directly followed/);
  });
});
