#!/usr/bin/env bash
# compare.sh — gatehouse against nginx and HAProxy on loopback, same run, rounds interleaved.
#
# Targets (each one the "system under test", SUT, pinned alone to SUT_CPU):
#   upstream  nginx answering GET /hello directly: the limit
#   nginx     nginx as a plain reverse proxy to the upstream (keep-alive pool): the proxy limit
#   haproxy   HAProxy checking the same HS256 token itself, identity header from `sub`
#   gatehouse gatehouse, protected route (no [[routes]]: every path needs the token)
#
# Env knobs: DURATION (s, 10) ROUNDS (3) CONNS (64) WARMUP (s, 2) WRK_THREADS (1)
#            TARGETS ("upstream nginx haproxy gatehouse") QUICK=1 (2 s, 1 round: smoke test)
#            RESULTS=FILE (append the report) SUT_CPU (1) LOADGEN_CPU (0)
#            GATEHOUSE_BIN BUILD (auto|1|0) GH_LOG_LEVEL (warn) KEEP_TMP=1
#            PERF (auto|0: hardware counters per request with `perf stat`, when it works)
# See benches/README.md.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
TARGETS=${TARGETS:-upstream nginx haproxy gatehouse}
for v in DURATION ROUNDS CONNS WARMUP WRK_THREADS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 1 && ROUNDS >= 1 && CONNS >= 1)) || die "DURATION, ROUNDS and CONNS must be ≥ 1"
if ((ROUNDS < 3)) && [[ ${QUICK:-0} != 1 ]]; then
    warn "ROUNDS=$ROUNDS: fewer than 3 rounds is not a valid comparison"
fi

bench_init
need_cmd wrk nginx haproxy
# Cycles and instructions per request from the CPU's counters: unlike wall time, cycles
# count only while the SUT runs, so a slow phase of the host distorts them far less.
PERF=${PERF:-auto}
if [[ $PERF == auto ]]; then
    if command -v perf >/dev/null 2>&1 && perf stat -x, -e cycles:u -- true >/dev/null 2>&1; then PERF=1; else PERF=0; fi
fi
NOTES=$BENCH_TMP/notes.md
: >"$NOTES"
note() { echo "- $*" >>"$NOTES"; }

want() { [[ " $TARGETS " == *" $1 "* ]]; }

declare -A URL=() SUT_PIDS=()
ACTIVE=()

upstream_start   # always: the proxies need it
if want upstream; then
    URL[upstream]=http://127.0.0.1:$UP_PORT/hello SUT_PIDS[upstream]=$UP_PID
    ACTIVE+=(upstream)
fi

if want nginx; then
    nginx_proxy_start
    code=$(http_status "http://127.0.0.1:$NGX_PORT/hello")
    [[ $code == 200 ]] || die "nginx proxy answered $code for /hello"
    URL[nginx]=http://127.0.0.1:$NGX_PORT/hello SUT_PIDS[nginx]=$NGX_PID
    ACTIVE+=(nginx)
fi

# gatehouse before HAProxy: HAProxy is given the very token gatehouse issued.
TOKEN='' TOKEN_SOURCE=''
if want gatehouse; then
    if gatehouse_build && gatehouse_start ""; then
        if check_auth gatehouse "http://127.0.0.1:$GH_PORT/hello" "$GH_TOKEN"; then
            TOKEN=$GH_TOKEN TOKEN_SOURCE=$GH_TOKEN_SOURCE
            URL[gatehouse]=http://127.0.0.1:$GH_PORT/hello SUT_PIDS[gatehouse]=$GH_PID
            ACTIVE+=(gatehouse)
            note "gatehouse: token from $GH_TOKEN_SOURCE; $(gatehouse_threads) threads at start (gatehouse sizes its runtime from the CPU affinity: taskset -c $SUT_CPU gives it one core, so a single-threaded runtime from e894d46 on, one tokio worker before)"
        else
            GH_SKIP_REASON="gatehouse failed the token checks above (a gateway that answers wrongly is not benchmarked)"
        fi
    fi
    if [[ -n ${GH_SKIP_REASON:-} ]]; then
        log "SKIPPING gatehouse: $GH_SKIP_REASON"
        note "gatehouse SKIPPED: $GH_SKIP_REASON"
    fi
fi
if [[ -z $TOKEN ]]; then
    TOKEN=$(mint_token --sub "$BENCH_USER") TOKEN_SOURCE="self-minted"
fi

if want haproxy; then
    haproxy_start bench bench
    HAP_TOKEN=$TOKEN
    if ! check_auth haproxy "http://127.0.0.1:$HAP_PORT/hello" "$HAP_TOKEN"; then
        if [[ $TOKEN_SOURCE == "POST /auth/login" ]]; then
            warn "HAProxy refuses gatehouse's own token (claims shaped differently?); retrying with a self-minted one"
            HAP_TOKEN=$(mint_token --sub "$(token_claim "$TOKEN" sub)")
            check_auth haproxy "http://127.0.0.1:$HAP_PORT/hello" "$HAP_TOKEN" \
                || die "HAProxy's token checks do not behave as configured: the comparison would not be honest"
            note "HAProxy got a self-minted token with the same sub/iss/aud: it refused gatehouse's token"
        else
            die "HAProxy's token checks do not behave as configured: the comparison would not be honest"
        fi
    fi
    note "HAProxy token checks verified before measuring: missing, tampered signature, alg none, expired, wrong iss, wrong aud → 401; good token → 200 with X-Auth-Subject at the upstream"
    URL[haproxy]=http://127.0.0.1:$HAP_PORT/hello SUT_PIDS[haproxy]=$HAP_PID
    ACTIVE+=(haproxy)
fi

# Measure in a fixed order A B C D every round.
ORDERED=()
for t in upstream nginx haproxy gatehouse; do
    [[ " ${ACTIVE[*]} " == *" $t "* ]] && ORDERED+=("$t")
done
((${#ORDERED[@]})) || die "nothing to measure (TARGETS=$TARGETS)"

# perf_counters FILE: "cycles_u cycles_k instructions_u instructions_k" (nan when not counted)
perf_counters() {
    local file=$1
    [[ -s $file ]] || { echo "nan nan nan nan"; return; }
    awk -F, '
        { v = ($1 ~ /^[0-9]+$/) ? $1 : "nan" }
        $3 ~ /^cycles:u/ { cu = v } $3 ~ /^cycles:k/ { ck = v }
        $3 ~ /^instructions:u/ { iu = v } $3 ~ /^instructions:k/ { ik = v }
        END { printf "%s %s %s %s\n", (cu == "" ? "nan" : cu), (ck == "" ? "nan" : ck), (iu == "" ? "nan" : iu), (ik == "" ? "nan" : ik) }
    ' "$file"
}

token_for() { if [[ $1 == haproxy ]]; then echo "$HAP_TOKEN"; else echo "$TOKEN"; fi; }

RUNS=$BENCH_TMP/runs.tsv
: >"$RUNS"

measure() {   # measure TARGET ROUND DURATION (round 0 = warm-up, not recorded)
    local t=$1 round=$2 dur=$3 out t0 t1 c0 c1 parsed
    local -a pids
    read -r -a pids <<<"${SUT_PIDS[$t]}"
    out=$BENCH_TMP/wrk-$t-$round.txt
    # The upstream is the SUT only in its own run: then it gets SUT_CPU to itself.
    [[ $t == upstream ]] && repin "$SUT_CPU" "$UP_PID"
    local token k0 k1
    token=$(token_for "$t")
    local counters=$BENCH_TMP/perf-$t-$round.csv perf_pid=
    if ((PERF)); then
        perf stat -x, -o "$counters" -e cycles:u,cycles:k,instructions:u,instructions:k \
            -p "$(proc_tree "${pids[@]}" | paste -sd,)" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    c0=$(cpu_ticks "${pids[@]}") k0=$(cpu_core_busy_ticks "$SUT_CPU") t0=$EPOCHREALTIME
    run_wrk "$out" "$CONNS" "$dur" "${URL[$t]}" -H "Authorization: Bearer $token"
    t1=$EPOCHREALTIME k1=$(cpu_core_busy_ticks "$SUT_CPU") c1=$(cpu_ticks "${pids[@]}")
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    [[ $t == upstream ]] && repin "$LOADGEN_CPU" "$UP_PID"
    kill -0 "${pids[0]}" 2>/dev/null || die "$t (pid ${pids[0]}) exited during round $round"
    ((round == 0)) && return 0
    parsed=$(wrk_parse "$out")
    local rps reqs p50 p99 non2xx errs secs
    read -r rps reqs p50 p99 non2xx errs <<<"$parsed"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    # busy time of the SUT core that was not the SUT: other processes, interrupts, softirq
    local other=$(((k1 - k0) - (c1 - c0)))
    ((other < 0)) && other=0
    printf '%s %s %s %s %s %s %s %s %s %s %s %s\n' "$round" "$t" "$rps" "$reqs" "$p50" "$p99" \
        "$((c1 - c0))" "$secs" "$non2xx" "$errs" "$other" "$(perf_counters "$counters")" >>"$RUNS"
    log "round $round $t: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, SUT cpu $((c1 - c0)) ticks, other on CPU $SUT_CPU $other ticks, non-2xx $non2xx, socket errors $errs"
    if ((non2xx > 0 || errs > 0)); then warn "$t: $non2xx non-2xx answers and $errs socket errors (see $out)"; fi
}

if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP} s per target"
    for t in "${ORDERED[@]}"; do measure "$t" 0 "$WARMUP"; done
fi
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r/$ROUNDS: ${ORDERED[*]} (${DURATION} s each, $CONNS connections, $WRK_THREADS wrk thread(s))"
    for t in "${ORDERED[@]}"; do measure "$t" "$r" "$DURATION"; done
done

MD=$BENCH_TMP/compare.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test ($DURATION s × $ROUNDS round): checks the harness, not a measurement.**"
        echo
    fi
    echo "$ROUNDS round(s) × $DURATION s per target, order ${ORDERED[*]} every round; wrk: $CONNS connections, $WRK_THREADS thread(s), GET /hello with the bearer token; medians over rounds."
    echo "Pinning: SUT on CPU $SUT_CPU alone; wrk and the upstream nginx on CPU $LOADGEN_CPU (the upstream moves to CPU $SUT_CPU only for its own 'limit' run)."
    echo
    python3 "$LOAD_DIR/report.py" compare "$RUNS" "$CLK_TCK"
    if [[ -s $NOTES ]]; then
        echo
        echo "Notes:"
        echo
        cat "$NOTES"
    fi
} >"$MD"
emit_results "gatehouse load comparison" "$MD"
