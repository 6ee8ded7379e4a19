#!/usr/bin/env bash
# Runs a test binary, and once more only when it died of UCX 1.13's async-handler race
# (openucx/ucx#9942, fixed in UCX 1.17: "Assertion `handler->async == async' failed" when several
# workers in one process close and open connections). Any other failure fails at once.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" >"$log" 2>&1
rc=$?
cat "$log"
if [ "$rc" -ne 0 ] && grep -q "handler->async == async" "$log"; then
  echo "RETRY: the UCX async-handler race (openucx/ucx#9942) ended this run; running once more"
  "$@"
  exit $?
fi
exit "$rc"
