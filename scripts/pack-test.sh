#!/usr/bin/env bash
# Proves the user's install path end to end: build the TypeScript, produce the prebuild, pack the
# package, install the tarball into an empty project with install scripts blocked
# (--ignore-scripts, like npm 11's default for dependencies), and check there that
# `walBackend().name === 'native'` — i.e. the shipped prebuild loads without compiling anything.
# Then the README's code as a new user meets it, in that project: every TypeScript block
# typechecks against the installed package's types and the runnable ones (the Embedding example
# among them) run as written, with no retry code of their own (scripts/readme-snippets.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

npm run build:ts
npm run prebuild

work=$(mktemp -d "${TMPDIR:-/tmp}/raftkv-pack-test-XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=$(npm pack --silent --pack-destination "$work" | tail -1)
echo "packed $tarball ($(du -k "$work/$tarball" | cut -f1) KiB)"
listing=$(tar -tzf "$work/$tarball")
grep -qx 'package/prebuilds/linux-x64/raftkv.napi.node' <<<"$listing" || {
  echo "FAIL: the tarball does not contain prebuilds/linux-x64/raftkv.napi.node"; exit 1; }

mkdir -p "$work/app"
cd "$work/app"
echo '{ "name": "raftkv-pack-test", "version": "1.0.0", "private": true, "type": "module" }' > package.json
npm install --ignore-scripts --no-audit --no-fund "$work/$tarball" >install.log 2>&1 || {
  cat install.log; exit 1; }
[ ! -e node_modules/raftkv/build ] || { echo "FAIL: a build/ directory exists, nothing should have compiled"; exit 1; }

node --input-type=module -e "
import { walBackend } from 'raftkv';
const info = walBackend();
console.log('walBackend():', JSON.stringify(info));
if (info.name !== 'native') {
  console.error('FAIL: expected the native backend from the prebuild');
  process.exit(1);
}
if (!info.reason.includes('prebuilds')) {
  console.error('FAIL: the native addon did not come from prebuilds/');
  process.exit(1);
}
console.log('pack-test: OK (native backend from the packaged prebuild, install scripts blocked)');
"

cd "$root"
node --import tsx scripts/readme-snippets.ts check "$work/app"
echo 'pack-test: OK (README snippets typecheck and run in a new project)'
