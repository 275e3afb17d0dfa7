#!/usr/bin/env bash
# storm.sh — the verified-token cache under a cache-miss storm (issue #17 target 3).
#
# TOKENS distinct valid access tokens per algorithm (ALGS, default "HS256 ES256 EdDSA"),
# minted outside gatehouse (mint_tokens.py, PyJWT in a venv) from a token gatehouse issued:
# same header (alg, typ, kid) and claims (sub = the real user id, sid, iat, exp …), a fresh
# jti each. For every round, worker count (WORKERS, default "1 2") and algorithm, in that
# order, a fresh gatehouse (empty cache) is started — one worker: pinned to SUT_CPU; two
# workers: pinned to both cores (tokio sizes its pool from the CPU mask) — and measured in
# two phases of the same wrk (storm.lua: every request a different token, the run ends when
# each has been answered once):
#
#   miss   the first time gatehouse sees each token: header check, signature, claims,
#          then the store checks and the cache insert (write lock);
#   hit    the same list again: every token is in the cache (read lock), so the difference
#          miss − hit is what a cache miss costs under load, to compare with criterion's
#          uncached verify (`cargo bench --bench micro -- jwt_`; pass the figures in
#          CRITERION_US, e.g. "HS256=10.1 ES256=121.5 EdDSA=79.2", for the report to compare).
#
# Per phase: gatehouse CPU per request (/proc/PID/stat utime+stime, all threads, exited ones
# included; one clock tick is ≤ 3% of a phase's CPU at 10,000 tokens), futex syscalls and context switches per request (perf stat, tracepoint
# syscalls:sys_enter_futex; skipped without perf), wrk's p50/p99 and non-2xx.
#
# Pinning: wrk and the upstream nginx on LOADGEN_CPU (0). With two workers gatehouse shares
# that core with them, so its req/s is not the point; CPU per request and futexes are.
#
# Env knobs: ALGS TOKENS (10000) WORKERS ("1 2") ROUNDS (3) CONNS (64) CRITERION_US
#            QUICK=1 (1,000 tokens, 1 round) RESULTS=FILE SUT_CPU LOADGEN_CPU GATEHOUSE_BIN
#            BUILD GH_LOG_LEVEL KEEP_TMP
# Needs: wrk nginx python3 (venv + pip for PyJWT/cryptography); perf for the futex counts.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    TOKENS=${TOKENS:-1000} ROUNDS=${ROUNDS:-1}
fi
TOKENS=${TOKENS:-10000}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
ALGS=${ALGS:-HS256 ES256 EdDSA}
WORKERS=${WORKERS:-1 2}
CRITERION_US=${CRITERION_US:-}
for v in TOKENS ROUNDS CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
for w in $WORKERS; do [[ $w == 1 || $w == 2 ]] || die "WORKERS: 1 and/or 2, got '$w'"; done

bench_init
need_cmd wrk nginx
gatehouse_build || die "$GH_SKIP_REASON"
PERF_OK=0
if command -v perf >/dev/null 2>&1 && perf stat -e syscalls:sys_enter_futex -x, true >/dev/null 2>&1; then
    PERF_OK=1
else
    warn "perf cannot count syscalls:sys_enter_futex here: no futex counts"
fi
PY=$(bench_venv jwt "$LOAD_DIR/requirements-jwt.txt") || die "cannot set up the venv for mint_tokens.py"
upstream_start upstream "$LOADGEN_CPU"

declare -A GH_PORT_OF GH_OPS_OF GH_CONF_OF

storm_config() {   # storm_config ALG — config, key, user; sets GH_*_OF[ALG]
    local alg=$1 dir=$BENCH_TMP/$1 port ops keys=""
    mkdir -p "$dir"
    pick_port port
    pick_port ops
    GH_PORT_OF[$alg]=$port GH_OPS_OF[$alg]=$ops GH_CONF_OF[$alg]=$dir/gateway.toml
    if [[ $alg != HS* ]]; then
        "$GATEHOUSE_BIN" keys generate --alg "$alg" --out "$dir/signing.pem" >"$dir/keygen.log" 2>&1 \
            || { cat "$dir/keygen.log" >&2; die "gatehouse keys generate --alg $alg failed"; }
        keys='
[[tokens.keys]]
file = "signing.pem"
state = "active"'
    fi
    cat >"$dir/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
ops_listen = "127.0.0.1:$ops"

[store]
path = "$dir/data"

[tokens]
algorithm = "$alg"
issuer = "http://127.0.0.1:$port"
audience = "bench"
access_ttl = "24h"
$keys

$(bench_toml_common)
TOML
    printf '%s\n' "$BENCH_PASSWORD" | GATEHOUSE_SECRET=$BENCH_SECRET timeout 60 \
        "$GATEHOUSE_BIN" -c "$dir/gateway.toml" user add "$BENCH_USER" --password-stdin >"$dir/user-add.log" 2>&1 \
        || { cat "$dir/user-add.log" >&2; die "user add for $alg failed"; }
}

storm_start() {   # storm_start ALG CPUS — sets GH_PID
    local alg=$1 cpus=$2 dir=$BENCH_TMP/$1
    start_pinned "$cpus" "$dir/gatehouse.log" env GATEHOUSE_SECRET="$BENCH_SECRET" \
        "$GATEHOUSE_BIN" serve -c "${GH_CONF_OF[$alg]}"
    GH_PID=$LAST_PID
    wait_http "http://127.0.0.1:${GH_OPS_OF[$alg]}/readyz" 200 60 "$GH_PID" \
        || { tail -n 20 "$dir/gatehouse.log" >&2; die "$alg did not become ready"; }
}

storm_stop() {
    kill -TERM "$GH_PID" 2>/dev/null || true
    wait "$GH_PID" 2>/dev/null || true
}

# CPU time of a process in ns: utime+stime of /proc/PID/stat (clock ticks), which keeps the
# time of threads that have exited. (Summing /proc/PID/task/*/schedstat would be finer, but a
# blocking-pool thread from start-up that exits mid-run, 10 s idle, takes its time with it.)
cpu_ns() {
    echo $(($(cpu_ticks "$1") * 1000000000 / CLK_TCK))
}

secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

RAW=$BENCH_TMP/raw
mkdir -p "$RAW"

# Tokens: one login per algorithm gives the template, mint_tokens.py the rest.
for alg in $ALGS; do
    storm_config "$alg"
    storm_start "$alg" "$SUT_CPU"
    body=$(curl -s --fail --max-time 60 -X POST -H 'Content-Type: application/json' \
        --data "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
        "http://127.0.0.1:${GH_PORT_OF[$alg]}/auth/login") || die "login on $alg failed"
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$body" >"$RAW/template-$alg.txt"
    storm_stop
    log "$alg: minting $TOKENS tokens"
    "$PY" "$LOAD_DIR/mint_tokens.py" --template "$(cat "$RAW/template-$alg.txt")" --count "$TOKENS" \
        --key "$BENCH_TMP/$alg/signing.pem" >"$RAW/tokens-$alg.txt" || die "mint_tokens.py failed for $alg"
done

# storm_phase ROUND WORKERS ALG PHASE — one pass over the token list
storm_phase() {
    local r=$1 w=$2 alg=$3 phase=$4
    local out=$RAW/wrk-$1-$2-$3-$4.txt done=$RAW/done-$1-$2-$3-$4 perf_out=$RAW/perf-$1-$2-$3-$4.txt c0 c1 t0 t1 wpid ppid='' futex=0 cs=0 reqs p50 p99 non2xx errs
    rm -f "$done"
    if ((PERF_OK)); then
        perf stat -x, -e syscalls:sys_enter_futex,context-switches -p "$GH_PID" -o "$perf_out" &
        ppid=$!
        BENCH_PIDS+=("$ppid")
        sleep 0.3
    fi
    c0=$(cpu_ns "$GH_PID"); t0=$(now)
    STORM_TOKENS_FILE=$RAW/tokens-$alg.txt STORM_DONE_FILE=$done \
        timeout --kill-after=5 600 taskset -c "$LOADGEN_CPU" \
        wrk -t1 -c"$CONNS" -d590s --latency -s "$LOAD_DIR/storm.lua" "http://127.0.0.1:${GH_PORT_OF[$alg]}/hello" >"$out" 2>&1 &
    wpid=$!
    BENCH_PIDS+=("$wpid")
    while [[ ! -e $done ]] && kill -0 "$wpid" 2>/dev/null; do sleep 0.02; done
    kill -INT "$wpid" 2>/dev/null || true
    wait "$wpid" || true
    c1=$(cpu_ns "$GH_PID"); t1=$(now)
    if [[ -n $ppid ]]; then
        kill -INT "$ppid" 2>/dev/null || true
        wait "$ppid" 2>/dev/null || true
        futex=$(awk -F, '$3 ~ /sys_enter_futex/ { print $1 + 0 }' "$perf_out")
        cs=$(awk -F, '$3 ~ /context-switches/ { print $1 + 0 }' "$perf_out")
    fi
    [[ -e $done ]] || { cat "$out" >&2; die "storm wrk ended before every token was answered ($alg, $phase)"; }
    read -r _ reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$alg" "$phase" "$reqs" \
        "$(secs_between "$t0" "$t1")" "$((c1 - c0))" "${futex:-0}" "${cs:-0}" "$p50" "$p99" "$non2xx" "$errs" >>"$RAW/storm.tsv"
    log "round $r, $w worker(s), $alg $phase: $reqs requests, $(awk -v c=$((c1 - c0)) -v n="$reqs" 'BEGIN { printf "%.1f", c / n / 1000 }') µs CPU/req, futex ${futex:-0}, p99 $p99 ms, non-2xx $non2xx"
}

: >"$RAW/storm.tsv"
for ((r = 1; r <= ROUNDS; r++)); do
    for w in $WORKERS; do
        cpus=$SUT_CPU
        ((w == 2)) && cpus=$LOADGEN_CPU,$SUT_CPU
        for alg in $ALGS; do
            storm_start "$alg" "$cpus"
            threads=$(find "/proc/$GH_PID/task" -mindepth 1 -maxdepth 1 | wc -l)
            # warm the connections (both hops) with the template token, then one run per phase
            run_wrk "$RAW/warm-$r-$w-$alg.txt" "$CONNS" 1 "http://127.0.0.1:${GH_PORT_OF[$alg]}/hello" \
                -H "Authorization: Bearer $(cat "$RAW/template-$alg.txt")"
            storm_phase "$r" "$w" "$alg" miss
            storm_phase "$r" "$w" "$alg" hit
            storm_stop
            log "round $r: $alg with $w worker(s) ($threads threads) done"
        done
    done
done

MD=$BENCH_TMP/storm.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test: checks the harness, not a measurement.**"
        echo
    fi
    echo "$TOKENS distinct tokens per algorithm, each sent once per phase (miss: first sight; hit: the same list again), wrk 1 thread, $CONNS connections, on CPU $LOADGEN_CPU with the upstream nginx; gatehouse (sled) fresh for every round × workers × algorithm, 1 worker = CPU $SUT_CPU, 2 workers = CPUs $LOADGEN_CPU,$SUT_CPU. $ROUNDS round(s); medians over rounds. CPU from /proc/PID/stat, futex syscalls and context switches from perf stat."
    echo
    python3 "$LOAD_DIR/storm_report.py" "$RAW/storm.tsv" "$CRITERION_US"
} >"$MD"
emit_results "gatehouse cache-miss storm (issue #17 target 3)" "$MD"
