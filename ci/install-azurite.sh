#!/usr/bin/env bash
# Installs the Azurite release the harness pins (AZURITE_VERSION in
# harness/engine/src/azurite.rs) from npm into the harness's cache, exactly where, and as, the
# harness's first use would: the same directory (`edw_engine::azurite::install_dir`), the same
# npm command, the same `.installed` marker, under the same lock (`.install.lock`, flock).
#
# Why: `.ci/run` runs it beside the test build, so the tests start on an installed Azurite
# instead of spending their first 15-30 s on npm (issue 19); on a developer's machine the
# harness installs it on first use as before. Nothing else depends on it: if it fails, the
# harness installs Azurite itself and names what went wrong.
#
# `--print-dir` prints the directory and installs nothing (harness/cli/tests/suite/workflows.rs
# compares it with the harness's for each way of choosing the cache).
set -euo pipefail

source_file="$(cd "$(dirname "$0")/.." && pwd)/harness/engine/src/azurite.rs"
version=$(sed -n 's/^pub const AZURITE_VERSION: &str = "\([^"]*\)";$/\1/p' "$source_file")
if [ -z "$version" ]; then
  echo "install-azurite: no AZURITE_VERSION line in $source_file" >&2
  exit 1
fi

if [ -n "${EDW_CACHE_DIR:-}" ]; then
  cache=$EDW_CACHE_DIR
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
  cache=$XDG_CACHE_HOME/edw-conformance
elif [ -n "${HOME:-}" ]; then
  cache=$HOME/.cache/edw-conformance
else
  cache=${TMPDIR:-/tmp}/edw-conformance-cache
fi
dir=$cache/azurite-$version

if [ "${1:-}" = "--print-dir" ]; then
  echo "$dir"
  exit 0
fi

if [ -f "$dir/.installed" ]; then
  echo "Azurite $version is already installed in $dir"
  exit 0
fi
mkdir -p "$dir"
# The harness holds this lock while it installs: whichever comes second finds it installed.
exec 9>"$dir/.install.lock"
flock 9
if [ ! -f "$dir/.installed" ]; then
  started=$SECONDS
  npm install --no-audit --no-fund --prefer-offline --loglevel=error --prefix "$dir" "azurite@$version"
  printf '%s' "$version" >"$dir/.installed"
  echo "Azurite $version installed in $dir ($((SECONDS - started)) s)"
else
  echo "Azurite $version is already installed in $dir"
fi
