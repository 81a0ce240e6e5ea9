#!/usr/bin/env bash
# Runs the local suite N times to find flaky tests:
#
#   ci/flake-check.sh [-n RUNS] [-- EXTRA NEXTEST ARGS]     (default: 20 runs)
#
# Each run is `cargo nextest run --workspace --profile ci`; its JUnit (reports/junit.xml, written
# by the ci profile) and output are kept in reports/flake/<i>/. At the end it prints
# "N passed, M failed", lists the tests that failed in any run, and exits non-zero if any run
# failed. Every run goes to the end (no stop at the first failure): a flake shows as a test that
# fails in some runs only.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=20
usage() { echo "usage: $0 [-n RUNS] [-- EXTRA NEXTEST ARGS]" >&2; }
while getopts ":n:h" opt; do
  case "$opt" in
    n) runs="$OPTARG" ;;
    h) usage; exit 0 ;;
    :) echo "-$OPTARG needs a value" >&2; usage; exit 2 ;;
    *) echo "unknown option -$OPTARG" >&2; usage; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ "${1:-}" = "--" ]; then
  shift
fi
case "$runs" in
  '' | *[!0-9]* | 0) echo "-n needs a positive number, not '$runs'" >&2; exit 2 ;;
esac

out="reports/flake"
rm -rf "$out"
mkdir -p "$out"
passed=0
failed=0
for i in $(seq 1 "$runs"); do
  dir="$out/$i"
  mkdir -p "$dir"
  rm -f reports/junit.xml
  echo "== run $i/$runs"
  if cargo nextest run --workspace --profile ci "$@" >"$dir/output.log" 2>&1; then
    passed=$((passed + 1))
    echo "   passed"
  else
    failed=$((failed + 1))
    echo "   FAILED (output: $dir/output.log)"
  fi
  if [ -f reports/junit.xml ]; then
    cp reports/junit.xml "$dir/junit.xml"
  else
    echo "   no reports/junit.xml from this run (did the build fail?)"
  fi
done

# Tests that failed in any run: the <testcase> names that enclose a <failure> or <error>.
failing="$(cat "$out"/*/junit.xml 2>/dev/null \
  | awk '/<testcase /{
           match($0, / name="[^"]*"/); name = substr($0, RSTART + 7, RLENGTH - 8)
           class = ""
           if (match($0, / classname="[^"]*"/)) class = substr($0, RSTART + 12, RLENGTH - 13) " "
         }
         /<(failure|error)[ >]/{ if (name != "") print class name }' \
  | sort | uniq -c | sort -rn || true)"
if [ -n "$failing" ]; then
  echo "== failing tests (runs in which each failed)"
  echo "$failing"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
