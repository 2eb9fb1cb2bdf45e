#!/usr/bin/env bash
# bench/resp.sh — redis-benchmark against a local redis-server, one starling
# node and a 3-node starling cluster (benchmark pointed at one node), in one
# run on this machine, and one table with the ratios starling/redis.
#
#   bench/resp.sh                 # defaults below
#   N=200000 C=50 D=100 R=100000 PIPELINES="1 16" bench/resp.sh
#   NATIVE=0 bench/resp.sh        # skip the native (msgpack) table
#
# Every measurement is repeated ROUNDS times (default 3), alternating the
# servers within each round, and the tables show the median of each
# column: on a small shared machine one run can be 20% off.
#
# The first table's last column is the CPU time (user + system) the
# server processes used per request, from /proc: on a shared machine it
# moves less than ops/s, and it says what a request costs each server
# (for the 3-node cluster, the three nodes together).
#
# PASSTHROUGH=1 (the default) adds two rows: bench/passthrough, a minimal
# RESP node that forwards (a sharded map, raw pipelined commands copied to
# each owner over a connection per client connection, no membership,
# framing, replication or expiry), as one node and as three through one.
# It is a baseline for what forwarding costs on this machine: its 3-node
# ratio to its own 1-node figure is there to compare starling's with.
# PASSTHROUGH=0 skips it.
#
# REDIS_CLUSTER=1 (the default) adds a reference table: redis-server's
# own cluster — three shards on the servers' CPU, created with redis-cli
# --cluster create — driven by redis-benchmark --cluster, which sends each
# command straight to its key's shard as starling's smart client does,
# against a single redis-server, with the same load generator (--cluster
# runs a thread per shard, so both rows use --threads 3) and placement. It
# says what owner-direct sharding over three processes costs on this
# machine, independent of starling. Threaded, redis-benchmark counts a
# run's time in 250 ms steps, so both rows of that table send
# N x max(2, P) requests per run (a few seconds) to keep that error under
# about 5%. REDIS_CLUSTER=0 skips it.
#
# A second table runs `starling bench` (the Go client on the msgpack
# protocol) against the same nodes: owner-direct ("smart") against the
# 3-node cluster, forwarded through one node, and the single node; the
# ratio column compares each with the single node.
#
# Placement: redis-server is single-threaded, so on a small machine the
# fair comparison gives every server the same CPU and the load generator
# its own. By default (PIN=1, with at least 2 CPUs) every server process —
# redis-server, the single node and all three cluster nodes — runs on CPU
# $SERVER_CPUS (default 0) and every load generator on CPU $LOAD_CPUS
# (default 1), with taskset; Go sizes GOMAXPROCS to the CPUs it may use.
# PIN=0 lets the kernel place everything on every CPU (servers and load
# generator then compete for the same cores).
#
# SCHED=batch runs every server under SCHED_BATCH (chrt -b 0): a server
# woken by a packet then waits for the running one's time slice instead
# of preempting it. That matters only where several servers share a core
# (the 3-node cluster here, never in a real deployment): the entry node's
# forwarded batches are then not handed to an owner one at a time. It is
# off by default; the table's header says when it was on.
#
# GO_ENV='VAR=value ...' runs the Go servers (starling nodes and the
# passthrough baseline) with those variables set, to measure runtime
# settings. A starling node keeps the Go runtime's monitor thread
# (sysmon) awake by default (`starling start --sysmon`) unless GODEBUG
# sets schedtrace, and the passthrough baseline is given the same setting
# (GODEBUG=schedtrace=2147483647, added to the GODEBUG the nodes see), so
# that both pay the same runtime costs; GO_ENV='GODEBUG=schedtrace=0'
# measures both with Go's own default instead, in which the monitor parks
# whenever a process goes idle and each wake-up after that costs context
# switches on a shared core. The table's header says which was in effect.
#
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools)
# and taskset (util-linux) when pinning.
# Everything listens on 127.0.0.1; every process started here is stopped
# (by PID) on exit.
set -euo pipefail

N=${N:-200000} C=${C:-50} D=${D:-100} R=${R:-100000}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-3}
NATIVE=${NATIVE:-1}
PASSTHROUGH=${PASSTHROUGH:-1}
REDIS_CLUSTER=${REDIS_CLUSTER:-1}
REPLICAS=${REPLICAS:-2}
PIN=${PIN:-1}
SCHED=${SCHED:-}
GO_ENV=${GO_ENV:-}
SERVER_CPUS=${SERVER_CPUS:-0} LOAD_CPUS=${LOAD_CPUS:-1}
BASE=${BASE_PORT:-17400}
for flag in NATIVE PASSTHROUGH REDIS_CLUSTER PIN; do
  [[ ${!flag} == 0 || ${!flag} == 1 ]] || { echo "bench/resp.sh: $flag must be 0 or 1, not ${!flag}" >&2; exit 1; }
done
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in redis-server redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "bench/resp.sh: $tool not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

# on_server / on_load prefix a command to run it on the servers' or the
# load generator's CPUs (or anywhere, unpinned); taskset execs the command,
# so $! is still the server's PID.
if [[ $PIN == 1 && $(nproc) -ge 2 ]]; then
  command -v taskset >/dev/null || { echo "bench/resp.sh: taskset not found (apt-get install util-linux), or run with PIN=0" >&2; exit 1; }
  taskset -c "$SERVER_CPUS" true && taskset -c "$LOAD_CPUS" true ||
    { echo "bench/resp.sh: cannot run on CPUs $SERVER_CPUS and $LOAD_CPUS; set SERVER_CPUS and LOAD_CPUS, or PIN=0" >&2; exit 1; }
  on_server=(taskset -c "$SERVER_CPUS")
  on_load=(taskset -c "$LOAD_CPUS")
  placement="servers on CPU $SERVER_CPUS, load generator on CPU $LOAD_CPUS"
else
  on_server=()
  on_load=()
  placement="unpinned: servers and load generator share all $(nproc) CPUs"
fi
case $SCHED in
  "") ;;
  batch)
    command -v chrt >/dev/null || { echo "bench/resp.sh: chrt not found (apt-get install util-linux)" >&2; exit 1; }
    on_server=(${on_server[@]+"${on_server[@]}"} chrt -b 0)
    placement="$placement; servers under SCHED_BATCH" ;;
  *) echo "bench/resp.sh: SCHED must be empty or batch, not $SCHED" >&2; exit 1 ;;
esac

# on_go prefixes the Go servers' commands with GO_ENV's variables (env
# execs too, so $! stays the server's PID).
on_go=(${on_server[@]+"${on_server[@]}"})
go_env=()
if [[ -n $GO_ENV ]]; then
  read -r -a go_env <<<"$GO_ENV"
  on_go+=(env "${go_env[@]}")
  placement="$placement; Go servers run with $GO_ENV"
fi
# on_pt gives the passthrough baseline the runtime setting a starling node
# makes for itself: the GODEBUG the nodes see (this shell's, or GO_ENV's),
# with schedtrace=2147483647 added unless that sets schedtrace already.
# (STARLING_SYSMON=default, here or in GO_ENV, turns that off.)
pt_godebug=${GODEBUG:-} pt_sysmon=${STARLING_SYSMON:-awake}
for kv in ${go_env[@]+"${go_env[@]}"}; do
  case $kv in
    GODEBUG=*) pt_godebug=${kv#GODEBUG=} ;;
    STARLING_SYSMON=*) pt_sysmon=${kv#STARLING_SYSMON=} ;;
  esac
done
if [[ ,$pt_godebug, == *,schedtrace=* ]]; then
  placement="$placement; Go runtime monitor as GODEBUG=$pt_godebug sets it"
elif [[ $pt_sysmon == default ]]; then
  placement="$placement; Go runtime monitor as Go's default (STARLING_SYSMON=default)"
else
  pt_godebug=${pt_godebug:+$pt_godebug,}schedtrace=2147483647
  placement="$placement; Go runtime monitor kept awake (starling's default, --sysmon awake)"
fi
on_pt=(${on_go[@]+"${on_go[@]}"} env "GODEBUG=$pt_godebug")

echo "building starling..." >&2
(cd "$repo" && CGO_ENABLED=0 go build -o "$work/starling" ./cmd/starling)
if [[ $PASSTHROUGH == 1 ]]; then
  (cd "$repo" && CGO_ENABLED=0 go build -o "$work/passthrough" ./bench/passthrough)
fi

wait_port() { # wait until redis-cli PING answers on port $1
  for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2; exit 1
}

start_starling() { # name index join...
  local name=$1 i=$2; shift 2
  ${on_go[@]+"${on_go[@]}"} "$work/starling" start --name "$name" --addr "127.0.0.1:$((BASE + 10 + i))" \
    --gossip-addr "127.0.0.1:$((BASE + 20 + i))" --resp-addr "127.0.0.1:$((BASE + 30 + i))" \
    --replicas "$REPLICAS" --log-level warn "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!)
}

# cputicks PID...: the CPU time (user + system, in clock ticks) the
# processes have used so far.
cputicks() {
  local t=0 pid f
  for pid in "$@"; do
    # Fields after the parenthesised command name: utime and stime are
    # the 12th and 13th.
    read -r -a f <<<"$(sed 's/^.*) //' "/proc/$pid/stat")"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

# run LABEL PORT P PID...: prints "label P SET_ops GET_ops SET_p50 SET_p99
# GET_p50 GET_p99 cpu_us [cpu_us of each PID]", cpu_us being the CPU time
# the server processes PID... spent per request, SET and GET together (a
# load generator that waits on the servers makes ops/s noisy on a shared
# machine; the CPU a request costs moves less). With several PIDs, each
# one's share follows: for a cluster addressed through its first node,
# what the entry node and each owner spend.
# RUN_N overrides the request count (N), RUN_THREADS sets redis-benchmark's
# --threads and RUN_CLUSTER=1 adds its --cluster. A failed redis-benchmark
# fails the script rather than print a row of blanks.
run() {
  local label=$1 port=$2 p=$3 out pid n=${RUN_N:-$N}
  shift 3
  local -a before=() each=() extra=()
  [[ -n ${RUN_THREADS:-} ]] && extra+=(--threads "$RUN_THREADS")
  [[ ${RUN_CLUSTER:-0} == 1 ]] && extra+=(--cluster)
  for pid in "$@"; do before+=("$(cputicks "$pid")"); done
  out=$(${on_load[@]+"${on_load[@]}"} redis-benchmark ${extra[@]+"${extra[@]}"} -p "$port" -t set,get -n "$n" -c "$C" -d "$D" -r "$R" -P "$p" --csv 2>&1) ||
    { echo "bench/resp.sh: redis-benchmark failed on $label (port $port, P $p): $out" >&2; return 1; }
  [[ $out == *'"SET"'* && $out == *'"GET"'* ]] ||
    { echo "bench/resp.sh: no SET and GET results from redis-benchmark on $label (port $port, P $p): $out" >&2; return 1; }
  local i=0 total=0 t
  for pid in "$@"; do
    t=$(($(cputicks "$pid") - before[i]))
    total=$((total + t))
    each+=("$t")
    i=$((i + 1))
  done
  [[ $# -gt 1 ]] || each=()
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  awk -F'","' -v label="$label" -v p="$p" -v ticks="$total" -v each="${each[*]}" -v hz="$hz" -v n=$((2 * n)) '
    { gsub(/"/, "", $1); gsub(/"/, "", $NF) }
    $1 == "SET" { sr=$2; s50=$5; s99=$7 }
    $1 == "GET" { gr=$2; g50=$5; g99=$7 }
    END { printf "%s %s %s %s %s %s %s %s %.2f", label, p, sr, gr, s50, s99, g50, g99, ticks * 1e6 / hz / n
          k = split(each, e, " "); for (j = 1; j <= k; j++) printf " %.2f", e[j] * 1e6 / hz / n
          printf "\n" }' <<<"$out"
}

${on_server[@]+"${on_server[@]}"} redis-server --port "$((BASE + 1))" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
start_starling single 0
start_starling c1 1
start_starling c2 2 --join "127.0.0.1:$((BASE + 21))"
start_starling c3 3 --join "127.0.0.1:$((BASE + 21))"
redis_pid=${pids[0]} single_pid=${pids[1]} cluster_pids=("${pids[@]:2:3}")
if [[ $PASSTHROUGH == 1 ]]; then
  pt_peers="127.0.0.1:$((BASE + 51)),127.0.0.1:$((BASE + 52)),127.0.0.1:$((BASE + 53))"
  "${on_pt[@]}" "$work/passthrough" --addr "127.0.0.1:$((BASE + 50))" >>"$work/passthrough.log" 2>&1 &
  pids+=($!)
  pt_single=$!
  pt_cluster=()
  for i in 0 1 2; do
    "${on_pt[@]}" "$work/passthrough" --addr "127.0.0.1:$((BASE + 51 + i))" --peers "$pt_peers" --self "$i" >>"$work/passthrough.log" 2>&1 &
    pids+=($!)
    pt_cluster+=($!)
  done
  for port in 50 51 52 53; do wait_port "$((BASE + port))"; done
fi
wait_port "$((BASE + 1))"; wait_port "$((BASE + 30))"; wait_port "$((BASE + 31))"
if [[ $REDIS_CLUSTER == 1 ]]; then
  [[ $(redis-benchmark --help 2>&1) == *--cluster* ]] ||
    { echo "bench/resp.sh: this redis-benchmark has no --cluster (Redis 6 or later has); run with REDIS_CLUSTER=0" >&2; exit 1; }
  rc_pids=()
  for i in 1 2 3; do
    # Cluster bus ports BASE+64..66: every port this script uses stays
    # within BASE..BASE+66.
    ${on_server[@]+"${on_server[@]}"} redis-server --port "$((BASE + 60 + i))" --cluster-port "$((BASE + 63 + i))" \
      --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file "nodes-$((BASE + 60 + i)).conf" --dir "$work" --save "" --appendonly no \
      --daemonize no >"$work/redis-cluster-$i.log" 2>&1 &
    pids+=($!)
    rc_pids+=($!)
  done
  for i in 1 2 3; do wait_port "$((BASE + 60 + i))"; done
  redis-cli --cluster create "127.0.0.1:$((BASE + 61))" "127.0.0.1:$((BASE + 62))" "127.0.0.1:$((BASE + 63))" \
    --cluster-replicas 0 --cluster-yes >"$work/redis-cluster-create.log" 2>&1 ||
    { echo "bench/resp.sh: redis-cli --cluster create failed (see below), or run with REDIS_CLUSTER=0" >&2; cat "$work/redis-cluster-create.log" >&2; exit 1; }
  for i in 1 2 3; do
    for _ in $(seq 200); do
      [[ $(redis-cli -p "$((BASE + 60 + i))" cluster info 2>/dev/null) == *cluster_state:ok* ]] && continue 2
      sleep 0.05
    done
    echo "bench/resp.sh: the Redis Cluster shard on port $((BASE + 60 + i)) did not reach cluster_state:ok; run with REDIS_CLUSTER=0 to skip it" >&2
    exit 1
  done
fi
for _ in $(seq 200); do
  [[ $("$work/starling" members --addr "127.0.0.1:$((BASE + 11))" 2>/dev/null | grep -c alive) -eq 3 ]] && break
  sleep 0.1
done

# medians: reads "label P v1 v2 ..." lines, prints one line per (label, P),
# in first-seen order, with the median of each value.
medians() {
  awk '{ k = $1 " " $2; if (!(k in n)) order[++keys] = k; n[k]++
         for (i = 3; i <= NF; i++) v[k, i, n[k]] = $i; nf[k] = NF }
    END { for (j = 1; j <= keys; j++) { k = order[j]; line = k
            for (i = 3; i <= nf[k]; i++) {
              m = n[k]; delete a
              for (r = 1; r <= m; r++) a[r] = v[k, i, r] + 0
              for (x = 2; x <= m; x++) for (y = x; y > 1 && a[y-1] > a[y]; y--) { t = a[y]; a[y] = a[y-1]; a[y-1] = t }
              med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
              line = line " " med }
            print line } }'
}

# repeat WHAT FUNC: calls FUNC P for every pipeline depth, ROUNDS times.
repeat() {
  local round p
  for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS: $1..." >&2
    for p in $PIPELINES; do "$2" "$p"; done
  done
}

main_round() {
  run redis "$((BASE + 1))" "$1" "$redis_pid"
  run starling-1 "$((BASE + 30))" "$1" "$single_pid"
  run starling-3 "$((BASE + 31))" "$1" "${cluster_pids[@]}"
  if [[ $PASSTHROUGH == 1 ]]; then
    run passthru-1 "$((BASE + 50))" "$1" "$pt_single"
    run passthru-3 "$((BASE + 51))" "$1" "${pt_cluster[@]}"
  fi
}

out=$(repeat redis-benchmark main_round | medians)
mapfile -t results <<<"$out"

echo
echo "redis-benchmark -t set,get -n $N -c $C -d $D -r $R; starling --replicas $REPLICAS; medians of $ROUNDS rounds; $(nproc) cores, $(uname -m); $placement"
echo "cpu_us: CPU time the server process(es) spent per request, SET and GET together (all three nodes for the -3 rows)"
echo "split: cpu_us of the node addressed, then of each other node"
if [[ $PASSTHROUGH == 1 ]]; then
  echo "x1node: a 3-node row against the 1-node row of the same server (passthru: bench/passthrough, a minimal forwarding baseline)"
else
  echo "x1node: the 3-node row against the 1-node row"
fi
declare -A base_set base_get one_set one_get
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
# rows LINE...: prints the lines run produced as a table. xredis compares
# a row with the redis row of the same P, x1node a "NAME-3" row with the
# "NAME-1" row.
rows() {
  local line label p sr gr s50 s99 g50 g99 cpu split x1s x1g
  printf '%-11s %3s %11s %11s %8s %8s %8s %8s %9s %9s %9s %9s %8s  %s\n' server P SET/s GET/s SET_p50 SET_p99 GET_p50 GET_p99 SETxredis GETxredis SETx1node GETx1node cpu_us split
  for line in "$@"; do
    read -r label p sr gr s50 s99 g50 g99 cpu split <<<"$line"
    if [[ $label == redis ]]; then base_set[$p]=$sr; base_get[$p]=$gr; fi
    if [[ $label == *-1 ]]; then one_set[${label%-1}$p]=$sr; one_get[${label%-1}$p]=$gr; fi
    x1s=- x1g=-
    if [[ $label == *-3 ]]; then x1s=$(ratio "$sr" "${one_set[${label%-3}$p]}"); x1g=$(ratio "$gr" "${one_get[${label%-3}$p]}"); fi
    printf '%-11s %3s %11.0f %11.0f %8s %8s %8s %8s %9s %9s %9s %9s %8s  %s\n' "$label" "$p" "$sr" "$gr" "$s50" "$s99" "$g50" "$g99" \
      "$(ratio "$sr" "${base_set[$p]}")" "$(ratio "$gr" "${base_get[$p]}")" "$x1s" "$x1g" "$cpu" \
      "$(awk -v s="$split" 'BEGIN { k = split(s, v, " "); for (j = 1; j <= k; j++) printf "%s%.2f", (j > 1 ? "+" : ""), v[j] }')"
  done
}
rows "${results[@]}"

# redis-benchmark --cluster runs a thread per shard: the single server's
# row gets as many, so that both rows have the same load generator.
cluster_round() {
  local n=$((N * ($1 > 2 ? $1 : 2)))
  RUN_N=$n RUN_THREADS=3 run redis-1 "$((BASE + 1))" "$1" "$redis_pid"
  RUN_N=$n RUN_THREADS=3 RUN_CLUSTER=1 run redis-3 "$((BASE + 61))" "$1" "${rc_pids[@]}"
}

if [[ $REDIS_CLUSTER == 1 ]]; then
  out=$(repeat "redis-benchmark --cluster" cluster_round | medians)
  mapfile -t cres <<<"$out"
  echo
  echo "Redis Cluster reference: redis-benchmark -t set,get -n $N*max(2,P) -c $C -d $D -r $R; redis-1 is one redis-server, redis-3 three cluster shards driven with --cluster (each command straight to its key's shard), both with --threads 3 (--cluster runs a thread per shard); xredis against the first table's redis row (one thread); medians of $ROUNDS rounds; $placement"
  rows "${cres[@]}"
fi

[[ $NATIVE == 1 ]] || exit 0

# native LABEL SMART P RATIO ADDR: prints "label P ops/s p50_us p99_us
# errors client_cpu" for a preloaded starling bench run (C clients, pipeline
# P, D-byte values, R keys); client_cpu is the percent of its cores the load
# generator kept busy during the timed run, at most 100 (-1 where the
# platform does not report it; the table then shows "-").
native() {
  local label=$1 smart=$2 p=$3 ratio=$4 addr=$5
  ${on_load[@]+"${on_load[@]}"} "$work/starling" bench --addr "$addr" --smart="$smart" --clients "$C" --pipeline "$p" \
    --requests "$N" --keys "$R" --value-size "$D" --ratio "$ratio" --preload --replicas "$REPLICAS" --json 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; l=r["latency"]
busy = min(r["cpu_ns"] / r["elapsed_ns"] / r["cores"] * 100, 100) if r.get("cpu_ns") and r.get("cores") and r["elapsed_ns"] else -1
print(sys.argv[1], sys.argv[2], "%.0f" % r["ops_per_sec"], "%.0f" % (l["p50_ns"]/1e3), "%.0f" % (l["p99_ns"]/1e3), r["errors"], "%.0f" % busy)' "$label" "$p"
}

nres=()
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS: starling bench..." >&2
  for p in $PIPELINES; do
    for mix in get:1:0 set:0:1; do
      op=${mix%%:*} ratio=${mix#*:}
      nres+=("$(native "$op/1-node" true "$p" "$ratio" "127.0.0.1:$((BASE + 10))")")
      nres+=("$(native "$op/3-smart" true "$p" "$ratio" "127.0.0.1:$((BASE + 11))")")
      nres+=("$(native "$op/3-forward" false "$p" "$ratio" "127.0.0.1:$((BASE + 11))")")
    done
  done
done
mapfile -t nres < <(printf '%s\n' "${nres[@]}" | medians)
echo
echo "starling bench --clients $C --requests $N --keys $R --value-size $D --preload (msgpack protocol, Go client); medians of $ROUNDS rounds; $placement"
echo "client_cpu: how busy the load generator kept its CPU(s) during the timed run, in percent; pinned, near 100 means the load generator, not the servers, set the pace (unpinned, sharing CPUs with the servers, it may set it from well below)"
printf '%-14s %3s %11s %8s %8s %7s %9s %11s\n' run P ops/s p50_us p99_us errors x1-node client_cpu
declare -A single
for line in "${nres[@]}"; do
  read -r label p ops p50 p99 errs busy <<<"$line"
  [[ $label == */1-node ]] && single[${label%%/*}$p]=$ops
  busy=$(awk -v b="$busy" 'BEGIN { if (b < 0) print "-"; else printf "%.0f%%", b }')
  printf '%-14s %3s %11s %8s %8s %7s %9.2f %11s\n' "$label" "$p" "$ops" "$p50" "$p99" "$errs" \
    "$(awk -v a="$ops" -v b="${single[${label%%/*}$p]}" 'BEGIN{print a/b}')" "$busy"
done
