#!/usr/bin/env bash
# Side-by-side runs of bench/loadgen (C load generator) against Skein, Mosquitto and Aedes.
#
#   npm run bench                                # = bash bench/run.sh: all scenarios, 5 runs, 3 s
#   RUNS=2 SECS=1 bash bench/run.sh              # quicker
#   ONLY="fanin-q1 idle" BROKERS="skein mosquitto" bash bench/run.sh
#
# Environment: RUNS (5), SECS (3, measured window), WARMUP (1), BROKERS ("skein mosquitto aedes",
# plus skein-cluster when redis-server is installed),
# ONLY (scenario names), OUT (directory for the raw results, default a new /tmp/skein-bench.*),
# SK_PORT/MQ_PORT/AE_PORT (18852/18851/18853), QUEUE (per-session queue limit set on every
# broker, 20000), FILTERS/RETAINED/BACKLOG/IDLE_CONNS (10000 each), IDLE_OUTSTANDING (100),
# BENCH_SKEIN_LOG (warn), BENCH_SKEIN_ENV (extra SKEIN_...=value settings for Skein, space-separated).
#
# Repetitions are interleaved: for each scenario, run 1 on every broker in turn, then run 2 on
# every broker, and so on. Every run gets a freshly started broker (so no run sees what another
# left: retained messages, sessions, memory high-water marks), pinned to core 0 (taskset -c 0);
# the generator runs on core 1 and is given the broker's PID (--broker-pid) so each JSON line
# holds the broker's CPU share next to the generator's, and the idle scenario the broker's
# memory. Before each run the script waits until the fresh broker's CPU time stops growing.
#
# Broker settings (nothing else differs from each broker's defaults):
#   Skein      SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE=0 and SKEIN_LIMITS__CONNECT_RATE=0 (its
#              CONNECT rate limits, 100/s per source and 2000/s per node, would refuse the pairs
#              and idle scenarios, which connect from 127.0.0.1), MAX_QUEUED_MESSAGES=$QUEUE,
#              MAX_SUBSCRIPTIONS_PER_CLIENT=$FILTERS, MAX_CONNECTIONS >= IDLE_CONNS + 1000.
#   Mosquitto  /usr/sbin/mosquitto -c (generated file, kept under $OUT): listener PORT 127.0.0.1,
#              allow_anonymous true, max_inflight_messages 0 (the 2.0.11 default of 20 strands
#              QoS 1/2 messages under concurrent publishers), max_queued_messages $QUEUE,
#              set_tcp_nodelay true (Skein and Aedes set TCP_NODELAY), persistence false,
#              log_type error + warning (no per-connection log lines; Skein logs at warn).
#   Aedes      node bench/aedes-server.mjs PORT (npm aedes, in-memory persistence, TCP_NODELAY);
#              Aedes has no per-session queue limit to set.
#   skein-cluster  the cluster scenarios (the cluster issue's benchmark): redis-server (no
#              persistence) and two Skein nodes with --redis and the Skein settings above, all
#              three on core 0; publishers connect to node A (SK_PORT), subscribers to node B
#              (CL_PORT, 18862) so every message crosses nodes through Redis. Only the scenarios
#              in CLUSTER_SCENARIOS run on it; brokerCpu is node A's alone.
#
# Output: one line per run on stdout (also the raw JSON lines under $OUT/<broker>.<scenario>.jsonl,
# failures' stderr in $OUT/<broker>.<scenario>.err, broker logs in $OUT/<broker>.log), then the
# summary table (also $OUT/table.md): per scenario and metric each broker's median and min-max,
# the medians of genCpu / brokerCpu, and the ratios Skein/Mosquitto and Skein/Aedes.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
SECS=${SECS:-3}
WARMUP=${WARMUP:-1}
SK_PORT=${SK_PORT:-18852}
MQ_PORT=${MQ_PORT:-18851}
AE_PORT=${AE_PORT:-18853}
OUT=${OUT:-$(mktemp -d /tmp/skein-bench.XXXXXX)}
QUEUE=${QUEUE:-20000}
FILTERS=${FILTERS:-10000}
RETAINED=${RETAINED:-10000}
BACKLOG=${BACKLOG:-10000}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_OUTSTANDING=${IDLE_OUTSTANDING:-100}
BENCH_SKEIN_ENV=${BENCH_SKEIN_ENV:-}
CL_PORT=${CL_PORT:-18862}
CL_REDIS_PORT=${CL_REDIS_PORT:-26391}
CLUSTER_SCENARIOS=${CLUSTER_SCENARIOS:-"fanin-q1 fanout-q1 pairs-q1 latency-q1 backlog-q1"}
if [[ -z "${BROKERS:-}" ]]; then
  BROKERS="skein mosquitto aedes"
  if command -v redis-server >/dev/null; then BROKERS="$BROKERS skein-cluster"
  else echo "redis-server not found: the cluster scenarios (skein-cluster) are skipped (apt-get install redis-server)" >&2; fi
fi
mkdir -p "$OUT"

SCENARIOS=(
  "fanin-q0|--scenario fanin --qos 0 --publishers 10"
  "fanin-q1|--scenario fanin --qos 1 --publishers 10 --window 32"
  "fanin-q2|--scenario fanin --qos 2 --publishers 10 --window 32"
  "fanout-q0|--scenario fanout --qos 0 --subscribers 50"
  "fanout-q1|--scenario fanout --qos 1 --subscribers 50 --window 32"
  "fanout-q2|--scenario fanout --qos 2 --subscribers 50 --window 32"
  "pairs-q1|--scenario pairs --qos 1 --pairs 100 --window 32"
  "filters-q0|--scenario filters --qos 0 --filters $FILTERS --subscribers 10 --publishers 10"
  "latency-q1|--scenario latency --qos 1 --rate 5000 --publishers 1"
  "latency-q1-even|--scenario latency --qos 1 --rate 5000 --publishers 1 --pace even"
  "retained|--scenario retained --retained $RETAINED --subscribers 4"
  "backlog-q1|--scenario backlog --backlog $BACKLOG --window 32"
  "idle|--scenario idle --connections $IDLE_CONNS --outstanding $IDLE_OUTSTANDING --hold 2"
)

for b in $BROKERS; do
  case $b in
    skein | mosquitto | aedes | skein-cluster) ;;
    *) echo "unknown broker '$b' in BROKERS (skein, mosquitto, aedes, skein-cluster)" >&2; exit 2 ;;
  esac
done
if ((BACKLOG > QUEUE || RETAINED > QUEUE)); then
  echo "BACKLOG ($BACKLOG) and RETAINED ($RETAINED) must not exceed QUEUE ($QUEUE), the brokers' per-session queue limit" >&2
  exit 2
fi
wanted() { [[ -z "${ONLY:-}" || " $ONLY " == *" $1 "* ]]; }

# Descriptors: the idle scenario needs IDLE_CONNS in the generator and as many in the broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if wanted idle && [[ "$(ulimit -n)" != unlimited ]] && (($(ulimit -n) < IDLE_CONNS + 100)); then
  echo "open files limit $(ulimit -n) (hard $(ulimit -Hn)) is below IDLE_CONNS + 100 = $((IDLE_CONNS + 100)):" \
    "raise it (e.g. 'ulimit -Hn 65536' as root) or set IDLE_CONNS lower" >&2
  exit 1
fi
if [[ " $BROKERS " == *" mosquitto "* && ! -x /usr/sbin/mosquitto ]]; then
  echo "/usr/sbin/mosquitto not found (apt-get install mosquitto) or drop it from BROKERS" >&2
  exit 1
fi
if [[ " $BROKERS " == *" aedes "* && ! -f node_modules/aedes/package.json ]]; then
  echo "node_modules/aedes missing: run npm ci (aedes is a development dependency)" >&2
  exit 1
fi
[[ -f dist/cli/main.js ]] || npx tsc -p tsconfig.json

gcc -O2 -Wall -o bench/loadgen bench/loadgen.c

cat >"$OUT/mosquitto.conf" <<EOF
listener $MQ_PORT 127.0.0.1
allow_anonymous true
max_inflight_messages 0
max_queued_messages $QUEUE
set_tcp_nodelay true
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
EOF

BPID=""
EXTRA_PIDS=""
DATA_DIR=""
SUB_ARGS=""
stop_pid() {
  local pid=$1
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
stop_broker() {
  stop_pid "$BPID"
  # The cluster's second node, then its redis-server (last, so the nodes stop cleanly).
  for pid in $EXTRA_PIDS; do stop_pid "$pid"; done
  BPID=""
  EXTRA_PIDS=""
  SUB_ARGS=""
  if [[ -n "$DATA_DIR" ]]; then rm -rf "$DATA_DIR"; DATA_DIR=""; fi
}
trap stop_broker EXIT INT TERM

# wait_port PORT LOGNAME [PID]: until PORT accepts (PID, default BPID, must stay alive).
wait_port() {
  local port=$1 pid=${3:-$BPID}
  # 30 s: a Skein node runs its JIT warm-up (warmup.enabled, about 6 s on one core) first.
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not open port $port (log: $OUT/$2.log)" >&2
  tail -5 "$OUT/$2.log" >&2 || true
  return 1
}

cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# Waits (at most 15 s) until the broker used less than 2 ticks (20 ms) of CPU in 300 ms.
wait_idle() {
  local a b
  for _ in $(seq 1 50); do
    a=$(cpu_ticks "$BPID")
    sleep 0.3
    b=$(cpu_ticks "$BPID")
    if ((b - a < 2)); then return 0; fi
  done
  echo "warning: broker still busy before the run" >&2
}

# One Skein node in the background: start_skein PORT DATA_DIR LOG [extra args]; sets SKEIN_PID.
start_skein() {
  local port=$1 dir=$2 log=$3
  shift 3
  local maxconn=$((IDLE_CONNS + 1000 > 100000 ? IDLE_CONNS + 1000 : 100000))
  # shellcheck disable=SC2086
  env SKEIN_LIMITS__CONNECT_RATE_PER_SOURCE=0 SKEIN_LIMITS__CONNECT_RATE=0 \
    SKEIN_LIMITS__MAX_QUEUED_MESSAGES="$QUEUE" SKEIN_LIMITS__MAX_SUBSCRIPTIONS_PER_CLIENT="$FILTERS" \
    SKEIN_LIMITS__MAX_CONNECTIONS="$maxconn" $BENCH_SKEIN_ENV \
    taskset -c 0 node bin/skein.js start -p "$port" --host 127.0.0.1 \
    --data-dir "$dir" --log-level "${BENCH_SKEIN_LOG:-warn}" "$@" >>"$log" 2>&1 &
  SKEIN_PID=$!
}

start_broker() {
  local name=$1 log=$OUT/$1.log
  case $name in
    skein-cluster)
      DATA_DIR=$(mktemp -d /tmp/skein-bench-data.XXXXXX)
      taskset -c 0 redis-server --port "$CL_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$DATA_DIR" >>"$OUT/skein-cluster.redis.log" 2>&1 &
      local rpid=$!
      for _ in $(seq 1 50); do redis-cli -p "$CL_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
      start_skein "$CL_PORT" "$DATA_DIR/b" "$OUT/skein-cluster.b.log" --node-id bench-b --redis "redis://127.0.0.1:$CL_REDIS_PORT"
      EXTRA_PIDS="$SKEIN_PID $rpid"
      start_skein "$SK_PORT" "$DATA_DIR/a" "$log" --node-id bench-a --redis "redis://127.0.0.1:$CL_REDIS_PORT"
      BPID=$SKEIN_PID
      PORT=$SK_PORT
      SUB_ARGS="--sub-port $CL_PORT"
      wait_port "$CL_PORT" "skein-cluster.b" "${EXTRA_PIDS%% *}" || return 1
      ;;
    mosquitto)
      taskset -c 0 /usr/sbin/mosquitto -c "$OUT/mosquitto.conf" >>"$log" 2>&1 &
      BPID=$!
      PORT=$MQ_PORT
      ;;
    skein)
      DATA_DIR=$(mktemp -d /tmp/skein-bench-data.XXXXXX)
      start_skein "$SK_PORT" "$DATA_DIR" "$log"
      BPID=$SKEIN_PID
      PORT=$SK_PORT
      ;;
    aedes)
      taskset -c 0 node bench/aedes-server.mjs "$AE_PORT" 127.0.0.1 >>"$log" 2>&1 &
      BPID=$!
      PORT=$AE_PORT
      ;;
  esac
  wait_port "$PORT" "$name"
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
names=()
for entry in "${SCENARIOS[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  wanted "$name" || continue
  names+=("$name")
  for run in $(seq 1 "$RUNS"); do
    for broker in $BROKERS; do
      if [[ $broker == skein-cluster && " $CLUSTER_SCENARIOS " != *" $name "* ]]; then continue; fi
      if ! start_broker "$broker"; then
        echo "$broker $name $run FAILED: broker did not start" | tee -a "$OUT/failures.txt" >&2
        stop_broker
        continue
      fi
      wait_idle
      err=$OUT/$broker.$name.err
      # shellcheck disable=SC2086
      if line=$(timeout $((${SECS%.*} + ${WARMUP%.*} + 120)) taskset -c 1 bench/loadgen --port "$PORT" --broker-pid "$BPID" \
        --seconds "$SECS" --warmup "$WARMUP" $SUB_ARGS $args 2>>"$err"); then
        echo "$broker $name $run $line"
        echo "$line" >>"$OUT/$broker.$name.jsonl"
      else
        alive=yes
        kill -0 "$BPID" 2>/dev/null || alive="no (exited, see $OUT/$broker.log)"
        echo "$broker $name $run FAILED: $(tail -1 "$err" 2>/dev/null); broker alive: $alive" | tee -a "$OUT/failures.txt" >&2
        [[ -n "$line" ]] && echo "$line" >>"$OUT/$broker.$name.failed.jsonl"
      fi
      stop_broker
    done
  done
done

{
  echo "## bench/run.sh, $started"
  echo
  echo "RUNS=$RUNS SECS=$SECS WARMUP=$WARMUP BROKERS=\"$BROKERS\" QUEUE=$QUEUE; $(nproc) cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); broker on core 0, generator on core 1;" \
    "Skein $(node -p 'require("./package.json").version'), $(/usr/sbin/mosquitto -h 2>/dev/null | head -1 | sed 's/ version / /' || true)," \
    "Aedes $(node -p 'require("./node_modules/aedes/package.json").version' 2>/dev/null || echo '?'), Node $(node --version)."
  echo
  node - "$OUT" "$BROKERS" "$RUNS" "${names[@]}" <<'EOF'
const fs = require('node:fs');
const [dir, brokerList, runs, ...names] = process.argv.slice(2);
const brokers = brokerList.split(/\s+/).filter(Boolean);
const label = { skein: 'Skein', mosquitto: 'Mosquitto', aedes: 'Aedes', 'skein-cluster': 'Skein cluster' };
const ref = brokers.includes('skein') ? 'skein' : brokers[0];
const peers = brokers.filter((b) => b !== ref);
const sorted = (xs) => xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((x, y) => x - y);
const med = (xs) => {
  const s = sorted(xs);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const load = (broker, name) => {
  const f = `${dir}/${broker}.${name}.jsonl`;
  const rows = fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  // The idle rows' resident memory in MB, next to the per-connection growth: a process that
  // starts larger (Skein after its JIT warm-up) can absorb part of the ramp in memory it holds.
  for (const r of rows) {
    if (typeof r.rssBeforeKB === 'number') r.rssBeforeMB = r.rssBeforeKB / 1024;
    if (typeof r.rssAfterKB === 'number') r.rssAfterMB = r.rssAfterKB / 1024;
  }
  return rows;
};
const fmt = (x, key) => {
  if (x === null || x === undefined) return '-';
  if (key === 'kbPerConn') return x.toFixed(2);
  if (key === 'rssBeforeMB' || key === 'rssAfterMB') return x.toFixed(1);
  if (key === 'genCpu' || key === 'brokerCpu') return x.toFixed(2);
  if (key === 'over300pct') return x.toFixed(2);
  return x >= 10000 ? `${(x / 1000).toFixed(1)}k` : `${Math.round(x)}`;
};
const metrics = (name) => {
  if (name === 'idle') {
    return [['connects/s', 'connectRate'], ['KB per connection', 'kbPerConn'], ['MB resident before the ramp', 'rssBeforeMB'], ['MB resident after it', 'rssAfterMB']];
  }
  if (name === 'backlog-q1') return [['drained msg/s', 'drainRate']];
  if (name === 'retained') return [['retained delivered/s', 'rate']];
  if (name.startsWith('latency')) return [['p50 latency us', 'p50us'], ['p90 latency us', 'p90us'], ['p99 latency us', 'p99us'], ['p99.9 latency us', 'p999us'], ['% of messages over 300 us', 'over300pct']];
  const rows = [['delivered/s', 'rate']];
  if (!name.endsWith('q0')) rows.push(['publishes acked/s', 'ackedRate']);
  return rows;
};
const head = ['scenario', 'metric', ...brokers.map((b) => `${label[b]} median (min-max)`), ...peers.map((p) => `${label[ref]} / ${label[p]}`)];
console.log(`| ${head.join(' | ')} |`);
console.log(`|${head.map(() => '---').join('|')}|`);
for (const name of names) {
  const data = Object.fromEntries(brokers.map((b) => [b, load(b, name)]));
  if (brokers.every((b) => !data[b].length)) {
    console.log(`| ${name} | (no successful run) |${brokers.map(() => ' - |').join('')}${peers.map(() => ' - |').join('')}`);
    continue;
  }
  for (const [lbl, key] of metrics(name)) {
    const m = {};
    const cells = brokers.map((b) => {
      const vals = sorted(data[b].map((r) => r[key]));
      m[b] = med(vals);
      if (!vals.length) return '-';
      const n = data[b].length < Number(runs) ? ` [${data[b].length}/${runs} ok]` : '';
      return vals.length > 1 ? `${fmt(m[b], key)} (${fmt(vals[0], key)}-${fmt(vals[vals.length - 1], key)})${n}` : `${fmt(m[b], key)}${n}`;
    });
    const ratios = peers.map((p) => (m[ref] !== null && m[p] ? (m[ref] / m[p]).toFixed(2) : '-'));
    console.log(`| ${name} | ${lbl} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`);
  }
  const cpu = brokers.map((b) => `${fmt(med(data[b].map((r) => r.genCpu)), 'genCpu')} / ${fmt(med(data[b].map((r) => r.brokerCpu)), 'brokerCpu')}`);
  console.log(`| ${name} | CPU generator / broker | ${cpu.join(' | ')} |${peers.map(() => ' |').join('')}`);
}
console.log('');
console.log('Ratios are medians divided: above 1 means Skein higher (better, except for latency and memory).');
if (brokers.includes('skein-cluster')) console.log('Skein cluster: 2 nodes + redis-server on core 0, publishers on node A, subscribers on node B (every message crosses nodes); its CPU is node A only; Skein / Skein cluster is what one node does against the cluster.');
console.log('CPU rows: medians of genCpu / brokerCpu, shares of one core over the measured window (idle: the connect ramp; backlog: the drain).');
EOF
  if [[ -s "$OUT/failures.txt" ]]; then
    echo
    echo "Failed runs:"
    sed 's/^/- /' "$OUT/failures.txt"
  fi
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "raw JSON lines, logs and table.md in $OUT"
