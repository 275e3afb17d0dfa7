#!/usr/bin/env bash
# algorithms.sh — what key-pair tokens cost per request (issue #13 "Measure", SPEC §9).
#
# One gatehouse per algorithm (ALGS, default "HS256 ES256 EdDSA RS256"), each with its own
# sled store, the same user and argon2id parameters; key pairs made by `gatehouse keys
# generate`. PARTS, in this order:
#
#   cpu           proxied protected GET with that gatehouse's own access token, rounds
#                 interleaved across the algorithms: req/s, p99 and gatehouse CPU µs per
#                 request (/proc/PID/stat). One token per run, so after the first request
#                 every check is a verified-token cache hit: the algorithm should not show.
#   instructions  user-space instructions per proxied request under callgrind (noise-free),
#                 one gatehouse per algorithm started for it (needs valgrind).
#   login         POST /auth/login per second and gatehouse CPU per login, per algorithm:
#                 argon2id dominates; the difference to HS256 is what signing the access
#                 token with that key costs (plus the refresh-token write).
#
# The uncached verify and sign costs per algorithm are criterion numbers: `cargo bench
# --bench micro -- jwt_`.
#
# Pinning (2 cores): the upstream nginx and wrk on LOADGEN_CPU (0); every gatehouse on
# SUT_CPU (1) — only the one under load does work.
#
# Env knobs: ALGS PARTS ("cpu instructions login") DURATION (s, 10) ROUNDS (3) CONNS (64)
#            WARMUP (s, 2) LOGIN_CONNS (8) QUICK=1 (2 s, 1 round) RESULTS=FILE
#            SUT_CPU LOADGEN_CPU GATEHOUSE_BIN BUILD GH_LOG_LEVEL KEEP_TMP
# Needs: wrk nginx python3 curl; valgrind for `instructions`.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
LOGIN_CONNS=${LOGIN_CONNS:-8}
ALGS=${ALGS:-HS256 ES256 EdDSA RS256}
PARTS=${PARTS:-cpu instructions login}
for v in DURATION ROUNDS CONNS WARMUP LOGIN_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done

bench_init
need_cmd wrk nginx curl
gatehouse_build || die "$GH_SKIP_REASON"
upstream_start upstream "$LOADGEN_CPU"

declare -A GH_PORT_OF GH_OPS_OF GH_PID_OF GH_CONF_OF GH_TOKEN_OF

# alg_config NAME ALG — writes $BENCH_TMP/NAME/gateway.toml (and a key for key-pair algorithms)
alg_config() {
    local name=$1 alg=$2 dir=$BENCH_TMP/$1 port ops keys=""
    mkdir -p "$dir"
    pick_port port
    pick_port ops
    GH_PORT_OF[$name]=$port GH_OPS_OF[$name]=$ops GH_CONF_OF[$name]=$dir/gateway.toml
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
        || { cat "$dir/user-add.log" >&2; die "user add for $name failed"; }
}

alg_start() {   # alg_start NAME — pinned to SUT_CPU; logs in, checks the token
    local name=$1 dir=$BENCH_TMP/$1 body
    start_pinned "$SUT_CPU" "$dir/gatehouse.log" env GATEHOUSE_SECRET="$BENCH_SECRET" \
        "$GATEHOUSE_BIN" serve -c "${GH_CONF_OF[$name]}"
    GH_PID_OF[$name]=$LAST_PID
    wait_http "http://127.0.0.1:${GH_OPS_OF[$name]}/readyz" 200 120 "$LAST_PID" \
        || { tail -n 20 "$dir/gatehouse.log" >&2; die "$name did not become ready"; }
    body=$(curl -s --fail --max-time 60 -X POST -H 'Content-Type: application/json' \
        --data "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
        "http://127.0.0.1:${GH_PORT_OF[$name]}/auth/login") || die "login on $name failed"
    GH_TOKEN_OF[$name]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$body")
    check_auth "$name" "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" "${GH_TOKEN_OF[$name]}" \
        || die "$name failed the token checks"
    log "$name: pid $LAST_PID on 127.0.0.1:${GH_PORT_OF[$name]}, token alg $(python3 -c '
import base64, json, sys
h = sys.argv[1].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["alg"])' "${GH_TOKEN_OF[$name]}")"
}

secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

RAW=$BENCH_TMP/raw
mkdir -p "$RAW"
for alg in $ALGS; do
    alg_config "$alg" "$alg"
    alg_start "$alg"
done

part_cpu() {
    local r alg out c0 c1 t0 t1 rps reqs p50 p99 non2xx errs
    : >"$RAW/cpu.tsv"
    for alg in $ALGS; do
        ((WARMUP > 0)) && run_wrk "$RAW/warm-$alg.txt" "$CONNS" "$WARMUP" "http://127.0.0.1:${GH_PORT_OF[$alg]}/hello" \
            -H "Authorization: Bearer ${GH_TOKEN_OF[$alg]}"
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for alg in $ALGS; do
            out=$RAW/cpu-$alg-$r.txt
            c0=$(cpu_ticks "${GH_PID_OF[$alg]}"); t0=$(now)
            run_wrk "$out" "$CONNS" "$DURATION" "http://127.0.0.1:${GH_PORT_OF[$alg]}/hello" \
                -H "Authorization: Bearer ${GH_TOKEN_OF[$alg]}"
            c1=$(cpu_ticks "${GH_PID_OF[$alg]}"); t1=$(now)
            read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
            printf 'cpu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$alg" "$rps" "$reqs" "$p50" "$p99" \
                "$non2xx" "$errs" "$((c1 - c0))" "$(secs_between "$t0" "$t1")" >>"$RAW/cpu.tsv"
            log "cpu round $r $alg: $rps req/s, p99 $p99 ms, non-2xx $non2xx"
        done
    done
}

part_login() {
    local r alg out c0 c1 t0 t1 rps reqs p50 p99 non2xx errs
    : >"$RAW/login.tsv"
    export LOGIN_USER=$BENCH_USER LOGIN_PASSWORD=$BENCH_PASSWORD
    for ((r = 1; r <= ROUNDS; r++)); do
        for alg in $ALGS; do
            out=$RAW/login-$alg-$r.txt
            c0=$(cpu_ticks "${GH_PID_OF[$alg]}"); t0=$(now)
            run_wrk "$out" "$LOGIN_CONNS" "$DURATION" "http://127.0.0.1:${GH_PORT_OF[$alg]}/auth/login" \
                --timeout 30s -s "$LOAD_DIR/login.lua"
            c1=$(cpu_ticks "${GH_PID_OF[$alg]}"); t1=$(now)
            read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
            printf 'login\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$alg" "$rps" "$reqs" "$p50" "$p99" \
                "$non2xx" "$errs" "$((c1 - c0))" "$(secs_between "$t0" "$t1")" >>"$RAW/login.tsv"
            log "login round $r $alg: $rps/s, p99 $p99 ms, non-2xx $non2xx"
        done
    done
}

part_instructions() {
    if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
        warn "instructions: valgrind is not installed (apt-get install -y valgrind); skipped"
        return 0
    fi
    local real=$GATEHOUSE_BIN wrapper=$BENCH_TMP/gatehouse-under-callgrind alg name pid reqs total f n
    cat >"$wrapper" <<WRAP
#!/bin/sh
if [ "\$1" = serve ] || [ "\$3" = serve ]; then
    exec valgrind --tool=callgrind --callgrind-out-file=\$CALLGRIND_OUT \
        --dump-instr=no --instr-atstart=no "$real" "\$@"
fi
exec "$real" "\$@"
WRAP
    chmod +x "$wrapper"
    : >"$RAW/instructions.tsv"
    for alg in $ALGS; do
        name=cg-$alg
        alg_config "$name" "$alg"
        mkdir -p "$RAW/$name"
        CALLGRIND_OUT=$RAW/$name/callgrind.out GATEHOUSE_BIN=$wrapper alg_start "$name"
        pid=${GH_PID_OF[$name]}
        run_wrk "$RAW/$name-warm.txt" 16 2 "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" -H "Authorization: Bearer ${GH_TOKEN_OF[$name]}"
        callgrind_control -i on "$pid" >/dev/null 2>&1
        run_wrk "$RAW/$name-wrk.txt" 16 "$DURATION" "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" -H "Authorization: Bearer ${GH_TOKEN_OF[$name]}"
        callgrind_control -i off "$pid" >/dev/null 2>&1
        callgrind_control -d "$pid" >/dev/null 2>&1
        read -r _ reqs _ _ n _ <<<"$(wrk_parse "$RAW/$name-wrk.txt")"
        ((n == 0)) || die "$name: $n non-2xx answers under callgrind"
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        total=0
        for f in "$RAW/$name"/callgrind.out*; do
            n=$(awk '/^totals:/ { print $2; exit }' "$f")
            total=$((total + ${n:-0}))
        done
        printf 'instructions\t%s\t%s\t%s\n' "$alg" "$reqs" "$total" >>"$RAW/instructions.tsv"
        log "instructions $alg: $total over $reqs requests = $((total / (reqs > 0 ? reqs : 1))) per request"
    done
}

for part in $PARTS; do
    case $part in
        cpu) part_cpu ;;
        login) part_login ;;
        instructions) part_instructions ;;
        *) die "unknown part '$part' (cpu instructions login)" ;;
    esac
done

MD=$BENCH_TMP/algorithms.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test: checks the harness, not a measurement.**"
        echo
    fi
    echo "One gatehouse per algorithm on CPU $SUT_CPU (sled store, one tokio worker), upstream nginx and wrk on CPU $LOADGEN_CPU. $ROUNDS round(s) × $DURATION s, interleaved; wrk $CONNS connections for the GET, $LOGIN_CONNS for logins; medians over rounds; ratios against HS256 from the same run."
    echo
    python3 "$LOAD_DIR/algorithms_report.py" "$RAW" "$CLK_TCK"
} >"$MD"
emit_results "gatehouse key-pair tokens (issue #13)" "$MD"
