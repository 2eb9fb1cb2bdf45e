#!/usr/bin/env bash
# cluster.sh — run a local multi-process starling cluster on 127.0.0.1.
#
#   scripts/cluster.sh up [N]     build the binary, start N nodes (default 3), wait until
#                                 every node sees all N members, print their addresses
#   scripts/cluster.sh down       stop every node this script started (by recorded PID)
#   scripts/cluster.sh status     show which nodes are up and the members node 1 sees
#   scripts/cluster.sh kill I     kill -9 node I (simulate a crash)
#   scripts/cluster.sh start I    (re)start node I with the same name and ports, wait until
#                                 it sees every running node
#
# Environment (all optional):
#   STARLING_CLUSTER_DIR   where PIDs, logs and the binary go   (default: <repo>/.cluster)
#   STARLING_DATA_PORT     data port of node 1; node I uses +I-1 (default: 7001)
#   STARLING_GOSSIP_PORT   gossip port of node 1; node I uses +I-1 (default: 7946)
#   STARLING_RESP_PORT     RESP (Redis protocol) port of node 1; node I uses +I-1 (default: 6380)
#   STARLING_HTTP_PORT     HTTP (metrics, status page) port of node 1; node I uses +I-1 (default: 8001)
#   STARLING_GOSSIP_PROFILE  lan or local (default: local — sub-second failure detection)
#   STARLING_WAIT          seconds to wait for convergence      (default: 60)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${STARLING_CLUSTER_DIR:-$repo/.cluster}
data_base=${STARLING_DATA_PORT:-7001}
gossip_base=${STARLING_GOSSIP_PORT:-7946}
resp_base=${STARLING_RESP_PORT:-6380}
http_base=${STARLING_HTTP_PORT:-8001}
profile=${STARLING_GOSSIP_PROFILE:-local}
wait_secs=${STARLING_WAIT:-60}
bin=$dir/starling

die() { echo "cluster.sh: $*" >&2; exit 1; }

data_addr()   { echo "127.0.0.1:$((data_base + $1 - 1))"; }
gossip_addr() { echo "127.0.0.1:$((gossip_base + $1 - 1))"; }
resp_addr()   { echo "127.0.0.1:$((resp_base + $1 - 1))"; }
http_addr()   { echo "127.0.0.1:$((http_base + $1 - 1))"; }

# alive I: true if node I's recorded PID is a running starling we started.
alive() {
  local pidf=$dir/node$1.pid pid
  [[ -f $pidf ]] || return 1
  pid=$(<"$pidf")
  [[ -n $pid ]] || return 1
  # The command line guards against a PID reused since the node died: it
  # must be this node's (--name nodeI), not merely some starling's. For a
  # moment after a start it is not starling's yet (the shell has forked
  # but not executed it), and it reads empty while a node executes itself
  # again (--sysmon): look a few times before calling the node gone.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    kill -0 "$pid" 2>/dev/null || return 1
    # A node killed a moment ago may linger as a zombie: gone already.
    [[ $(proc_state "$pid") == Z ]] && return 1
    [[ $'\n'$(proc_args "$pid")$'\n' == *$'\n--name\nnode'"$1"$'\n'* ]] && return 0
    sleep 0.05
  done
  return 1
}

# proc_state PID and proc_args PID (one argument per line) read /proc
# where there is one, and ps elsewhere (macOS, BSD). ps joins arguments
# with spaces, which is the same here: no argument this script passes
# has one.
proc_state() {
  if [[ -r /proc/$1/stat ]]; then
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1
  else
    ps -o state= -p "$1" 2>/dev/null | cut -c1
  fi
}
proc_args() {
  if [[ -d /proc/$1 ]]; then
    tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null
  else
    ps -o args= -p "$1" 2>/dev/null | tr ' ' '\n'
  fi
}

size() { [[ -f $dir/size ]] && cat "$dir/size" || echo 0; }

build() {
  mkdir -p "$dir"
  echo "building starling into $bin"
  (cd "$repo" && go build -o "$bin" ./cmd/starling)
}

start_node() {
  local i=$1 n seeds="" j
  n=$(size)
  (( i >= 1 && i <= n )) || die "node $i is not part of this cluster (size $n)"
  if alive "$i"; then echo "node$i already running (pid $(<"$dir/node$i.pid"))"; return; fi
  # Every node knows every other node as a seed, so any of them can restart
  # and find the cluster again whichever others are up.
  for ((j = 1; j <= n; j++)); do
    (( j == i )) && continue
    seeds+="${seeds:+,}$(gossip_addr "$j")"
  done
  "$bin" start --name "node$i" --addr "$(data_addr "$i")" --gossip-addr "$(gossip_addr "$i")" \
    --resp-addr "$(resp_addr "$i")" --http-addr "$(http_addr "$i")" \
    ${seeds:+--join "$seeds"} --gossip-profile "$profile" >>"$dir/node$i.log" 2>&1 &
  echo $! >"$dir/node$i.pid"
  echo "node$i started (pid $!)"
}

# sees I NAME...: node I answers and reports each NAME as an alive member.
# It may see others too, such as a node started by hand with --join.
sees() {
  local i=$1 seen name
  shift
  seen=$("$bin" members --addr "$(data_addr "$i")" --timeout 1s 2>/dev/null | awk 'NR > 1 && $4 == "alive" {print $1}') || return 1
  for name in "$@"; do
    grep -qx "$name" <<<"$seen" || return 1
  done
}

wait_converged() {
  local n=$1 deadline=$((SECONDS + wait_secs)) i ok names=()
  for ((i = 1; i <= n; i++)); do names+=("node$i"); done
  while :; do
    ok=1
    for ((i = 1; i <= n; i++)); do
      alive "$i" || die "node$i exited; see $dir/node$i.log"
      sees "$i" "${names[@]}" || { ok=0; break; }
    done
    (( ok )) && return 0
    (( SECONDS < deadline )) || die "nodes did not converge on $n members within ${wait_secs}s; logs in $dir"
    sleep 0.2
  done
}

# wait_rejoined I: wait until node I answers and sees every node of this
# cluster that is running, so that it is usable when `start` returns.
wait_rejoined() {
  local i=$1 n j names deadline=$((SECONDS + wait_secs))
  n=$(size)
  while :; do
    alive "$i" || die "node$i exited; see $dir/node$i.log"
    names=("node$i") # node I itself (alive above), then each other running node
    for ((j = 1; j <= n; j++)); do
      (( j != i )) && alive "$j" && names+=("node$j")
    done
    sees "$i" "${names[@]}" && { echo "node$i is up; it sees all ${#names[@]} running nodes"; return 0; }
    (( SECONDS < deadline )) || die "node$i did not see the ${#names[@]} running nodes (${names[*]}) within ${wait_secs}s; see $dir/node$i.log"
    sleep 0.2
  done
}

print_table() {
  local n i state
  n=$(size)
  printf '%-8s %-8s %-18s %-18s %-18s %-18s %s\n' NODE PID DATA RESP GOSSIP HTTP STATE
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then state=up; else state=down; fi
    printf '%-8s %-8s %-18s %-18s %-18s %-18s %s\n' "node$i" "$(cat "$dir/node$i.pid" 2>/dev/null || echo -)" \
      "$(data_addr "$i")" "$(resp_addr "$i")" "$(gossip_addr "$i")" "$(http_addr "$i")" "$state"
  done
}

cmd_up() {
  local n=${1:-3} i
  [[ $n =~ ^[0-9]+$ ]] && (( n >= 1 )) || die "usage: cluster.sh up [N>=1]"
  local cur; cur=$(size)
  for ((i = 1; i <= cur; i++)); do
    alive "$i" && die "a cluster is already running (node$i is up); run 'scripts/cluster.sh down' first"
  done
  build
  echo "$n" >"$dir/size"
  for ((i = 1; i <= n; i++)); do : >"$dir/node$i.log"; start_node "$i"; done
  echo "waiting for all $n nodes to see each other..."
  wait_converged "$n"
  echo "cluster is up; logs and PIDs in $dir"
  print_table
  echo
  echo "try: $bin set --addr $(data_addr 1) --ttl 30s greeting hello"
  echo "     $bin get --addr $(data_addr "$n") greeting"
  echo "     redis-cli -p ${resp_base} set k v   # any Redis client or tool, any node"
  echo "     open http://$(http_addr 1)/           # live status page; /metrics for Prometheus"
}

cmd_down() {
  local n i pid stopped=0 deadline
  local -a pids=()
  n=$(size)
  # Signal every node first: nodes leaving together see one another
  # leaving and skip handing keys to each other (the whole cluster is
  # going), where stopping them one by one would move every key to the
  # survivors, again and again.
  for ((i = 1; i <= n; i++)); do
    pids[i]=
    if alive "$i"; then
      pids[i]=$(<"$dir/node$i.pid")
      kill -TERM "${pids[i]}" 2>/dev/null || true # it may have exited meanwhile
    fi
  done
  deadline=$((SECONDS + 40))
  for ((i = 1; i <= n; i++)); do
    pid=${pids[i]}
    if [[ -n $pid ]]; then
      while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
      stopped=$((stopped + 1))
      echo "node$i stopped (pid $pid)"
    fi
    rm -f "$dir/node$i.pid"
  done
  rm -f "$dir/size"
  echo "stopped $stopped node(s)"
}

cmd_status() {
  local n; n=$(size)
  (( n > 0 )) || { echo "no cluster (run: scripts/cluster.sh up 3)"; return 0; }
  print_table
  local i
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then
      echo; echo "members seen by node$i:"
      "$bin" members --addr "$(data_addr "$i")" --timeout 2s || true
      return 0
    fi
  done
}

cmd_kill() {
  local i=${1:?usage: cluster.sh kill I}
  alive "$i" || die "node$i is not running"
  kill -KILL "$(<"$dir/node$i.pid")"
  echo "node$i killed (kill -9)"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill) shift; cmd_kill "$@" ;;
  start) shift; [[ -x $bin ]] || build; start_node "${1:?usage: cluster.sh start I}"; wait_rejoined "$1" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
