#!/usr/bin/env bash
# routes.sh — issue #17 target 1: does a protected GET cost more with 10,000 routes than with 10?
#
# Two gatehouses from one binary, both pinned to SUT_CPU and running at once: "small" with
# ROUTES_SMALL routes, "big" with ROUTES_BIG routes of the same shape (see routes_toml below:
# mostly `/svc-N/**`, every tenth `/api/vN/*/items`, every tenth a GET/HEAD-only public
# `/staticN/*.css`, and last a public `/*/healthz` that every path's lookup must look at). The
# protected GET /hello names none of them: it falls through to the default (token required),
# the worst case for a linear scan. Measured:
#   1. start to ready (`serve` launched → /readyz 200) and `check-config` time of each table
#      (check-config runs the shadowed-route check over the whole table);
#   2. CPU time per request, rounds interleaved small, big, small, big … (same wrk load);
#   3. with CALLGRIND=1: user-space instructions per request of each under valgrind
#      --tool=callgrind (deterministic, free of the machine's noise).
# The goal: big within 5 % of small.
#
# Env knobs: DURATION (s, 6) ROUNDS (3) CONNS (64) WARMUP (s, 2) ROUTES_SMALL (10)
#            ROUTES_BIG (10000) CALLGRIND (1|0) CG_DURATION (s, 5) CG_CONNS (16)
#            RESULTS=FILE SUT_CPU (1) LOADGEN_CPU (0) GATEHOUSE_BIN BUILD (auto|1|0) KEEP_TMP=1

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# lib.sh records its own knobs in BENCH_CMD; these are this script's (set in the environment).
for v in ROUTES_SMALL ROUTES_BIG CALLGRIND CG_DURATION CG_CONNS; do
    if [[ -n ${!v+x} ]]; then BENCH_CMD="$v=${!v} $BENCH_CMD"; fi
done
DURATION=${DURATION:-6}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
ROUTES_SMALL=${ROUTES_SMALL:-10}
ROUTES_BIG=${ROUTES_BIG:-10000}
CALLGRIND=${CALLGRIND:-1}
CG_DURATION=${CG_DURATION:-5}
CG_CONNS=${CG_CONNS:-16}
for v in DURATION ROUNDS CONNS WARMUP ROUTES_SMALL ROUTES_BIG CG_DURATION CG_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((ROUTES_SMALL >= 1 && ROUTES_BIG >= 1 && DURATION >= 1 && ROUNDS >= 1)) || die "ROUTES_*, DURATION and ROUNDS must be ≥ 1"

bench_init
need_cmd wrk nginx
if [[ $CALLGRIND == 1 ]]; then need_cmd valgrind callgrind_control; fi
upstream_start
gatehouse_build || die "$GH_SKIP_REASON"

# routes_toml N: N [[routes]] tables of the shape described at the top.
routes_toml() {
    awk -v n="$1" 'BEGIN {
        for (i = 0; i < n - 1; i++) {
            if (i % 10 == 5) printf "[[routes]]\npath = \"/api/v%d/*/items\"\n\n", i
            else if (i % 10 == 7) printf "[[routes]]\npath = \"/static%d/*.css\"\nmethods = [\"GET\", \"HEAD\"]\naccess = \"public\"\n\n", i
            else printf "[[routes]]\npath = \"/svc-%d/**\"\n\n", i
        }
        printf "[[routes]]\npath = \"/*/healthz\"\naccess = \"public\"\n\n"
    }'
}

MD=$BENCH_TMP/routes.md
: >"$MD"
declare -A PID=() PORT=() TOKEN=() READY=() CHECK=() CONF=()
REAL_BIN=$GATEHOUSE_BIN

# start_one NAME ROUTES [callgrind]: a gatehouse with that many routes (under callgrind if asked).
start_one() {
    local name=$1 n=$2 mode=${3:-}
    GATEHOUSE_BIN=$REAL_BIN
    if [[ $mode == callgrind ]]; then
        local wrapper=$BENCH_TMP/$name-under-callgrind
        cat >"$wrapper" <<WRAP
#!/bin/sh
if [ "\$1" = serve ]; then
    exec valgrind --tool=callgrind --callgrind-out-file=$BENCH_TMP/$name.callgrind.out \
        --dump-instr=no --instr-atstart=no "$REAL_BIN" "\$@"
fi
exec "$REAL_BIN" "\$@"
WRAP
        chmod +x "$wrapper"
        GATEHOUSE_BIN=$wrapper
    fi
    GH_NAME=$name gatehouse_start "$(printf '\n'; routes_toml "$n")" || die "$name: $GH_SKIP_REASON"
    GATEHOUSE_BIN=$REAL_BIN
    PID[$name]=$GH_PID PORT[$name]=$GH_PORT TOKEN[$name]=$GH_TOKEN READY[$name]=$GH_READY_S CONF[$name]=$GH_CONF
    local base=http://127.0.0.1:$GH_PORT code
    # The routes are really in force: a public glob passes without a token, /svc-N/** needs one,
    # and the measured path falls through to "token required".
    code=$(http_status "$base/static7/site.css")
    if ((n > 8)); then [[ $code == 200 ]] || die "$name: /static7/site.css without a token answered $code, want 200 (public route)"; fi
    code=$(http_status "$base/svc-$((n - 2))/x"); [[ $code == 401 ]] || die "$name: /svc-$((n - 2))/x without a token answered $code, want 401"
    code=$(http_status "$base/x/healthz"); [[ $code == 200 ]] || die "$name: /x/healthz answered $code, want 200 (public route)"
    check_auth "$name" "$base/hello" "$GH_TOKEN" || die "$name failed the token checks"
    log "$name: $n routes, ready in ${GH_READY_S} s"
}

# ---------------------------------------------------------------- 1 + 2: CPU per request

start_one small "$ROUTES_SMALL"
start_one big "$ROUTES_BIG"
for name in small big; do
    t0=$EPOCHREALTIME
    GATEHOUSE_SECRET=$BENCH_SECRET timeout 120 taskset -c "$SUT_CPU" "$REAL_BIN" check-config -c "${CONF[$name]}" \
        >"$BENCH_TMP/$name-check.txt" 2>&1 || die "$name: check-config failed: $(tail -n 3 "$BENCH_TMP/$name-check.txt")"
    CHECK[$name]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    log "$name: check-config in ${CHECK[$name]} s, $(grep -c '^warning:' "$BENCH_TMP/$name-check.txt" || true) warning(s)"
done

RUNS=$BENCH_TMP/runs.tsv
: >"$RUNS"
measure() {   # measure NAME ROUND DURATION (round 0 = warm-up, not recorded)
    local name=$1 round=$2 dur=$3 out c0 c1 rps reqs p50 p99 non2xx errs load
    out=$BENCH_TMP/wrk-$name-$round.txt
    c0=$(cpu_ticks "${PID[$name]}")
    run_wrk "$out" "$CONNS" "$dur" "http://127.0.0.1:${PORT[$name]}/hello" -H "Authorization: Bearer ${TOKEN[$name]}"
    c1=$(cpu_ticks "${PID[$name]}")
    kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited during round $round"
    ((round == 0)) && return 0
    read -r rps reqs p50 p99 non2xx errs < <(wrk_parse "$out")
    read -r load _ </proc/loadavg
    ((non2xx == 0 && errs == 0)) || warn "$name: $non2xx non-2xx answers, $errs socket errors"
    printf '%s %s %s %s %s %s %s %s\n' "$round" "$name" "$rps" "$reqs" "$p99" "$((c1 - c0))" "$load" "$non2xx" >>"$RUNS"
    log "round $round $name: $rps req/s, p99 $p99 ms, $((c1 - c0)) ticks for $reqs requests, load $load"
}
if ((WARMUP > 0)); then measure small 0 "$WARMUP"; measure big 0 "$WARMUP"; fi
for ((r = 1; r <= ROUNDS; r++)); do
    measure small "$r" "$DURATION"
    measure big "$r" "$DURATION"
done

{
    echo "Two gatehouses from one binary, both pinned to CPU $SUT_CPU (wrk and the upstream nginx on CPU $LOADGEN_CPU); protected GET /hello (falls through every route: token required), $CONNS connections, $ROUNDS rounds × $DURATION s, small and big alternating."
    echo
    echo "| table | routes | start → ready | check-config |"
    echo "|---|---:|---:|---:|"
    echo "| small | $ROUTES_SMALL | ${READY[small]} s | ${CHECK[small]} s |"
    echo "| big | $ROUTES_BIG | ${READY[big]} s | ${CHECK[big]} s |"
    echo
    echo "| round | table | req/s | p99 ms | CPU µs/request | load avg |"
    echo "|---:|---|---:|---:|---:|---:|"
    awk -v tck="$CLK_TCK" '{ printf "| %s | %s | %.0f | %.2f | %.2f | %s |\n", $1, $2, $3, $5, $6 / tck * 1e6 / $4, $7 }' "$RUNS"
    echo
    awk -v tck="$CLK_TCK" '
        { v = $6 / tck * 1e6 / $4; n[$2]++; x[$2, n[$2]] = v }
        function median(t,   i, j, k, tmp, a) {
            for (i = 1; i <= n[t]; i++) a[i] = x[t, i]
            for (i = 1; i <= n[t]; i++) for (j = i + 1; j <= n[t]; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
            k = int((n[t] + 1) / 2)
            return (n[t] % 2) ? a[k] : (a[k] + a[k + 1]) / 2
        }
        END {
            s = median("small"); b = median("big")
            printf "**Median CPU per request: small %.2f µs, big %.2f µs, big/small %.3f.**\n", s, b, b / s
        }' "$RUNS"
} >>"$MD"

# ---------------------------------------------------------------- 3: callgrind

if [[ $CALLGRIND == 1 ]]; then
    kill -TERM "${PID[small]}" "${PID[big]}" 2>/dev/null || true
    sleep 1
    declare -A IPR=()
    for name in small big; do
        n=$ROUTES_SMALL
        [[ $name == big ]] && n=$ROUTES_BIG
        start_one "cg-$name" "$n" callgrind
        pid=${PID[cg-$name]} url=http://127.0.0.1:${PORT[cg-$name]}/hello
        run_wrk "$BENCH_TMP/cg-$name-warm.txt" "$CG_CONNS" 2 "$url" -H "Authorization: Bearer ${TOKEN[cg-$name]}"
        callgrind_control -i on "$pid" >/dev/null 2>&1
        run_wrk "$BENCH_TMP/cg-$name.txt" "$CG_CONNS" "$CG_DURATION" "$url" -H "Authorization: Bearer ${TOKEN[cg-$name]}"
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$pid" >/dev/null 2>&1
        sleep 1
        read -r _ reqs _ _ non2xx errs < <(wrk_parse "$BENCH_TMP/cg-$name.txt")
        total=0
        for f in "$BENCH_TMP/cg-$name".callgrind.out.*; do
            c=$(awk '/^totals:/ { print $2; exit }' "$f")
            total=$((total + ${c:-0}))
        done
        IPR[$name]=$((total / (reqs > 0 ? reqs : 1)))
        log "cg-$name: ${IPR[$name]} instructions per request ($total over $reqs requests, non-2xx $non2xx)"
        kill -TERM "$pid" 2>/dev/null || true
        sleep 1
    done
    {
        echo
        echo "callgrind (valgrind --tool=callgrind, one at a time, $CG_CONNS connections, $CG_DURATION s): user-space instructions per protected GET /hello: small ${IPR[small]}, big ${IPR[big]}, **big/small $(awk -v a="${IPR[small]}" -v b="${IPR[big]}" 'BEGIN { printf "%.3f", b / a }')**."
    } >>"$MD"
fi

emit_results "Route tables: $ROUTES_BIG routes against $ROUTES_SMALL (issue #17 target 1)" "$MD"
