#!/usr/bin/env bash
# Measures wsproxy beside nginx and beside the bare echo backend, on one machine, in one run.
#
#   examples/benchmark/run.sh            # the full run: 3 repetitions, 10 s windows, about 15 minutes
#   examples/benchmark/run.sh --quick    # proves the harness end to end in about 2.5 minutes; figures are rough
#   examples/benchmark/run.sh --help     # every option
#
# What it does (see docs/benchmarks.md):
#   - installs nginx from Debian's packages when it is missing (without starting Debian's nginx service);
#   - writes an nginx config as the nginx WebSocket guide recommends, in a temp dir, and runs nginx from there;
#   - starts the echo backend, wsproxy (ProxyMain) and nginx on loopback ports, the proxies pinned to one core and
#     the backend and the load generator to the other (taskset);
#   - runs every workload against direct (the backend itself: the physical limit), wsproxy and nginx, alternating
#     the targets for each repetition, after a warm-up of the wsproxy JVM;
#   - prints Markdown tables of medians (min–max) with ratios to nginx, and keeps them with the raw runs in --out;
#   - stops everything it started when it exits, whatever the reason.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
JAR="$HERE/target/wsproxy-benchmark.jar"

REPS=3
DURATION=10
RUN_WARMUP=3
IDLE_SETTLE=1
WARMUP=30
WORKLOADS=text64x1,text64x50,text64x500,bin16kx50,bin1mx4,storm,idle1k,idle10k
TARGETS=direct,wsproxy,nginx
PORT_BASE=19000
PROXY_CPU=0
LOAD_CPU=1
SOURCE_ADDRESSES=127.0.0.2-127.0.0.5
PROXY_JVM_OPTS="-Xms512m -Xmx512m -XX:+UseParallelGC -XX:+AlwaysPreTouch"
BACKEND_JVM_OPTS="-Xms1g -Xmx1g -XX:+UseParallelGC -XX:+AlwaysPreTouch"
LOAD_JVM_OPTS="-Xms1g -Xmx1g -XX:+UseParallelGC"
VARIANTS=()
OUT=""
BUILD=auto
INSTALL=yes
MAX_TOTAL=1800
JIT_SETTLE=()

usage() {
    cat <<EOF
usage: $0 [options]
  --quick                 2 repetitions, 1.5 s windows, 0.5 s run warm-up, 10 s JVM warm-up (about 2.5 minutes)
  --reps N                repetitions of each workload per target (default $REPS)
  --duration S            measured window of each run, seconds (default $DURATION)
  --run-warmup S          load before each measured window, seconds (default $RUN_WARMUP)
  --idle-settle S         how long an idle hold holds its connections before memory is sampled, seconds (default
                          $IDLE_SETTLE); the proxy's CPU meanwhile is "proxy core % held" (keep-alive pings: 65)
  --warmup S              load on the wsproxy JVM before the first measured run, seconds (default $WARMUP);
                          then more rounds of 2 s per workload until a round compiles for less than 100 ms
                          (the JIT has settled), at most 3 times --warmup
  --no-jit-settle         only the --warmup seconds, even if the JIT still compiles (--quick sets it)
  --workloads LIST        default $WORKLOADS;
                          also open-loop echoes at a fixed rate in messages/s: text64x50@10k, bin16kx50@2000
  --targets LIST          any of direct,wsproxy,nginx (default $TARGETS)
  --proxy-jvm-opts "..."  JVM flags of wsproxy (default "$PROXY_JVM_OPTS")
  --variant NAME="..."    one more wsproxy target with these JVM flags, measured in the same alternation
                          (repeatable; e.g. --variant wsproxy-g1="-Xms512m -Xmx512m -XX:+UseG1GC -XX:+AlwaysPreTouch";
                          with -cp OTHER.jar among them, another build of wsproxy-benchmark.jar: two versions of the
                          code side by side; after " -- ", options of the proxy itself: e.g.
                          --variant ping30="-Xms512m ... -- --ping-interval 30")
  --port-base N           ports N+1 (backend), N+2 (wsproxy), N+3 (nginx), N+101/N+102 (admin) (default $PORT_BASE)
  --out DIR               where the tables, raw runs and logs go (default examples/benchmark/target/bench-DATE)
  --build                 rebuild the jar (the default builds it only when it is missing)
  --no-install            never install nginx; skip the nginx target when it is missing
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) REPS=2; DURATION=1.5; RUN_WARMUP=0.5; WARMUP=10; MAX_TOTAL=600; JIT_SETTLE=(--no-jit-settle) ;;
        --no-jit-settle) JIT_SETTLE=(--no-jit-settle) ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --run-warmup) RUN_WARMUP=$2; shift ;;
        --idle-settle) IDLE_SETTLE=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --workloads) WORKLOADS=$2; shift ;;
        --targets) TARGETS=$2; shift ;;
        --proxy-jvm-opts) PROXY_JVM_OPTS=$2; shift ;;
        --variant) VARIANTS+=("$2"); shift ;;
        --port-base) PORT_BASE=$2; shift ;;
        --out) OUT=$2; shift ;;
        --build) BUILD=yes ;;
        --no-install) INSTALL=no ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

BACKEND_PORT=$((PORT_BASE + 1))
PROXY_PORT=$((PORT_BASE + 2))
NGINX_PORT=$((PORT_BASE + 3))
PROXY_ADMIN=$((PORT_BASE + 101))
BACKEND_ADMIN=$((PORT_BASE + 102))
has_target() { [[ ",$TARGETS," == *",$1,"* ]]; }
log() { echo "[run.sh] $*" >&2; }

# ---- everything started here is stopped on exit ----
PIDS=()
WORK=$(mktemp -d /tmp/wsproxy-bench.XXXXXX)
POLICY_RC_CREATED=no
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$POLICY_RC_CREATED" = yes ]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- preconditions ----
command -v java >/dev/null || { log "java not found"; exit 1; }
PIN=yes
if ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
    log "warning: fewer than 2 cores or no taskset: nothing is pinned, figures will mix the proxy with the load"
    PIN=no
fi
# Replaces the calling (sub)shell, so that "pin CPU cmd &" leaves the command's own pid in $!.
pin() { if [ "$PIN" = yes ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

# 10,000 held connections need about 20,000 descriptors in a proxy; children inherit this limit.
# Raising the hard limit needs CAP_SYS_RESOURCE; where it is missing, the idle hold holds what the limit allows.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "open files limit: $(ulimit -n)"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $BACKEND_PORT $PROXY_PORT $NGINX_PORT $PROXY_ADMIN $BACKEND_ADMIN; do
    port_free "$p" || { log "port $p is in use: pick another --port-base"; exit 1; }
done
wait_port() {
    for _ in $(seq 300); do
        port_free "$1" || return 0
        kill -0 "$2" 2>/dev/null || { log "$3 exited early; its log:"; cat "$4" >&2; exit 1; }
        sleep 0.1
    done
    log "$3 did not listen on port $1 within 30 s"; exit 1
}

# ---- the jar ----
if [ "$BUILD" = yes ] || [ ! -f "$JAR" ]; then
    log "building the benchmark jar (wsproxy library, then this module)"
    (cd "$ROOT" && mvn -q -B -DskipTests install -pl lib)
    (cd "$ROOT" && mvn -q -B -DskipTests -f examples/benchmark/pom.xml package)
fi

# ---- nginx from Debian's packages ----
if has_target nginx && ! command -v nginx >/dev/null; then
    if [ "$INSTALL" = yes ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        log "installing nginx from Debian's packages"
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            # Keep the package from starting Debian's own nginx service on port 80.
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            POLICY_RC_CREATED=yes
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
    else
        log "warning: nginx is missing and cannot be installed here: no nginx target"
        TARGETS=$(echo ",$TARGETS," | sed 's/,nginx,/,/; s/^,//; s/,$//')
    fi
fi

if [ -z "$OUT" ]; then
    OUT="$HERE/target/bench-$(date +%Y%m%d-%H%M%S)"
fi
mkdir -p "$OUT"

# ---- the machine ----
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cores: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); kernel: $(uname -r)"
    echo "java: $(java -version 2>&1 | head -1)"
    if command -v nginx >/dev/null; then echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"; fi
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "pinning: $([ "$PIN" = yes ] && echo "proxies on CPU $PROXY_CPU, backend and generator on CPU $LOAD_CPU" || echo none)"
    echo "wsproxy JVM: $PROXY_JVM_OPTS"
    for v in "${VARIANTS[@]}"; do echo "variant: $v"; done
    echo "reps=$REPS duration=${DURATION}s run-warmup=${RUN_WARMUP}s warmup=${WARMUP}s idle-settle=${IDLE_SETTLE}s targets=$TARGETS"
} | tee "$OUT/machine.txt" >&2

# ---- the processes under test ----
log "starting the echo backend on $BACKEND_PORT (CPU $LOAD_CPU)"
# shellcheck disable=SC2086
pin "$LOAD_CPU" java $BACKEND_JVM_OPTS -jar "$JAR" backend --port "$BACKEND_PORT" --admin-port "$BACKEND_ADMIN" \
    > "$OUT/backend.log" 2>&1 &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_port "$BACKEND_PORT" "$BACKEND_PID" backend "$OUT/backend.log"

SUITE_TARGETS=()
start_wsproxy() { # NAME PORT ADMIN_PORT "JVM_OPTS [-- PROXY_ARGS]"
    local name=$1 port=$2 admin=$3 opts=$4 args="" flags=""
    if [[ " $opts " == *" -- "* ]]; then # JVM flags -- the proxy's own options
        args=" $opts "
        opts=${args%%" -- "*}
        args=${args#*" -- "}
    fi
    log "starting $name on $port (CPU $PROXY_CPU): $opts"
    # The access log is off, as in the nginx config: one line per session would be measured too.
    # The class path comes before the flags, so that a variant's own -cp (another build's jar) wins: the launcher
    # takes the last one.
    # shellcheck disable=SC2086
    pin "$PROXY_CPU" java -cp "$JAR" $opts -Dorg.slf4j.simpleLogger.log.dev.wsproxy.access=warn \
        dev.wsproxy.benchmark.Main proxy --port "$port" --backend-port "$BACKEND_PORT" --admin-port "$admin" $args \
        > "$OUT/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_port "$port" "$pid" "$name" "$OUT/$name.log"
    [[ "$opts" == *AlwaysPreTouch* ]] && flags=",pretouch"
    SUITE_TARGETS+=(--target "$name=ws://127.0.0.1:$port/,pid=$pid,admin=$admin$flags,warmup")
}
if has_target direct; then
    SUITE_TARGETS+=(--target "direct=ws://127.0.0.1:$BACKEND_PORT/")
fi
if has_target wsproxy; then
    start_wsproxy wsproxy "$PROXY_PORT" "$PROXY_ADMIN" "$PROXY_JVM_OPTS"
fi
for i in "${!VARIANTS[@]}"; do
    for p in $((PORT_BASE + 10 + i)) $((PORT_BASE + 110 + i)); do
        port_free "$p" || { log "port $p is in use: pick another --port-base"; exit 1; }
    done
    start_wsproxy "${VARIANTS[$i]%%=*}" $((PORT_BASE + 10 + i)) $((PORT_BASE + 110 + i)) "${VARIANTS[$i]#*=}"
done
if has_target nginx; then
    NGINX_DIR="$WORK/nginx"
    mkdir -p "$NGINX_DIR/conf" "$NGINX_DIR/logs" "$NGINX_DIR/tmp"
    # One descriptor per connection on each side: 10,000 pairs need 20,000 (and this limit when it is lower).
    NGINX_FILES=$(ulimit -Hn)
    if [ "$NGINX_FILES" = unlimited ] || [ "$NGINX_FILES" -gt 65536 ]; then
        NGINX_FILES=65536
    fi
    NGINX_USER="nobody nogroup"
    id www-data >/dev/null 2>&1 && NGINX_USER="www-data"
    # The nginx WebSocket guide's proxy (nginx.org/en/docs/http/websocket.html): HTTP/1.1 to the backend, the
    # Upgrade/Connection map, long read/send timeouts; one worker, enough descriptors for 10,000 proxied pairs.
    cat > "$NGINX_DIR/conf/nginx.conf" <<EOF
user $NGINX_USER;
worker_processes 1;
worker_rlimit_nofile $NGINX_FILES;
daemon off;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log warn;

events {
    worker_connections $NGINX_FILES;
}

http {
    access_log off;
    client_body_temp_path $NGINX_DIR/tmp/body;
    proxy_temp_path $NGINX_DIR/tmp/proxy;
    fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
    uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
    scgi_temp_path $NGINX_DIR/tmp/scgi;

    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      close;
    }

    server {
        listen 127.0.0.1:$NGINX_PORT;

        location / {
            proxy_pass http://127.0.0.1:$BACKEND_PORT;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }
    }
}
EOF
    cp "$NGINX_DIR/conf/nginx.conf" "$OUT/nginx.conf"
    log "starting nginx on $NGINX_PORT (CPU $PROXY_CPU)"
    pin "$PROXY_CPU" nginx -p "$NGINX_DIR/" -c conf/nginx.conf -e "$NGINX_DIR/logs/error.log" \
        > "$OUT/nginx.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_port "$NGINX_PORT" "$NGINX_PID" nginx "$OUT/nginx.log"
    SUITE_TARGETS+=(--target "nginx=ws://127.0.0.1:$NGINX_PORT/,pid=$NGINX_PID")
fi
BASELINE=nginx
has_target nginx || BASELINE=wsproxy

# ---- the suite (bounded: --max-total inside, timeout outside) ----
log "running the suite; progress below, tables at the end and in $OUT/table.md"
# shellcheck disable=SC2086
(pin "$LOAD_CPU" timeout --kill-after=30 $((MAX_TOTAL + 300)) java $LOAD_JVM_OPTS -jar "$JAR" suite \
    "${SUITE_TARGETS[@]}" --workloads "$WORKLOADS" --reps "$REPS" --duration "$DURATION" \
    --run-warmup "$RUN_WARMUP" --warmup "$WARMUP" --idle-settle "$IDLE_SETTLE" --source-addresses "$SOURCE_ADDRESSES" \
    --baseline "$BASELINE" --max-total "$MAX_TOTAL" --out "$OUT/runs.tsv" ${JIT_SETTLE[@]+"${JIT_SETTLE[@]}"} \
    > "$OUT/table.md" 2> >(tee "$OUT/progress.log" >&2))
if [ -n "${NGINX_DIR:-}" ] && [ -f "$NGINX_DIR/logs/error.log" ]; then
    cp "$NGINX_DIR/logs/error.log" "$OUT/nginx-error.log"
fi
echo
cat "$OUT/machine.txt"
echo
cat "$OUT/table.md"
log "results in $OUT"
