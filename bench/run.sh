#!/usr/bin/env bash
# Side-by-side runs of bench/loadgen (C load generator) against Mosquitto and Skein.
#
#   bench/run.sh                 # all scenarios, 5 runs each, 3 s measured (+1 s warm-up)
#   RUNS=3 SECS=2 bench/run.sh   # quicker
#   ONLY="fanin-q1 latency-q1" bench/run.sh
#
# Each broker is started fresh per scenario, pinned to core 0 (taskset -c 0); the generator runs
# on core 1. Between runs the script waits until the broker's CPU time stops growing, so a run
# does not start while the broker still drains the previous one. Each run publishes on a topic of
# its own (bench/<pid>). Prints one JSON line per run (also kept under $OUT) and then the medians.
#
# Skein runs with SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE=0: its default (100 CONNECT/s per source
# address) refuses the 200 connections of the pairs scenario, which all come from 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SECS=${SECS:-3}
MQ_PORT=${MQ_PORT:-18851}
SK_PORT=${SK_PORT:-18852}
OUT=${OUT:-$(mktemp -d /tmp/skein-bench.XXXXXX)}
BROKERS=${BROKERS:-"mosquitto skein"}

SCENARIOS=(
  "fanin-q0|--scenario fanin --qos 0 --publishers 10"
  "fanin-q1|--scenario fanin --qos 1 --publishers 10 --window 32"
  "fanin-q2|--scenario fanin --qos 2 --publishers 10 --window 32"
  "fanout-q0|--scenario fanout --qos 0 --subscribers 50"
  "fanout-q1|--scenario fanout --qos 1 --subscribers 50 --window 32"
  "pairs-q1|--scenario pairs --qos 1 --pairs 100 --window 32"
  "latency-q1|--scenario latency --qos 1 --rate 5000 --publishers 1"
)

gcc -O2 -Wall -o bench/loadgen bench/loadgen.c

BPID=""
DATA_DIR=""
cleanup() {
  if [[ -n "$BPID" ]] && kill -0 "$BPID" 2>/dev/null; then
    kill "$BPID" 2>/dev/null || true
    wait "$BPID" 2>/dev/null || true
  fi
  BPID=""
  if [[ -n "$DATA_DIR" ]]; then rm -rf "$DATA_DIR"; DATA_DIR=""; fi
}
trap cleanup EXIT INT TERM

wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "broker did not open port $port" >&2
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Waits (at most 15 s) until the broker used less than 2 ticks (20 ms) of CPU in 300 ms.
wait_idle() {
  local a b
  for _ in $(seq 1 50); do
    a=$(cpu_ticks "$BPID")
    sleep 0.3
    b=$(cpu_ticks "$BPID")
    if (( b - a < 2 )); then return 0; fi
  done
  echo "warning: broker still busy before the next run" >&2
}

start_broker() {
  local name=$1 log=$OUT/$1.log
  case $name in
    mosquitto)
      taskset -c 0 /usr/sbin/mosquitto -p "$MQ_PORT" >>"$log" 2>&1 &
      BPID=$!
      PORT=$MQ_PORT
      ;;
    skein)
      DATA_DIR=$(mktemp -d /tmp/skein-bench-data.XXXXXX)
      SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE=0 taskset -c 0 node bin/skein.js start -p "$SK_PORT" --host 127.0.0.1 \
        --data-dir "$DATA_DIR" --log-level "${BENCH_SKEIN_LOG:-warn}" >>"$log" 2>&1 &
      BPID=$!
      PORT=$SK_PORT
      ;;
  esac
  wait_port "$PORT"
}

for entry in "${SCENARIOS[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then continue; fi
  for broker in $BROKERS; do
    start_broker "$broker"
    for run in $(seq 1 "$RUNS"); do
      wait_idle
      # shellcheck disable=SC2086
      if line=$(timeout $((SECS + 30)) taskset -c 1 bench/loadgen --port "$PORT" --seconds "$SECS" $args); then
        echo "$broker $name $run $line"
        echo "$line" >>"$OUT/$broker.$name.jsonl"
      else
        echo "$broker $name $run FAILED" >&2
      fi
    done
    cleanup
  done
done

echo
echo "medians of $RUNS runs, ${SECS} s each (raw lines in $OUT)"
node - "$OUT" "$BROKERS" "${SCENARIOS[@]%%|*}" <<'EOF'
const fs = require('node:fs');
const [dir, brokers, ...names] = process.argv.slice(2);
const [a, b] = brokers.split(' ');
const med = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((x, y) => x - y);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = (broker, name) => {
  const f = `${dir}/${broker}.${name}.jsonl`;
  return fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
};
const fmt = (x) => (x === null ? '-' : x >= 10000 ? `${(x / 1000).toFixed(1)}k` : `${Math.round(x)}`);
const ratio = (x, y) => (x && y !== null ? (y / x).toFixed(2) : '-');
console.log(`| scenario | metric | ${a} | ${b ?? ''} | ${b ?? ''} / ${a} |`);
console.log('|---|---|---|---|---|');
for (const name of names) {
  const ra = load(a, name), rb = b ? load(b, name) : [];
  if (!ra.length && !rb.length) continue;
  const rows = [['delivered/s', 'rate']];
  if (!name.endsWith('q0')) rows.push(['publishes acked/s', 'ackedRate']);
  if (name.startsWith('latency')) rows.push(['p50 latency us', 'p50us'], ['p99 latency us', 'p99us']);
  for (const [label, key] of rows) {
    const ma = med(ra.map((r) => r[key])), mb = med(rb.map((r) => r[key]));
    console.log(`| ${name} | ${label} | ${fmt(ma)} | ${fmt(mb)} | ${ratio(ma, mb)} |`);
  }
}
EOF
