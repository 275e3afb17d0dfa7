#!/usr/bin/env bash
# login_isolation.sh — does a login flood stall proxied traffic?
#
# p99 of the protected GET /hello through gatehouse, first alone ("idle"), then while
# LOGIN_CONNS concurrent clients hammer POST /auth/login with a correct password ("logins").
# Phases alternate idle, logins, idle, logins … one pair per round; medians over rounds.
# Target: p99 under the login flood ≤ 2 × p99 idle (SPEC §7: password hashing runs off the
# async workers with bounded concurrency).
#
# STORE=postgres runs gatehouse on a throwaway PostgreSQL (pg.sh: initdb + pg_ctl in a temp
# dir, on LOADGEN_CPU with wrk and the upstream; PG_FSYNC on by default) instead of sled.
#
# Env knobs: DURATION (s, 10) ROUNDS (3) GET_CONNS (64) LOGIN_CONNS (50) WARMUP (s, 2)
#            STORE (sled|postgres) PG_FSYNC (on|off)
#            WRK_THREADS (1) QUICK=1 (2 s, 1 round) RESULTS=FILE SUT_CPU (1) LOADGEN_CPU (0)
#            GATEHOUSE_BIN BUILD (auto|1|0) GH_LOG_LEVEL (warn) KEEP_TMP=1
# Exit 3 when gatehouse cannot be measured (does not build, does not start, no /auth/login yet).

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
GET_CONNS=${GET_CONNS:-64}
LOGIN_CONNS=${LOGIN_CONNS:-50}
WARMUP=${WARMUP:-2}
for v in DURATION ROUNDS GET_CONNS LOGIN_CONNS WARMUP WRK_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 1 && ROUNDS >= 1 && GET_CONNS >= 1 && LOGIN_CONNS >= 1)) || die "DURATION, ROUNDS and *_CONNS must be ≥ 1"

STORE=${STORE:-sled}
[[ $STORE == sled || $STORE == postgres ]] || die "STORE must be sled or postgres, got '$STORE'"

bench_init
need_cmd wrk nginx
if [[ $STORE == postgres ]]; then
    # shellcheck source-path=SCRIPTDIR source=pg.sh
    source "$LOAD_DIR/pg.sh"
    pg_start
    export GATEHOUSE_STORE_URL=$PG_URL
    GH_STORE_TOML='backend = "postgres"'
fi

skip() { log "SKIPPED: $*"; echo "login_isolation: SKIPPED — $*"; exit 3; }

upstream_start
gatehouse_build || skip "$GH_SKIP_REASON"
gatehouse_start "" || skip "$GH_SKIP_REASON"
[[ $GH_TOKEN_SOURCE == "POST /auth/login" ]] || skip "POST /auth/login is not available yet ($GH_TOKEN_SOURCE)"
check_auth gatehouse "http://127.0.0.1:$GH_PORT/hello" "$GH_TOKEN" || die "gatehouse failed the token checks"

GET_URL=http://127.0.0.1:$GH_PORT/hello
LOGIN_URL=http://127.0.0.1:$GH_PORT/auth/login
export LOGIN_USER=$BENCH_USER LOGIN_PASSWORD=$BENCH_PASSWORD
RUNS=$BENCH_TMP/runs.tsv
: >"$RUNS"

# Start the login flood in the background (pinned beside the GET load generator); LOGIN_PID.
start_login_flood() {   # start_login_flood OUT SECONDS
    local out=$1 dur=$2
    taskset -c "$LOADGEN_CPU" timeout --kill-after=5 $((dur + 30)) \
        wrk -t1 -c"$LOGIN_CONNS" -d"${dur}s" --timeout 30s -s "$LOAD_DIR/login.lua" "$LOGIN_URL" >"$out" 2>&1 &
    LOGIN_PID=$!
    BENCH_PIDS+=("$LOGIN_PID")
}

phase() {   # phase ROUND idle|logins
    local round=$1 kind=$2 out=$BENCH_TMP/get-$1-$2.txt lout=$BENCH_TMP/login-$1.txt
    local rps reqs p50 p99 non2xx errs lrps=0 lreqs lp50 lp99 lnon2xx=0 lerrs=0
    if [[ $kind == logins ]]; then
        # the flood starts 1 s before and ends ~1 s after the measured GET window
        start_login_flood "$lout" $((DURATION + 2))
        sleep 1
    fi
    local g0 g1 p0=0 p1=0
    g0=$(cpu_ticks "$GH_PID")
    [[ -n ${PG_PID:-} ]] && p0=$(cpu_ticks "$PG_PID")
    run_wrk "$out" "$GET_CONNS" "$DURATION" "$GET_URL" -H "Authorization: Bearer $GH_TOKEN"
    g1=$(cpu_ticks "$GH_PID")
    [[ -n ${PG_PID:-} ]] && p1=$(cpu_ticks "$PG_PID")
    # where the CPU went in the window (log only): gatehouse on its core, PostgreSQL beside wrk
    log "round $round $kind: CPU busy in the window: gatehouse $(awk -v t=$((g1 - g0)) -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN { printf "%.0f%%", t / hz / d * 100 }')${PG_PID:+, PostgreSQL $(awk -v t=$((p1 - p0)) -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN { printf "%.0f%%", t / hz / d * 100 }')}"
    if [[ $kind == logins ]]; then
        wait "$LOGIN_PID" || { cat "$lout" >&2; die "login wrk failed"; }
        read -r lrps lreqs lp50 lp99 lnon2xx lerrs <<<"$(wrk_parse "$lout")"
        : "$lreqs" "$lp50" "$lp99"   # parsed but not reported
    fi
    kill -0 "$GH_PID" 2>/dev/null || die "gatehouse exited during round $round ($kind)"
    ((round == 0)) && return 0
    read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
    printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$round" "$kind" "$rps" "$reqs" "$p50" "$p99" \
        "$non2xx" "$errs" "$lrps" "$lnon2xx" "$lerrs" >>"$RUNS"
    local extra=
    [[ $kind == logins ]] && extra="; logins $lrps/s, login non-2xx $lnon2xx, errors $lerrs"
    log "round $round $kind: GET $rps req/s, p50 $p50 ms, p99 $p99 ms (non-2xx $non2xx, errors $errs)$extra"
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP} s of GETs"
    DURATION_SAVED=$DURATION DURATION=$WARMUP
    phase 0 idle
    DURATION=$DURATION_SAVED
fi
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: idle then $LOGIN_CONNS concurrent logins (${DURATION} s each, GET load $GET_CONNS connections)"
    phase "$r" idle
    phase "$r" logins
done

MD=$BENCH_TMP/login.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test ($DURATION s × $ROUNDS round): checks the harness, not a measurement.**"
        echo
    fi
    store="sled"
    [[ $STORE == postgres ]] && store="PostgreSQL $PG_VERSION (fsync=$PG_FSYNC) on CPU $LOADGEN_CPU"
    echo "gatehouse on CPU $SUT_CPU, store: $store; wrk (GET: $GET_CONNS connections; logins: $LOGIN_CONNS connections, POST /auth/login JSON) and the upstream nginx on CPU $LOADGEN_CPU. $ROUNDS round(s) × $DURATION s per phase; medians over rounds."
    echo
    python3 "$LOAD_DIR/report.py" login "$RUNS"
} >"$MD"
title="gatehouse login isolation"
[[ $STORE == postgres ]] && title+=" (PostgreSQL store)"
emit_results "$title" "$MD"
