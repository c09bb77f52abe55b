#!/usr/bin/env bash
# Builds the native core with ASan + UBSan (cmake-js, native/CMakeLists.txt with
# RAFTKV_SANITIZE=ON) and runs the C++ tests (native/test/*.cc). The last line printed is
# "N passed, M failed"; the exit status is non-zero on any failure or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node headers from the running node's prefix, so cmake-js never tries to download them.
export npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}"
mkdir -p build-asan
npx cmake-js compile --directory native --out build-asan --debug \
  --CDRAFTKV_SANITIZE=ON --CDRAFTKV_BUILD_TESTS=ON --CDRAFTKV_BUILD_ADDON=OFF >build-asan/build.log 2>&1 || {
  cat build-asan/build.log; exit 1; }
binary=$(find build-asan -name raftkv_native_tests -type f | head -1)
[ -x "$binary" ] || { echo "raftkv_native_tests not built"; exit 1; }
# The tests need a disk-backed directory (O_DIRECT); build-asan/ is inside the checkout.
export RAFTKV_TEST_DIR="${RAFTKV_TEST_DIR:-$PWD/build-asan}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
"$binary" "$@"
