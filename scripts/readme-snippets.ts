/**
 * The README's TypeScript blocks as files a test can typecheck and run, so a snippet that stops
 * working fails CI instead of a new user.
 *
 * Every ```ts block is typechecked. A block right after the line `<!-- runnable -->` is also
 * run as a program (it must exit 0); `<!-- runnable expect="text" -->` further requires "text"
 * in its standard output. The comment is invisible on the rendered page.
 *
 * Two users: test/readme.test.ts (against the source, `raftkv` mapped to src/index.ts) and
 * scripts/pack-test.sh, which runs this file in a brand-new project where the packed tarball is
 * installed:
 *
 *   node --import tsx scripts/readme-snippets.ts check <project-dir>
 *
 * writes the blocks and a tsconfig.json under <project-dir>/readme-snippets/, typechecks them
 * against the installed package's types and runs the runnable ones there.
 */

import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

export interface ReadmeSnippet {
  /** 1-based line of the opening fence in README.md, for messages. */
  line: number;
  /** `readme-line-<line>.ts`. */
  fileName: string;
  code: string;
  runnable: boolean;
  /** Text the program's standard output must contain (runnable blocks only), or null. */
  expect: string | null;
}

const FENCE_OPEN = /^```(ts|typescript)\s*$/;
const RUNNABLE = /^<!--\s*runnable(?:\s+expect="([^"]*)")?\s*-->$/;

/** The TypeScript blocks of a Markdown document, in order. Throws on an unclosed block or a
 * `runnable` marker that is not followed by a TypeScript block. */
export function readmeSnippets(markdown: string): ReadmeSnippet[] {
  const lines = markdown.split('\n');
  const snippets: ReadmeSnippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const marker = RUNNABLE.exec(lines[i]!.trim());
    if (marker !== null && !FENCE_OPEN.test(lines[i + 1] ?? '')) {
      throw new Error(`README line ${i + 1}: <!-- runnable --> must be directly followed by a \`\`\`ts block`);
    }
    if (!FENCE_OPEN.test(lines[i]!)) continue;
    const start = i;
    const end = lines.findIndex((l, j) => j > start && l.startsWith('```'));
    if (end === -1) throw new Error(`README line ${start + 1}: the TypeScript block is never closed`);
    const previous = RUNNABLE.exec((lines[start - 1] ?? '').trim());
    snippets.push({
      line: start + 1,
      fileName: `readme-line-${start + 1}.ts`,
      code: lines.slice(start + 1, end).join('\n') + '\n',
      runnable: previous !== null,
      expect: previous?.[1] ?? null,
    });
    i = end;
  }
  return snippets;
}

/** Writes each snippet to `dir/<fileName>`. */
export async function writeSnippets(snippets: ReadmeSnippet[], dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const s of snippets) await writeFile(path.join(dir, s.fileName), s.code);
}

/** Type errors of the project `tsconfigPath` describes, formatted; empty when it checks. */
export function typecheckProject(tsconfigPath: string): string[] {
  const read = ts.readConfigFile(tsconfigPath, (p) => ts.sys.readFile(p));
  if (read.error !== undefined) return [ts.flattenDiagnosticMessageText(read.error.messageText, '\n')];
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, path.dirname(tsconfigPath));
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: { ...parsed.options, noEmit: true } });
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program)];
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => path.dirname(tsconfigPath),
    getNewLine: () => '\n',
  };
  return diagnostics.map((d) => ts.formatDiagnostic(d, host).trim());
}

export interface SnippetRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a TypeScript file as a program through tsx, from `cwd` (whose tsconfig.json tsx uses). */
export function runSnippet(file: string, cwd: string, timeoutMs: number): SnippetRun {
  const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const r = spawnSync(process.execPath, ['--import', tsxLoader, file], { cwd, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** What is wrong with a runnable snippet's run, or null. */
export function runProblem(snippet: ReadmeSnippet, run: SnippetRun): string | null {
  const output = `--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
  if (run.status !== 0) {
    return `README line ${snippet.line}: exited with ${run.signal ?? `status ${run.status}`}\n${output}`;
  }
  if (snippet.expect !== null && !run.stdout.includes(snippet.expect)) {
    return `README line ${snippet.line}: its output does not contain ${JSON.stringify(snippet.expect)}\n${output}`;
  }
  return null;
}

export const README_PATH = fileURLToPath(new URL('../README.md', import.meta.url));
const RUN_TIMEOUT_MS = 60_000;

/** pack-test.sh: check the README's snippets in a project that installed the packed tarball. */
async function checkInstalledProject(projectDir: string): Promise<number> {
  const snippets = readmeSnippets(await readFile(README_PATH, 'utf8'));
  const dir = path.join(path.resolve(projectDir), 'readme-snippets');
  await writeSnippets(snippets, dir);
  // What a new TypeScript project has: strict checking, ES modules, Node's types (taken from
  // this repository: the project itself has nothing but raftkv installed).
  const typeRoots = path.join(path.dirname(README_PATH), 'node_modules', '@types');
  const tsconfig = {
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      skipLibCheck: true,
      typeRoots: [typeRoots],
      types: ['node'],
    },
    include: ['*.ts'],
  };
  const tsconfigPath = path.join(dir, 'tsconfig.json');
  await writeFile(tsconfigPath, JSON.stringify(tsconfig, null, 2));
  const errors = typecheckProject(tsconfigPath);
  if (errors.length > 0) {
    process.stderr.write(`README snippets do not typecheck against the installed package:\n${errors.join('\n')}\n`);
    return 1;
  }
  console.log(`${snippets.length} README TypeScript blocks typecheck against the installed package`);
  for (const s of snippets.filter((x) => x.runnable)) {
    const problem = runProblem(s, runSnippet(path.join(dir, s.fileName), dir, RUN_TIMEOUT_MS));
    if (problem !== null) {
      process.stderr.write(`${problem}\n`);
      return 1;
    }
    console.log(`README line ${s.line}: runs as written`);
  }
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [command, projectDir] = process.argv.slice(2);
  if (command !== 'check' || projectDir === undefined) {
    process.stderr.write('usage: node --import tsx scripts/readme-snippets.ts check <project-dir>\n');
    process.exitCode = 2;
  } else {
    checkInstalledProject(projectDir).then(
      (code) => (process.exitCode = code),
      (err: unknown) => {
        process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 1;
      },
    );
  }
}
