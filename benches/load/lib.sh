# shellcheck shell=bash disable=SC2034  # globals set here are read by the scripts that source it
# lib.sh — helpers shared by benches/load/*.sh. Source it, don't run it.
#
# Conventions every script follows:
#   * traffic only to 127.0.0.1, on random free ports below the ephemeral range;
#   * every process started is recorded and killed by the EXIT trap (also on Ctrl-C / error);
#   * every wait and every load run is bounded in time;
#   * the system under test (SUT) is pinned to SUT_CPU, load generators and the upstream
#     nginx to LOADGEN_CPU;
#   * progress goes to stderr, results (Markdown) to stdout and, when RESULTS is set, are
#     appended to that file.

set -Eeuo pipefail

# The command line as typed, with the knobs that were set in the environment (computed before
# any default is filled in below).
bench_command_line() {
    local knobs=() v
    for v in QUICK DURATION ROUNDS CONNS WARMUP WRK_THREADS TARGETS LOGIN_CONNS GET_CONNS \
             CONN_COUNT CONN_PARALLEL PARTS STORE TOKENS WORKERS ALGS CRITERION_US LOAD_CONNS USERS SESSIONS BACKENDS BASELINE_BIN SETTLE CALLGRIND_DURATION PG_FILL SLED_FILL START_FRESH IDLE_WAIT TRIALS DISABLE_TRIALS REFRESH_CONNS PG_FSYNC SUT_CPU LOADGEN_CPU GATEHOUSE_BIN BUILD GH_LOG_LEVEL RESULTS; do
        if [[ -n ${!v+x} ]]; then knobs+=("$v=$(printf '%q' "${!v}")"); fi
    done
    printf '%s' "${knobs[*]:-}${knobs[*]:+ }bash benches/load/$(basename "$0")${*:+ }$*"
}
BENCH_CMD=$(bench_command_line "$@")

LOAD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LOAD_DIR/../.." && pwd)

LOADGEN_CPU=${LOADGEN_CPU:-0}          # wrk, python clients, upstream nginx
SUT_CPU=${SUT_CPU:-1}                  # the proxy being measured
WRK_THREADS=${WRK_THREADS:-1}
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$REPO_ROOT/target/release/gatehouse}
BUILD=${BUILD:-auto}                   # auto: build only if the binary is missing; 1: always; 0: never
GH_LOG_LEVEL=${GH_LOG_LEVEL:-warn}     # warn: no per-request access lines (nginx/haproxy log nothing either)
BENCH_USER=bench
BENCH_PASSWORD=password123

BENCH_PIDS=()
BENCH_PORTS=()
BENCH_TMP=
CLK_TCK=$(getconf CLK_TCK)

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die()  { log "ERROR: $*"; exit 1; }


# ---------------------------------------------------------------- setup and cleanup

need_cmd() {
    local missing=() c
    for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
    if ((${#missing[@]})); then
        die "missing: ${missing[*]} — on Debian: apt-get update && apt-get install -y nginx haproxy wrk curl python3 util-linux iproute2"
    fi
}

bench_init() {
    need_cmd taskset curl python3 ss getconf
    local ncpu
    ncpu=$(nproc --all)
    if ((SUT_CPU >= ncpu || LOADGEN_CPU >= ncpu)); then
        die "this machine has $ncpu CPU(s); SUT_CPU=$SUT_CPU and LOADGEN_CPU=$LOADGEN_CPU must exist"
    fi
    if ((SUT_CPU == LOADGEN_CPU)); then warn "SUT_CPU == LOADGEN_CPU: the SUT shares its core with the load generator"; fi
    BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench.XXXXXX")
    trap bench_cleanup EXIT
    trap 'log "interrupted"; exit 130' INT
    trap 'log "terminated"; exit 143' TERM HUP
    trap 'log "failed at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND"' ERR
    # Many keep-alive sockets on both sides: take as many descriptors as the hard limit allows.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    BENCH_NOFILE=$(ulimit -n)
    BENCH_SECRET=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')   # 48 bytes
    export BENCH_SECRET
    local load
    read -r load _ < /proc/loadavg
    BENCH_LOADAVG=$load
    if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
        warn "load average is $load before starting: other work on this machine will distort the numbers"
    fi
    log "temp dir $BENCH_TMP; SUT on CPU $SUT_CPU, load generator + upstream on CPU $LOADGEN_CPU; nofile=$BENCH_NOFILE"
}

# All descendants of the given pids, the pids included.
proc_tree() {
    local p c
    for p in "$@"; do
        [[ -d /proc/$p ]] || continue
        echo "$p"
        for c in $(pgrep -P "$p" 2>/dev/null || true); do proc_tree "$c"; done
    done
}

bench_cleanup() {
    local rc=$? all=() p i
    trap - EXIT INT TERM HUP
    set +e
    if ((${#BENCH_PIDS[@]})); then
        mapfile -t all < <(proc_tree "${BENCH_PIDS[@]}")
        if ((${#all[@]})); then
            log "stopping ${#all[@]} process(es): ${all[*]}"
            kill -TERM "${all[@]}" 2>/dev/null
            for ((i = 0; i < 50; i++)); do
                local alive=0
                for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
                ((alive)) || break
                sleep 0.1
            done
            for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null; done
        fi
        wait 2>/dev/null
    fi
    if [[ -n $BENCH_TMP && -d $BENCH_TMP ]]; then
        if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $BENCH_TMP"; else rm -rf "$BENCH_TMP"; fi
    fi
    exit "$rc"
}

# Start a background process pinned to a CPU; its pid is left in LAST_PID.
#   start_pinned CPU LOGFILE cmd [args...]
start_pinned() {
    local cpu=$1 logfile=$2
    shift 2
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS+=("$LAST_PID")
}

# Move a running process tree (every thread) to another CPU.
repin() {
    local cpu=$1 p
    shift
    for p in $(proc_tree "$@"); do taskset -a -p -c "$cpu" "$p" >/dev/null; done
}

# pick_port VAR: a random port below the ephemeral range that nothing uses now.
pick_port() {
    local -n _out=$1
    local lo hi base span p i used u
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range
    base=10000 hi=$((lo - 1))
    if ((hi - base < 1000)); then base=$((hi + 2 > 61000 ? hi + 2 : 61000)) hi=65000; fi
    span=$((hi - base))
    for ((i = 0; i < 200; i++)); do
        p=$((base + ((RANDOM << 15) | RANDOM) % span))
        used=0
        if ((${#BENCH_PORTS[@]})); then
            for u in "${BENCH_PORTS[@]}"; do ((u == p)) && used=1; done
        fi
        ((used)) && continue
        if [[ -z $(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null) ]]; then
            BENCH_PORTS+=("$p")
            _out=$p
            return 0
        fi
    done
    die "no free port found"
}

# HTTP status of a request (000 when nothing answered); extra args go to curl.
http_status() {
    curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$@" || true
}

# wait_http URL WANT_STATUS TIMEOUT_S [PID]: poll until URL answers WANT_STATUS; false if it
# does not within the deadline or if PID dies first.
wait_http() {
    local url=$1 want=$2 timeout=$3 pid=${4:-} deadline code
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$url" || true)
        [[ $code == "$want" ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- CPU and memory accounting

# utime+stime in clock ticks, summed over the pids and all their descendants (all threads).
cpu_ticks() {
    local total=0 p stat rest f
    for p in $(proc_tree "$@"); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) }          # skip "pid (comm) " — comm may contain spaces
        read -r -a f <<<"$rest"    # f[0] is field 3 (state); utime is field 14, stime 15
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# Busy clock ticks of one CPU so far (all processes, interrupts included), from /proc/stat.
cpu_core_busy_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# VmRSS in KiB, summed over the pids and their descendants.
rss_kib() {
    local total=0 p v
    for p in $(proc_tree "$@"); do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------- the upstream and the proxies

nginx_common_conf() {   # nginx_common_conf DIR — top of an nginx.conf, one worker
    local dir=$1 user_line=
    mkdir -p "$dir/tmp"
    # as root, keep the worker as root too so it can use the private temp dir
    if ((EUID == 0)); then user_line='user root root;'; fi
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $BENCH_NOFILE;
$user_line
events { worker_connections $((BENCH_NOFILE / 2)); }
EOF
}

nginx_http_common() {   # nginx_http_common DIR — shared lines inside http {}
    local dir=$1
    cat <<EOF
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type text/plain;
EOF
}

nginx_start() {   # nginx_start NAME DIR CPU PORT — conf already in DIR/nginx.conf; sets LAST_PID
    local name=$1 dir=$2 cpu=$3 port=$4
    need_cmd nginx
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$dir/check.log" \
        || { cat "$dir/check.log" >&2; die "$name: nginx config rejected"; }
    start_pinned "$cpu" "$dir/stdout.log" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    local pid=$LAST_PID
    wait_http "http://127.0.0.1:$port/hello" 200 10 "$pid" \
        || { tail -n 20 "$dir/error.log" >&2 || true; die "$name did not start on 127.0.0.1:$port"; }
    LAST_PID=$pid
}

# The upstream: nginx answering GET /hello with a small 200 body, keep-alive on. It echoes the
# X-Auth-Subject it received as X-Seen-Subject so the harness can see identity headers arrive.
upstream_start() {   # upstream_start [NAME [CPU]] — sets UP_PORT UP_PID
    local name=${1:-upstream} cpu=${2:-$LOADGEN_CPU}
    local dir=$BENCH_TMP/$name
    mkdir -p "$dir"
    pick_port UP_PORT
    {
        nginx_common_conf "$dir"
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    server {
        listen 127.0.0.1:$UP_PORT backlog=4096;
        location / {
            add_header X-Seen-Subject \$http_x_auth_subject;
            return 200 "hello\n";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx_start "$name" "$dir" "$cpu" "$UP_PORT"
    UP_PID=$LAST_PID
    log "$name nginx: pid $UP_PID on 127.0.0.1:$UP_PORT (CPU $cpu)"
}

# nginx as a plain reverse proxy to the upstream, pooled upstream keep-alive.
nginx_proxy_start() {   # sets NGX_PORT NGX_PID
    local dir=$BENCH_TMP/nginx-proxy
    mkdir -p "$dir"
    pick_port NGX_PORT
    {
        nginx_common_conf "$dir"
        echo "http {"
        nginx_http_common "$dir"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$UP_PORT;
        keepalive 128;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    nginx_start nginx-proxy "$dir" "$SUT_CPU" "$NGX_PORT"
    NGX_PID=$LAST_PID
    log "nginx proxy: pid $NGX_PID on 127.0.0.1:$NGX_PORT (CPU $SUT_CPU)"
}

# HAProxy validating the HS256 token itself, then proxying with identity header.
haproxy_start() {   # haproxy_start ISSUER AUDIENCE — sets HAP_PORT HAP_PID
    local iss=$1 aud=$2 dir=$BENCH_TMP/haproxy
    need_cmd haproxy
    mkdir -p "$dir"
    pick_port HAP_PORT
    cat >"$dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $(((BENCH_NOFILE - 200) / 2))

defaults
    mode http
    option forwardfor
    timeout connect 2s
    timeout client 300s
    timeout server 60s
    timeout http-keep-alive 300s
    timeout http-request 10s

frontend fe
    bind 127.0.0.1:$HAP_PORT
    # never let a client-supplied identity through
    http-request del-header X-Auth-Subject
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny status 401 unless { var(txn.bearer) -m found }
    http-request deny status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str HS256 }
    http-request deny status 401 unless { var(txn.bearer),jwt_verify("HS256","$BENCH_SECRET") -m int 1 }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date
    http-request deny status 401 unless { var(txn.exp) -m found }
    http-request deny status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
    http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $iss }
    http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $aud }
    http-request set-header X-Auth-Subject %[var(txn.bearer),jwt_payload_query('\$.sub')]
    default_backend upstream

backend upstream
    http-reuse always
    server up 127.0.0.1:$UP_PORT
EOF
    haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
        || { cat "$dir/check.log" >&2; die "haproxy config rejected"; }
    start_pinned "$SUT_CPU" "$dir/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
    HAP_PID=$LAST_PID
    # no token → 401 is the readiness signal
    wait_http "http://127.0.0.1:$HAP_PORT/hello" 401 10 "$HAP_PID" \
        || { tail -n 20 "$dir/haproxy.log" >&2 || true; die "haproxy did not start on 127.0.0.1:$HAP_PORT"; }
    log "haproxy: pid $HAP_PID on 127.0.0.1:$HAP_PORT (CPU $SUT_CPU, nbthread 1)"
}

# ---------------------------------------------------------------- tokens

mint_token() { python3 "$LOAD_DIR/jwt.py" mint "$@"; }
tamper_token() { python3 "$LOAD_DIR/jwt.py" tamper "$1"; }
token_claim() { python3 "$LOAD_DIR/jwt.py" claim "$1" "$2"; }

# check_auth NAME URL GOOD_TOKEN: the token gate must refuse what it should and pass the good
# token with its subject forwarded. Returns non-zero (after logging why) on any mismatch.
check_auth() {
    local name=$1 url=$2 good=$3 sub code seen ok=0 bad tok label
    sub=$(token_claim "$good" sub)
    local -a cases=(
        "missing token|"
        "tampered signature|$(tamper_token "$good")"
        "alg none|$(mint_token --alg none --sub "$sub")"
        "expired|$(mint_token --ttl -3600 --sub "$sub")"
        "wrong issuer|$(mint_token --iss not-bench --sub "$sub")"
        "wrong audience|$(mint_token --aud not-bench --sub "$sub")"
    )
    for bad in "${cases[@]}"; do
        label=${bad%%|*} tok=${bad#*|}
        if [[ -z $tok ]]; then
            code=$(http_status "$url")
        else
            code=$(http_status -H "Authorization: Bearer $tok" "$url")
        fi
        if [[ $code == 401 ]]; then
            log "  $name: $label → 401 ok"
        else
            log "  $name: $label → $code, expected 401"; ok=1
        fi
    done
    code=$(http_status -H "Authorization: Bearer $good" -H "X-Auth-Subject: forged" "$url")
    seen=$(curl -s -D - -o /dev/null --max-time 5 -H "Authorization: Bearer $good" \
        -H "X-Auth-Subject: forged" "$url" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-seen-subject" { print $2 }')
    if [[ $code == 200 && $seen == "$sub" ]]; then
        log "  $name: good token → 200, upstream saw X-Auth-Subject=$seen ok"
    else
        log "  $name: good token → $code, upstream saw X-Auth-Subject='$seen' (want 200 and '$sub')"; ok=1
    fi
    return $ok
}

# ---------------------------------------------------------------- gatehouse

# bench_toml_common [UPSTREAM_PORT]: the end every bench gateway.toml shares — identity
# header, log level, brute-force limits lifted, the default upstream (UPSTREAM_PORT, else
# $UP_PORT). Used inside a config heredoc.
# shellcheck disable=SC2120  # replicas.sh passes a port; the others take $UP_PORT
bench_toml_common() {
    local upstream_port=${1:-$UP_PORT}
    cat <<EOF
[headers]
subject = "X-Auth-Subject"

[log]
level = "$GH_LOG_LEVEL"

# The benches measure argon2 load, not brute-force regulation: with the default limits,
# a flood of logins from one address is answered 429 before any hashing (every admitted
# attempt counts against the address; a success resets only the username's count).
[login]
max_failures = 1000000
max_failures_per_address = 1000000

[upstreams.default]
url = "http://127.0.0.1:$upstream_port"
EOF
}

# gatehouse_build: make sure the binary exists (BUILD=auto builds it only when missing).
# Returns non-zero with GH_SKIP_REASON set when there is no usable binary.
gatehouse_build() {
    GH_SKIP_REASON=
    local blog=$BENCH_TMP/cargo-build.log
    if [[ $BUILD == 1 || ($BUILD == auto && ! -x $GATEHOUSE_BIN) ]]; then
        if [[ $GATEHOUSE_BIN != "$REPO_ROOT/target/release/gatehouse" ]]; then
            [[ -x $GATEHOUSE_BIN ]] || { GH_SKIP_REASON="GATEHOUSE_BIN=$GATEHOUSE_BIN is not executable"; return 1; }
        elif ! command -v cargo >/dev/null 2>&1; then
            GH_SKIP_REASON="cargo not found and $GATEHOUSE_BIN missing"; return 1
        else
            log "building gatehouse: cargo build --release (log: $blog)"
            if ! (cd "$REPO_ROOT" && timeout 1800 cargo build --release) >"$blog" 2>&1; then
                tail -n 15 "$blog" >&2
                GH_SKIP_REASON="cargo build --release failed (code mid-edit?) — see the errors above"
                return 1
            fi
        fi
    fi
    [[ -x $GATEHOUSE_BIN ]] || { GH_SKIP_REASON="$GATEHOUSE_BIN missing (BUILD=$BUILD)"; return 1; }
    local stale
    stale=$(gatehouse_stale_source)
    if [[ -n $stale ]]; then warn "gatehouse binary is older than $stale: measuring a stale build (BUILD=1 rebuilds)"; fi
    return 0
}

# Sources changed after the binary was built? (prints the first newer file, if any)
gatehouse_stale_source() {
    [[ $GATEHOUSE_BIN == "$REPO_ROOT/target/release/gatehouse" && -x $GATEHOUSE_BIN ]] || return 0
    (cd "$REPO_ROOT" && find src Cargo.toml Cargo.lock -newer "$GATEHOUSE_BIN" -type f -print -quit 2>/dev/null) || true
}

gatehouse_rev() {
    local rev dirty='' mtime='' stale
    rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null) || rev="no-commit"
    if [[ -n $(git -C "$REPO_ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then dirty="+dirty"; fi
    if [[ -x $GATEHOUSE_BIN ]]; then mtime=", binary built $(date -r "$GATEHOUSE_BIN" '+%F %T')"; fi
    stale=$(gatehouse_stale_source)
    if [[ -n $stale ]]; then mtime+=" — STALE: $stale changed after the build (BUILD=1 rebuilds)"; fi
    if [[ $GATEHOUSE_BIN != "$REPO_ROOT/target/release/gatehouse" ]]; then
        # a binary from elsewhere: the tree's revision is the scripts', not necessarily the binary's
        echo "binary $GATEHOUSE_BIN${mtime#, binary}; bench scripts from tree $rev$dirty"
        return
    fi
    echo "tree $rev$dirty$mtime"
}

gatehouse_threads() { find "/proc/$GH_PID/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# gatehouse_start [EXTRA_SERVER_TOML_LINES]: config, user, start pinned, wait for /readyz, get a
# token. Sets GH_PORT GH_OPS_PORT GH_PID GH_CONF GH_TOKEN GH_TOKEN_SOURCE, and GH_READY_S (serve
# launched to /readyz 200, ±0.1 s). Returns non-zero with GH_SKIP_REASON set when gatehouse cannot
# be benchmarked. GH_NAME (default gatehouse) names its directory, so that several can run at once.
gatehouse_start() {
    local extra=${1:-} dir=$BENCH_TMP/${GH_NAME:-gatehouse} code body started
    GH_SKIP_REASON=
    mkdir -p "$dir"
    pick_port GH_PORT
    pick_port GH_OPS_PORT
    GH_CONF=$dir/gateway.toml
    cat >"$GH_CONF" <<EOF
[server]
listen = "127.0.0.1:$GH_PORT"
ops_listen = "127.0.0.1:$GH_OPS_PORT"
$extra

[store]
path = "$dir/data"
${GH_STORE_TOML:-}

[tokens]
issuer = "bench"
audience = "bench"
access_ttl = "24h"

$(bench_toml_common)
EOF
    # PostgreSQL (GH_STORE_TOML = 'backend = "postgres"', GATEHOUSE_STORE_URL exported): schema first.
    if [[ ${GH_STORE_TOML:-} == *postgres* ]]; then
        GATEHOUSE_SECRET=$BENCH_SECRET timeout 60 "$GATEHOUSE_BIN" migrate -c "$GH_CONF" >"$dir/migrate.log" 2>&1 \
            || { GH_SKIP_REASON="gatehouse migrate failed: $(tail -n 3 "$dir/migrate.log" | tr '\n' ' ')"; return 1; }
    fi
    # Accounts: the user must exist before the gateway opens the store.
    if printf '%s\n' "$BENCH_PASSWORD" | GATEHOUSE_SECRET=$BENCH_SECRET timeout 60 \
        "$GATEHOUSE_BIN" user add "$BENCH_USER" --password-stdin -c "$GH_CONF" >"$dir/user-add.log" 2>&1; then
        log "gatehouse: user '$BENCH_USER' created"
    else
        warn "gatehouse user add failed (accounts not landed yet?): $(tail -n 3 "$dir/user-add.log" | tr '\n' ' ')"
    fi
    started=$EPOCHREALTIME
    start_pinned "$SUT_CPU" "$dir/gatehouse.log" env GATEHOUSE_SECRET="$BENCH_SECRET" \
        "$GATEHOUSE_BIN" serve -c "$GH_CONF"
    GH_PID=$LAST_PID
    if ! wait_http "http://127.0.0.1:$GH_OPS_PORT/readyz" 200 30 "$GH_PID"; then
        tail -n 15 "$dir/gatehouse.log" >&2 || true
        GH_SKIP_REASON="gatehouse serve did not answer 200 on http://127.0.0.1:$GH_OPS_PORT/readyz within 30 s"
        return 1
    fi
    GH_READY_S=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    log "gatehouse: pid $GH_PID on 127.0.0.1:$GH_PORT, ops $GH_OPS_PORT (CPU $SUT_CPU, threads: $(gatehouse_threads))"
    body=$dir/login.json
    code=$(curl -s -o "$body" --max-time 30 -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
        "http://127.0.0.1:$GH_PORT/auth/login" || true)
    case $code in
        200)
            GH_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["access_token"])' "$body") \
                || { GH_SKIP_REASON="login answered 200 without an access_token"; return 1; }
            GH_TOKEN_SOURCE="POST /auth/login"
            ;;
        404)
            GH_TOKEN=$(mint_token --sub "$BENCH_USER")
            GH_TOKEN_SOURCE="self-minted (login answered 404: accounts not landed)"
            ;;
        *)
            GH_SKIP_REASON="POST /auth/login answered $code: $(head -c 300 "$body" 2>/dev/null)"
            return 1
            ;;
    esac
    log "gatehouse: token from $GH_TOKEN_SOURCE"
}

# ---------------------------------------------------------------- wrk

# run_wrk OUT CONNS DURATION_S URL [wrk args...] — pinned to LOADGEN_CPU, bounded by timeout.
run_wrk() {
    local out=$1 conns=$2 dur=$3 url=$4 threads=$WRK_THREADS
    shift 4
    ((threads > conns)) && threads=$conns
    # in the background + wait, so that a trapped Ctrl-C / TERM is handled at once
    timeout --kill-after=5 $((dur + 30)) taskset -c "$LOADGEN_CPU" \
        wrk -t"$threads" -c"$conns" -d"${dur}s" --latency "$@" "$url" >"$out" 2>&1 &
    local wpid=$!
    BENCH_PIDS+=("$wpid")
    wait "$wpid" || { cat "$out" >&2; die "wrk failed against $url"; }
}

# wrk_parse FILE: prints "rps requests p50_ms p99_ms non2xx socket_errors"
wrk_parse() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
            if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
            return v + 0
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /requests in/ { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
        END { printf "%s %s %.3f %.3f %d %d\n", rps + 0, reqs + 0, p50, p99, non2xx + 0, errs + 0 }
    ' "$1"
}

# ---------------------------------------------------------------- python venvs

# bench_venv NAME REQUIREMENTS — prints the python of a venv under target/bench-venv/NAME with
# REQUIREMENTS (pinned) installed; made (python3 -m venv, pip from the package index) when
# missing or older than the requirements file, reused otherwise. target/ is not committed.
bench_venv() {
    local name=$1 reqs=$2 dir=$REPO_ROOT/target/bench-venv/$1
    if [[ ! -x $dir/bin/python || $reqs -nt $dir/.installed ]]; then
        log "venv $name: installing $(grep -v '^#' "$reqs" | tr '\n' ' ') into $dir"
        rm -rf "$dir"
        python3 -m venv "$dir" >&2 || return 1
        "$dir/bin/pip" install -q -r "$reqs" >&2 || return 1
        touch "$dir/.installed"
    fi
    echo "$dir/bin/python"
}

# ---------------------------------------------------------------- reporting

versions_md() {
    local nginx_v haproxy_v wrk_v
    nginx_v=$(nginx -v 2>&1 | head -n 1 || true)
    haproxy_v=$(haproxy -v 2>/dev/null | head -n 1 || true)
    wrk_v=$(wrk -v 2>&1 | head -n 1 | sed 's/ *Copyright.*//' || true)
    cat <<EOF
- nginx: \`${nginx_v:-n/a}\`
- haproxy: \`${haproxy_v:-n/a}\`
- wrk: \`${wrk_v:-n/a}\`
- gatehouse: \`$(gatehouse_rev)\` ($GATEHOUSE_BIN)
- machine: $(nproc --all) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), load average at start $BENCH_LOADAVG, at end $(cut -d" " -f1 /proc/loadavg)
EOF
}

# emit_results TITLE MARKDOWN_FILE: print to stdout, append to $RESULTS with date/command/versions.
emit_results() {
    local title=$1 md=$2
    {
        echo
        echo "## $title — $(date '+%F %T %z')"
        echo
        echo "Command: \`$BENCH_CMD\`"
        echo
        versions_md
        echo
        cat "$md"
    } >"$BENCH_TMP/report.md"
    cat "$BENCH_TMP/report.md"
    if [[ -n ${RESULTS:-} ]]; then
        cat "$BENCH_TMP/report.md" >>"$RESULTS"
        log "appended to $RESULTS"
    fi
}
