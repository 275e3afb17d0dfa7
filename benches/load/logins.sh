#!/usr/bin/env bash
# logins.sh — logins per second per core: gatehouse next to the seed reference app
# (issue #17 target 6).
#
# gatehouse (`POST /auth/login`, JSON, argon2id at its defaults, sled store) and the seed
# reference app (benches/load/reference_app: FastAPI's OAuth2 password + JWT tutorial,
# `POST /token` with a form, passlib bcrypt at its default 12 rounds, one uvicorn worker),
# both pinned to SUT_CPU, both alive for the whole run, loaded in turn with the same wrk
# harness (LOGIN_CONNS connections, one wrk thread on LOADGEN_CPU): rounds interleaved
# (gatehouse, reference, gatehouse, …). Per run: logins/s, p50/p99, CPU per login of the
# process tree (/proc/PID/stat), how busy that was (≈ 100%: the core was the limit), and
# non-2xx answers (must be 0: a fast 401 or 429 is not a login).
#
# The reference app is installed into a venv (target/bench-venv/reference, from
# reference_app/requirements.txt: pip from the package index) the first time.
#
# Env knobs: DURATION (s, 10) ROUNDS (3) LOGIN_CONNS (8) WARMUP (s, 2) QUICK=1 (2 s, 1 round)
#            RESULTS=FILE SUT_CPU LOADGEN_CPU GATEHOUSE_BIN BUILD GH_LOG_LEVEL KEEP_TMP
# Needs: wrk nginx python3 (venv + pip).

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
LOGIN_CONNS=${LOGIN_CONNS:-8}
WARMUP=${WARMUP:-2}
for v in DURATION ROUNDS LOGIN_CONNS WARMUP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done

bench_init
need_cmd wrk nginx
gatehouse_build || die "$GH_SKIP_REASON"
REF_PY=$(bench_venv reference "$LOAD_DIR/reference_app/requirements.txt") || die "cannot set up the reference app's venv"

upstream_start upstream "$LOADGEN_CPU"
gatehouse_start "" || die "$GH_SKIP_REASON"
[[ $GH_TOKEN_SOURCE == "POST /auth/login" ]] || die "POST /auth/login is not available ($GH_TOKEN_SOURCE)"

# The reference app: one uvicorn worker on SUT_CPU, access log off (as gatehouse's).
pick_port REF_PORT
REF_DIR=$BENCH_TMP/reference
mkdir -p "$REF_DIR"
REFERENCE_SECRET=$BENCH_SECRET REFERENCE_USER=$BENCH_USER REFERENCE_PASSWORD=$BENCH_PASSWORD \
    start_pinned "$SUT_CPU" "$REF_DIR/uvicorn.log" "$REF_PY" -m uvicorn --app-dir "$LOAD_DIR/reference_app" app:app \
    --host 127.0.0.1 --port "$REF_PORT" --workers 1 --no-access-log --log-level warning
REF_PID=$LAST_PID
wait_http "http://127.0.0.1:$REF_PORT/users/me/" 401 60 "$REF_PID" \
    || { cat "$REF_DIR/uvicorn.log" >&2; die "the reference app did not start"; }
code=$(http_status -X POST --data "grant_type=password&username=$BENCH_USER&password=$BENCH_PASSWORD" "http://127.0.0.1:$REF_PORT/token")
[[ $code == 200 ]] || die "reference app: POST /token answered $code"
code=$(http_status -X POST --data "grant_type=password&username=$BENCH_USER&password=wrong-password" "http://127.0.0.1:$REF_PORT/token")
[[ $code == 401 ]] || die "reference app: a wrong password got $code, not 401"
log "reference app: pid $REF_PID on 127.0.0.1:$REF_PORT (CPU $SUT_CPU; $("$REF_PY" -c 'import fastapi, uvicorn, passlib, bcrypt; print("fastapi", fastapi.__version__, "uvicorn", uvicorn.__version__, "passlib", passlib.__version__, "bcrypt", bcrypt.__version__)'))"
REF_VERSIONS=$("$REF_PY" -c 'import fastapi, uvicorn, passlib, bcrypt, jwt, sys; print(f"Python {sys.version.split()[0]}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, passlib {passlib.__version__}, bcrypt {bcrypt.__version__}, PyJWT {jwt.__version__}")')

export LOGIN_USER=$BENCH_USER LOGIN_PASSWORD=$BENCH_PASSWORD
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

RUNS=$BENCH_TMP/logins.tsv
: >"$RUNS"
login_run() {   # login_run ROUND TARGET DURATION
    local r=$1 target=$2 dur=$3 out=$BENCH_TMP/$2-$1.txt pid url lua c0 c1 t0 t1 rps reqs p50 p99 non2xx errs
    if [[ $target == gatehouse ]]; then
        pid=$GH_PID url=http://127.0.0.1:$GH_PORT/auth/login lua=$LOAD_DIR/login.lua
    else
        pid=$REF_PID url=http://127.0.0.1:$REF_PORT/token lua=$LOAD_DIR/login_form.lua
    fi
    c0=$(cpu_ticks "$pid"); t0=$(now)
    run_wrk "$out" "$LOGIN_CONNS" "$dur" "$url" --timeout 30s -s "$lua"
    c1=$(cpu_ticks "$pid"); t1=$(now)
    kill -0 "$pid" 2>/dev/null || die "$target exited during round $r"
    ((r == 0)) && return 0
    read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$target" "$rps" "$reqs" "$p50" "$p99" "$non2xx" "$errs" \
        "$((c1 - c0))" "$(secs_between "$t0" "$t1")" >>"$RUNS"
    log "round $r $target: $rps logins/s, p99 $p99 ms, CPU $(awk -v t=$((c1 - c0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", n ? t / hz * 1000 / n : 0 }') ms/login, non-2xx $non2xx, errors $errs"
}

if ((WARMUP > 0)); then
    login_run 0 gatehouse "$WARMUP"
    login_run 0 reference "$WARMUP"
fi
for ((r = 1; r <= ROUNDS; r++)); do
    login_run "$r" gatehouse "$DURATION"
    login_run "$r" reference "$DURATION"
done

MD=$BENCH_TMP/logins.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test: checks the harness, not a measurement.**"
        echo
    fi
    echo "Both on CPU $SUT_CPU (gatehouse: one tokio worker and one argon2 thread; the reference app: one uvicorn worker), wrk ($LOGIN_CONNS connections, one thread) on CPU $LOADGEN_CPU; $ROUNDS round(s) × $DURATION s, interleaved; medians over rounds. gatehouse: \`POST /auth/login\` (JSON), argon2id defaults (19456 KiB, 2 iterations, parallelism 1), sled. Reference app: \`POST /token\` (form), passlib bcrypt 12 rounds, $REF_VERSIONS."
    echo
    python3 - "$RUNS" "$CLK_TCK" <<'PY'
import statistics, sys
from collections import defaultdict
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz = int(sys.argv[2])
by = defaultdict(dict)
for r, target, rps, reqs, p50, p99, non2xx, errs, ticks, secs in rows:
    n = int(reqs)
    by[target][r] = dict(rps=float(rps), p50=float(p50), p99=float(p99), bad=int(non2xx) + int(errs),
                         cpu_ms=(int(ticks) / hz * 1000 / n) if n else 0, busy=int(ticks) / hz / float(secs))
med = statistics.median
print("| target | logins/s (per round) | p50 ms | p99 ms | CPU ms per login | CPU busy | non-2xx + errors |")
print("|---|---|---:|---:|---:|---:|---:|")
for t in ("gatehouse", "reference"):
    xs = list(by[t].values())
    per_round = ", ".join("%.1f" % x["rps"] for x in xs)
    print(f"| {t} | **{med([x['rps'] for x in xs]):.1f}** ({per_round}) | {med([x['p50'] for x in xs]):.1f} "
          f"| {med([x['p99'] for x in xs]):.1f} | {med([x['cpu_ms'] for x in xs]):.1f} | {med([x['busy'] for x in xs]):.0%} | {sum(x['bad'] for x in xs)} |")
ratios = [by["gatehouse"][r]["rps"] / by["reference"][r]["rps"] for r in by["gatehouse"] if r in by["reference"] and by["reference"][r]["rps"]]
cpu = [by["reference"][r]["cpu_ms"] / by["gatehouse"][r]["cpu_ms"] for r in by["gatehouse"] if r in by["reference"] and by["gatehouse"][r]["cpu_ms"]]
print()
print(f"gatehouse ÷ reference app, logins/s: **{med(ratios):.2f}×** (per round {', '.join(f'{x:.2f}' for x in ratios)}); "
      f"CPU per login reference ÷ gatehouse: {med(cpu):.2f}× (per round {', '.join(f'{x:.2f}' for x in cpu)}).")
PY
} >"$MD"
emit_results "gatehouse logins per core vs the seed reference app (issue #17 target 6)" "$MD"
