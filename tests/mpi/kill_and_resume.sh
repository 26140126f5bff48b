#!/usr/bin/env bash
# A rank that dies mid-run, then the same command again (tests/mpi/CMakeLists.txt).
#   kill_and_resume.sh kill MPIRUN MPI_FIT_CHECK WORKDIR
#     rank 1 is killed (SIGKILL) in epoch 2 of 4: the job must end within 30 s,
#     non-zero, naming rank 1; rerun, it must resume from the epoch-1
#     checkpoint and end with the weights of an uninterrupted run, bit for bit.
#   kill_and_resume.sh stop MPIRUN MPI_FIT_CHECK WORKDIR
#     rank 1 stops (SIGSTOP), which mpirun does not notice: the collectives'
#     timeout (LOOM_MPI_TIMEOUT=3) must end the job within 30 s, naming rank 1.
set -uo pipefail
mode=$1 mpirun=$2 check=$3 dir=$4
rm -rf "$dir" && mkdir -p "$dir"

fail() {
  echo "FAIL: $*"
  exit 1
}
# timeout: should the job hang after all, the test fails instead of CI.
run() { timeout -s KILL 90 "$mpirun" --allow-run-as-root --oversubscribe -np 2 "$check" train "$@"; }

# Ends a run that must fail; checks its time and that it names rank 1.
dies() {
  local log=$1 start end
  shift
  start=$(date +%s.%N)
  if run "$@" >"$log" 2>&1; then
    cat "$log"
    fail "the job succeeded although rank 1 died"
  fi
  end=$(date +%s.%N)
  cat "$log"
  elapsed=$(awk "BEGIN { printf \"%.1f\", $end - $start }")
  echo "the job ended after ${elapsed} s"
  awk "BEGIN { exit !($elapsed < 30) }" || fail "the job took ${elapsed} s to end, more than 30"
  grep -Eq "rank 1([^0-9]|$)" "$log" || fail "no message names rank 1"
}

if [[ $mode == stop ]]; then
  export LOOM_MPI_TIMEOUT=3
  dies "$dir/stopped.log" "$dir/s.ckpt" "$dir/s.bin" --stop-at 15
  grep -q "did not answer" "$dir/stopped.log" || fail "the timeout's message is missing"
  echo "PASS"
  exit 0
fi

run "$dir/a.ckpt" "$dir/a.bin" >"$dir/a.log" 2>&1 || { cat "$dir/a.log"; fail "the uninterrupted run failed"; }
dies "$dir/killed.log" "$dir/b.ckpt" "$dir/b.bin" --die-at 15
[[ -f $dir/b.ckpt ]] || fail "no checkpoint after epoch 1"
[[ ! -f $dir/b.bin ]] || fail "the killed run wrote final weights"
run "$dir/b.ckpt" "$dir/b.bin" >"$dir/resumed.log" 2>&1 || { cat "$dir/resumed.log"; fail "the rerun failed"; }
cat "$dir/resumed.log"
grep -q "Resuming from checkpoint" "$dir/resumed.log" || fail "the rerun did not resume"
cmp "$dir/a.bin" "$dir/b.bin" || fail "the resumed run's weights or optimizer state differ from the uninterrupted run's"
echo "PASS"
