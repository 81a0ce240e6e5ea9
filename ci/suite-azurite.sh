#!/usr/bin/env bash
# nextest setup script (.config/nextest.toml): Azurite for the whole test run, one per test
# slot (ci/suite-azurite-slot.sh, the wrapper, hands each test its slot's).
#
# Why: about a hundred tests need an Azurite for something else than Azurite itself (a flow, a
# producer, a served twin). Each starting its own costs two Node.js processes and ~4 s of CPU,
# ~400 s of CPU per run on a 2-core machine (issue 19, README "Where the suite's time goes").
# This starts EDW_SUITE_AZURITES (default 6, .config/nextest.toml's test-threads) with `edw azurite` (the real
# command: it installs Azurite from npm if needed) and exports them as EDW_SUITE_AZURITE_POOL
# ("queue table;queue table;..."). The wrapper sets EDW_AZURITE_QUEUE_ENDPOINT /
# EDW_AZURITE_TABLE_ENDPOINT, which the suite already honours, to the Azurite of the test's slot:
# no two running tests share one (one shared by all made its single Node.js process the
# bottleneck: a producer four tests shared fell behind a x20 twin's drain). Tests name their
# queues and tables per run; tests about Azurite itself, credentials or the embedded default
# remove the two variables.
#
# Azurite stops when nextest exits (a watchdog follows nextest's process, also after a kill).
# If it cannot start, the script says why and exits 0: each test then starts its own Azurite
# and reports the problem where it matters. EDW_SUITE_AZURITE=per-test keeps the old way;
# EDW_AZURITE_* already set means "use that one". Tested by
# harness/cli/tests/suite/workflows.rs (the_suite_azurites_serve_…, the_suite_azurite_that_…,
# the_slot_wrapper_…).
set -euo pipefail

if [ -n "${EDW_AZURITE_QUEUE_ENDPOINT:-}" ] && [ -n "${EDW_AZURITE_TABLE_ENDPOINT:-}" ]; then
  echo "suite Azurite: the tests use the one EDW_AZURITE_* already names"
  exit 0
fi
if [ "${EDW_SUITE_AZURITE:-shared}" = "per-test" ]; then
  echo "suite Azurite: EDW_SUITE_AZURITE=per-test, every test starts its own"
  exit 0
fi
: "${NEXTEST_ENV:?run by nextest as a setup script (NEXTEST_ENV is not set)}"

root=$(pwd)
nextest_pid=$PPID
count=${EDW_SUITE_AZURITES:-6}
dir=$(mktemp -d "${TMPDIR:-/tmp}/edw-suite-azurite.XXXXXX")

# `edw`: EDW_BIN, else the one cargo built for the tests (CARGO_BIN_EXE_edw is
# target/debug/edw; only `edw azurite` runs, so one left from an earlier build serves too),
# else a build (`cargo build` uses the dev profile, not the tests' test profile: a clean
# checkout would compile everything again, ~45 s here, so it is the last resort).
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ -n "${EDW_BIN:-}" ]; then
  edw=$EDW_BIN
elif [ -x "$target_dir/debug/edw" ]; then
  edw=$target_dir/debug/edw
else
  edw=$("${CARGO:-cargo}" build --quiet --message-format=json --manifest-path "$root/Cargo.toml" \
    -p edw-cli --bin edw | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
fi

# Each in its own process group, so the watchdog stops edw and its Node.js processes at once.
# Run from the temporary directory: a deploy.state in the checkout is not this script's.
groups=()
for i in $(seq 1 "$count"); do
  set -m
  (cd "$dir" && exec "${edw:-edw-not-built}" azurite) >"$dir/azurite-$i.log" 2>&1 </dev/null &
  groups+=("$!")
  set +m
done

# The watchdog: when nextest is gone (finished, interrupted or killed), stop them.
(
  while kill -0 "$nextest_pid" 2>/dev/null; do sleep 1; done
  for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  sleep 5
  for group in "${groups[@]}"; do kill -KILL -- "-$group" 2>/dev/null || true; done
  rm -rf "$dir"
) >/dev/null 2>&1 </dev/null &
disown -a

# Ready when each prints its export lines (a first npm install of Azurite takes a minute or
# two) or has exited.
pool=()
waiting=1
for _ in $(seq 1 1800); do
  pool=()
  waiting=0
  for i in $(seq 1 "$count"); do
    log="$dir/azurite-$i.log"
    queue=$(sed -n 's/^ *export EDW_AZURITE_QUEUE_ENDPOINT=//p' "$log")
    table=$(sed -n 's/^ *export EDW_AZURITE_TABLE_ENDPOINT=//p' "$log")
    if [ -n "$queue" ] && [ -n "$table" ]; then
      pool+=("$queue $table")
    elif kill -0 "${groups[$((i - 1))]}" 2>/dev/null; then
      waiting=1
    fi
  done
  [ "$waiting" = 0 ] && break
  sleep 0.2
done

if [ ${#pool[@]} -eq 0 ]; then
  echo "suite Azurite: did not start, so every test starts its own; its output:"
  tail -n 20 "$dir/azurite-1.log"
  for group in "${groups[@]}"; do kill -TERM -- "-$group" 2>/dev/null || true; done
  exit 0
fi
joined=$(IFS=';'; echo "${pool[*]}")
echo "EDW_SUITE_AZURITE_POOL=$joined" >>"$NEXTEST_ENV"
echo "suite Azurite: ${#pool[@]} of $count started, one per test slot (they stop when nextest exits): $joined"
[ "$waiting" = 1 ] && echo "suite Azurite: some did not answer in time; the tests use those that did"
exit 0
