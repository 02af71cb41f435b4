#!/usr/bin/env bash
# What the cluster's security costs: the same `select dsir` on a cluster of a scheduler and 2
# executors on this machine, open (loopback, no token), with a token, and with a token and
# TLS (the test certificates of fixtures/tls), against the local command; checks that the four
# outputs are identical. Median of RUNS wall-clock times; the executors' peak RSS.
#   benches/cluster_security.sh LAKE_DIR TARGET [RUNS]
set -euo pipefail
lake=$1; target=$2; runs=${3:-3}
bin=${SYLLABUS_BIN:-${CARGO_TARGET_DIR:-target}/release/syllabus}
tls_dir=$(cd "$(dirname "$0")/../fixtures/tls" && pwd)
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
args=(select dsir -q --k 10000 --seed 0 --target "$target")
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_run() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
start_cluster() { # MODE: open | token | tls
  port=$((20000 + RANDOM % 20000))
  local extra=()
  unset SYLLABUS_CLUSTER_TOKEN SYLLABUS_CLUSTER_CA
  if [ "$1" != open ]; then export SYLLABUS_CLUSTER_TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'); fi
  if [ "$1" = tls ]; then
    extra=(--tls-cert "$tls_dir/server.pem" --tls-key "$tls_dir/server-key.pem" --tls-ca "$tls_dir/ca.pem")
    export SYLLABUS_CLUSTER_CA=$tls_dir/ca.pem
  fi
  "$bin" cluster scheduler --bind 127.0.0.1:$port "${extra[@]}" 2>"$work/sched.log" & sleep 1
  for i in 1 2; do
    /usr/bin/time -f %M -o "$work/rss$i" "$bin" cluster executor --scheduler 127.0.0.1:$port \
      --bind 127.0.0.1:$((port + i)) --work-dir "$work" "${extra[@]}" 2>"$work/exec$i.log" &
  done
  sleep 3
}
stop_cluster() { pkill -INT -f "cluster executor --scheduler 127.0.0.1:$port" || true; sleep 1; kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; }
for r in $(seq 1 "$runs"); do time_run "$bin" "${args[@]}" --out "$work/local.parquet" "$lake"; done | median > "$work/t_local"
l=$(cat "$work/t_local")
echo "local: ${l}s"
for mode in open token tls; do
  start_cluster $mode
  for r in $(seq 1 "$runs"); do time_run "$bin" "${args[@]}" --out "$work/$mode.parquet" "$lake" --cluster df://127.0.0.1:$port; done | median > "$work/t_$mode"
  stop_cluster
  cmp "$work/local.parquet" "$work/$mode.parquet"
  t=$(cat "$work/t_$mode")
  echo "$mode: ${t}s ($(echo "scale=2; $t / $l" | bc)x local), executor peak RSS $(cat "$work/rss1" 2>/dev/null || echo ?) / $(cat "$work/rss2" 2>/dev/null || echo ?) KB; output identical"
done
