#!/usr/bin/env node
// Produces prebuilds/<platform>-<arch>/raftkv.napi.node (Node-API, so one binary serves every
// Node version with Node-API 8) with prebuildify, offline: node-gyp takes the headers from the
// running node's prefix (npm_config_nodedir), never from the network. Then loads the result in
// a child process through node-gyp-build with PREBUILDS_ONLY=1 to prove the loader finds it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nodedir = process.env.npm_config_nodedir || path.resolve(process.execPath, '..', '..');
if (!fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`prebuild: Node headers not found under ${nodedir}/include/node`);
  process.exit(1);
}
const env = { ...process.env, npm_config_nodedir: nodedir };

const prebuildify = path.join(root, 'node_modules', 'prebuildify', 'bin.js');
const build = spawnSync(process.execPath, [prebuildify, '--napi', '--strip', '--name', 'raftkv'], {
  cwd: root,
  env,
  stdio: 'inherit',
});
if (build.status !== 0) {
  console.error(`prebuild: prebuildify failed (status ${build.status})`);
  process.exit(1);
}

const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const expected = path.join(dir, 'raftkv.napi.node');
// prebuildify 6 names a Node-API build "raftkv.node"; the explicit "napi" tag says what it is
// (node-gyp-build parses it and matches it on every Node version with Node-API 8).
const untagged = path.join(dir, 'raftkv.node');
if (fs.existsSync(untagged)) fs.renameSync(untagged, expected);
if (!fs.existsSync(expected)) {
  console.error(`prebuild: ${expected} was not produced (have: ${fs.readdirSync(dir).join(', ')})`);
  process.exit(1);
}

const check = spawnSync(
  process.execPath,
  [
    '-e',
    `const load = require('node-gyp-build');
     const file = load.resolve(${JSON.stringify(root)});
     if (file !== ${JSON.stringify(expected)}) throw new Error('node-gyp-build resolved ' + file);
     const addon = require(file);
     if (addon.crc32c(Buffer.from('123456789'), 0) !== 0xE3069283) throw new Error('crc32c mismatch');
     console.log('prebuild: ' + file + ' loads (' + require('fs').statSync(file).size + ' bytes, crc32c ' + addon.crc32cImplementation() + ')');`,
  ],
  { cwd: root, env: { ...env, PREBUILDS_ONLY: '1' }, stdio: 'inherit' },
);
process.exit(check.status ?? 1);
