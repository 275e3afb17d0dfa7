#!/usr/bin/env bash
# replicas.sh — gatehouse replicas on the PostgreSQL store (issue #12 "Measure", SPEC §8).
#
# Starts a throwaway PostgreSQL (Debian's initdb + pg_ctl into the temp dir, as the
# postgres user when root), runs `gatehouse migrate`, then three PostgreSQL replicas
# (pg1 pg2 pg3) and one sled gatehouse, all on the same secret and argon2 parameters,
# and measures, PARTS in this order:
#
#   propagation  revocation propagation across the 3 replicas: TRIALS logouts on pg1, the
#                time from pg1's 204 to the first 401 on pg2 and on pg3; then
#                DISABLE_TRIALS `gatehouse user disable` (CLI straight to the database),
#                the time from the command's exit to the first 401 on each replica
#                (propagation.py). Goal: p99 ≤ 1 s.
#   cpu          proxied protected GET, sled vs PostgreSQL (pg1), same run, rounds
#                interleaved: req/s and gatehouse CPU µs per request (/proc/PID/stat), and
#                pg_stat_database.xact_commit of the gatehouse database over an idle
#                window and over the wrk window of the same length (the difference is what
#                the proxied load cost the database).
#   instructions user-space instructions per proxied request under callgrind, a sled and a
#                PostgreSQL gatehouse started for it (needs valgrind; skipped without).
#   auth         POST /auth/login (wrk, login.lua) and POST /auth/refresh (wrk, refresh.lua:
#                chained single-use tokens) per second, sled vs PostgreSQL, same run; for
#                PostgreSQL the database's commits per operation and pg_stat_activity
#                sampled every 100 ms (what its backends wait on).
#   scale        proxied throughput of two PostgreSQL replicas vs one (see "layouts" below).
#   loaded       `propagation` again (same TRIALS, DISABLE_TRIALS), while every replica is
#                under proxied load the whole time: one wrk per replica (LOAD_CONNS
#                connections, GETs with the token of a second user, `load`, whom the
#                revocations do not touch), replicas, wrks, PostgreSQL and the driver all
#                sharing both cores (issue #17 target 5: propagation p99 ≤ 1 s under load).
#
# Pinning (2 cores): PostgreSQL, the upstream nginx and wrk on LOADGEN_CPU (0); the
# measured gatehouse on SUT_CPU (1). Every gatehouse is started pinned to one core, so
# tokio gives it one worker thread. For `propagation` the replicas and PostgreSQL are
# allowed both cores (taskset -a -p 0,1), the driver is not pinned.
#
# Scale layouts (each round: dedicated, box1, box2):
#   dedicated  pg1 alone on CPU 1; its upstream nginx and wrk on CPU 0 (the layout of
#              compare.sh: the replica's core does nothing else).
#   box1       one "box": pg1, its upstream nginx and its wrk all on CPU 1; CPU 0 idle
#              except PostgreSQL (the replicas' 250 ms polls).
#   box2       two boxes at once: box1 on CPU 1 and the same with pg2, a second upstream
#              nginx and a second wrk on CPU 0.
#   On a 2-core machine there is no third core for the load generator, so "two replicas,
#   each pinned to one core" means each shares its core with its own load generator and
#   upstream; box2 ÷ box1 is the scaling (2.0 = the sum of two single-core replicas),
#   box1 ÷ dedicated says what sharing the core with wrk and the upstream costs.
#
# Env knobs: PARTS ("propagation cpu instructions auth scale loaded") TRIALS (200) DISABLE_TRIALS (50)
#            LOAD_CONNS (32, per replica, for `loaded`)
#            DURATION (s, 10) ROUNDS (3) CONNS (64) WARMUP (s, 2) LOGIN_CONNS (16)
#            REFRESH_CONNS (16) PG_FSYNC (on) QUICK=1 (2 s, 1 round, 20 trials)
#            RESULTS=FILE SUT_CPU (1) LOADGEN_CPU (0) GATEHOUSE_BIN BUILD GH_LOG_LEVEL KEEP_TMP
# Needs: wrk nginx python3 and Debian's postgresql (initdb, pg_ctl, psql); valgrind for `instructions`.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-2} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1} TRIALS=${TRIALS:-20} DISABLE_TRIALS=${DISABLE_TRIALS:-5}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
TRIALS=${TRIALS:-200}
DISABLE_TRIALS=${DISABLE_TRIALS:-50}
LOGIN_CONNS=${LOGIN_CONNS:-16}
REFRESH_CONNS=${REFRESH_CONNS:-16}
PARTS=${PARTS:-propagation cpu instructions auth scale loaded}
LOAD_CONNS=${LOAD_CONNS:-32}
PG_FSYNC=${PG_FSYNC:-on}
for v in DURATION ROUNDS CONNS WARMUP TRIALS DISABLE_TRIALS LOGIN_CONNS REFRESH_CONNS LOAD_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[[ $PG_FSYNC == on || $PG_FSYNC == off ]] || die "PG_FSYNC must be on or off"

bench_init
need_cmd wrk nginx runuser
gatehouse_build || die "$GH_SKIP_REASON"

# argon2id parameters for every gatehouse here: SPEC §2's defaults, written out so the
# report can name them.
ARGON2_TOML='memory_kib = 19456
iterations = 2
parallelism = 1'

# ---------------------------------------------------------------- PostgreSQL

PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[[ -n $PG_BIN && -x $PG_BIN/initdb ]] || die "PostgreSQL is not installed: apt-get install -y postgresql (RUNLEVEL=1 keeps its service from starting)"
# Its own temp dir beside BENCH_TMP (which is mode 0700 root's when run as root: the postgres
# user could not enter it); removed at exit.
PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-pg.XXXXXX")
PG_AS=()
((EUID == 0)) && PG_AS=(runuser -u postgres --)

pg_stop() {
    [[ -f $PG_DIR/data/postmaster.pid ]] || return 0
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 \
        || "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
}
# Stop PostgreSQL (pg_ctl daemonizes it, so it is not one of BENCH_PIDS) after the gatehouses.
replicas_cleanup() {
    local rc=$?
    set +e
    trap - ERR
    local p
    for p in "${BENCH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    pg_stop
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $PG_DIR"; else rm -rf "$PG_DIR"; fi
    (exit "$rc")
    bench_cleanup
}
trap replicas_cleanup EXIT

pg_start() {   # sets PG_PORT PG_URL PG_PID
    mkdir -p "$PG_DIR/sock"
    ((EUID == 0)) && chown -R postgres:postgres "$PG_DIR"
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C \
        >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    pick_port PG_PORT
    taskset -c "$LOADGEN_CPU" "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $PG_PORT -k $PG_DIR/sock -c listen_addresses=127.0.0.1 -c fsync=$PG_FSYNC -c max_connections=200" \
        start >/dev/null 2>&1 || { tail -n 20 "$PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
    PG_PID=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    pg_sql "CREATE DATABASE gatehouse" >/dev/null
    PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/gatehouse
    PG_VERSION=$(pg_sql "SHOW server_version")
    log "PostgreSQL $PG_VERSION: pid $PG_PID on 127.0.0.1:$PG_PORT (CPU $LOADGEN_CPU, fsync=$PG_FSYNC)"
}

pg_sql() { "$PG_BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "$1"; }

# Transactions committed in the gatehouse database so far (from a session on another database,
# so reading it does not count). The statistics lag by up to about a second for a busy backend.
xact_commit() { pg_sql "SELECT xact_commit FROM pg_stat_database WHERE datname = 'gatehouse'"; }

# ---------------------------------------------------------------- gatehouse instances

declare -A GH_PORT_OF GH_OPS_OF GH_PID_OF GH_CONF_OF GH_TOKEN_OF

gh_config() {   # gh_config NAME BACKEND UP_PORT — writes DIR/gateway.toml, sets GH_CONF_OF etc.
    local name=$1 backend=$2 up=$3 dir=$BENCH_TMP/$1 port ops
    mkdir -p "$dir"
    pick_port port
    pick_port ops
    GH_PORT_OF[$name]=$port GH_OPS_OF[$name]=$ops GH_CONF_OF[$name]=$dir/gateway.toml
    cat >"$dir/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
ops_listen = "127.0.0.1:$ops"

[store]
backend = "$backend"
path = "$dir/data"

[tokens]
issuer = "bench"
audience = "bench"
access_ttl = "24h"

[passwords]
$ARGON2_TOML

$(bench_toml_common "$up")
EOF
}

gh_cli() {   # gh_cli NAME ARGS... (stdin passed through)
    local name=$1
    shift
    GATEHOUSE_SECRET=$BENCH_SECRET GATEHOUSE_STORE_URL=$PG_URL timeout 60 \
        "$GATEHOUSE_BIN" -c "${GH_CONF_OF[$name]}" "$@"
}

gh_start() {   # gh_start NAME CPU
    local name=$1 cpu=$2 dir=$BENCH_TMP/$1
    start_pinned "$cpu" "$dir/gatehouse.log" env GATEHOUSE_SECRET="$BENCH_SECRET" GATEHOUSE_STORE_URL="$PG_URL" \
        "$GATEHOUSE_BIN" serve -c "${GH_CONF_OF[$name]}"
    GH_PID_OF[$name]=$LAST_PID
    wait_http "http://127.0.0.1:${GH_OPS_OF[$name]}/readyz" 200 60 "$LAST_PID" \
        || { tail -n 20 "$dir/gatehouse.log" >&2; die "$name did not become ready"; }
    GH_TOKEN_OF[$name]=$(gh_login "$name" access_token)
    check_auth "$name" "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" "${GH_TOKEN_OF[$name]}" \
        || die "$name failed the token checks"
    log "$name: pid $LAST_PID on 127.0.0.1:${GH_PORT_OF[$name]} (CPU $cpu, $(find "/proc/$LAST_PID/task" -mindepth 1 -maxdepth 1 | wc -l) threads)"
}

gh_login() {   # gh_login NAME FIELD — prints that field of a fresh login's token response
    local body
    body=$(curl -s --fail --max-time 30 -X POST -H 'Content-Type: application/json' \
        --data "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
        "http://127.0.0.1:${GH_PORT_OF[$1]}/auth/login") || die "login on $1 failed"
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$body" "$2"
}

# ---------------------------------------------------------------- set-up

upstream_start upstream1 "$LOADGEN_CPU"
UP1_PORT=$UP_PORT UP1_PID=$UP_PID
upstream_start upstream2 "$LOADGEN_CPU"
UP2_PORT=$UP_PORT UP2_PID=$UP_PID
pg_start

gh_config sled sled "$UP1_PORT"
gh_config pg1 postgres "$UP1_PORT"
gh_config pg2 postgres "$UP2_PORT"
gh_config pg3 postgres "$UP1_PORT"
gh_cli pg1 migrate >"$BENCH_TMP/migrate.log" 2>&1 || { cat "$BENCH_TMP/migrate.log" >&2; die "gatehouse migrate failed"; }
for name in sled pg1; do
    printf '%s\n' "$BENCH_PASSWORD" | gh_cli "$name" user add "$BENCH_USER" --password-stdin >/dev/null 2>&1 \
        || die "user add on $name failed"
done
# The `loaded` part's traffic runs as a second user, whom the revocation trials leave alone.
printf '%s\n' "$BENCH_PASSWORD" | gh_cli pg1 user add load --password-stdin >/dev/null 2>&1 \
    || die "user add load on pg1 failed"
gh_start sled "$SUT_CPU"
gh_start pg1 "$SUT_CPU"
gh_start pg2 "$LOADGEN_CPU"
gh_start pg3 "$LOADGEN_CPU"
PG_NAMES=(pg1 pg2 pg3)

# Seconds between two `date +%s.%N` stamps; such a stamp now.
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
now() { date +%s.%N; }

RAW=$BENCH_TMP/raw
mkdir -p "$RAW"
for name in "${PG_NAMES[@]}"; do echo "${GH_PORT_OF[$name]} $name"; done >"$RAW/names.tsv"
PG_CPU_BEFORE=$(cpu_ticks "$PG_PID")

# ---------------------------------------------------------------- propagation

part_propagation() {
    local ports=${GH_PORT_OF[pg1]},${GH_PORT_OF[pg2]},${GH_PORT_OF[pg3]}
    for name in "${PG_NAMES[@]}"; do repin "0,1" "${GH_PID_OF[$name]}"; done
    repin "0,1" "$PG_PID"
    log "propagation: $TRIALS logouts on pg1, polled on pg2 and pg3"
    python3 "$LOAD_DIR/propagation.py" --ports "$ports" --trials "$TRIALS" --mode logout \
        --user "$BENCH_USER" --password "$BENCH_PASSWORD" >"$RAW/propagation-logout.json" \
        || die "propagation.py (logout) failed"
    if ((DISABLE_TRIALS > 0)); then
        log "propagation: $DISABLE_TRIALS × gatehouse user disable (CLI), polled on pg1, pg2, pg3"
        python3 "$LOAD_DIR/propagation.py" --ports "$ports" --trials "$DISABLE_TRIALS" --mode disable \
            --user "$BENCH_USER" --password "$BENCH_PASSWORD" \
            --cli "env GATEHOUSE_SECRET=$BENCH_SECRET GATEHOUSE_STORE_URL=$PG_URL $GATEHOUSE_BIN -c ${GH_CONF_OF[pg1]}" \
            >"$RAW/propagation-disable.json" || die "propagation.py (disable) failed"
    fi
    repin "$SUT_CPU" "${GH_PID_OF[pg1]}"
    repin "$LOADGEN_CPU" "${GH_PID_OF[pg2]}" "${GH_PID_OF[pg3]}" "$PG_PID"
    # `user disable` ended every session of the user, the ones the load runs use included
    for name in "${PG_NAMES[@]}"; do GH_TOKEN_OF[$name]=$(gh_login "$name" access_token); done
}

# The same trials while every replica serves proxied GETs the whole time.
part_loaded() {
    local ports=${GH_PORT_OF[pg1]},${GH_PORT_OF[pg2]},${GH_PORT_OF[pg3]} name token mode trials body
    local -A wrk_pid_of
    for name in "${PG_NAMES[@]}"; do repin "0,1" "${GH_PID_OF[$name]}"; done
    repin "0,1" "$PG_PID" "$UP1_PID" "$UP2_PID"
    for mode in logout disable; do
        trials=$TRIALS
        [[ $mode == disable ]] && trials=$DISABLE_TRIALS
        ((trials > 0)) || continue
        for name in "${PG_NAMES[@]}"; do
            body=$(curl -s --fail --max-time 30 -X POST -H 'Content-Type: application/json' \
                --data "{\"username\":\"load\",\"password\":\"$BENCH_PASSWORD\"}" \
                "http://127.0.0.1:${GH_PORT_OF[$name]}/auth/login") || die "login of user load on $name failed"
            token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$body")
            # ended with SIGINT (wrk then prints its statistics) once the trials are over
            timeout --kill-after=5 3600 taskset -c 0,1 wrk -t1 -c"$LOAD_CONNS" -d3500s --latency \
                -H "Authorization: Bearer $token" "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" \
                >"$RAW/load-$mode-$name.txt" 2>&1 &
            wrk_pid_of[$name]=$!
            BENCH_PIDS+=("$!")
        done
        sleep 2
        log "loaded: $trials × $mode with ${#PG_NAMES[@]} wrks ($LOAD_CONNS connections each) running"
        local -a cli=()
        [[ $mode == disable ]] && cli=(--cli "env GATEHOUSE_SECRET=$BENCH_SECRET GATEHOUSE_STORE_URL=$PG_URL $GATEHOUSE_BIN -c ${GH_CONF_OF[pg1]}")
        python3 "$LOAD_DIR/propagation.py" --ports "$ports" --trials "$trials" --mode "$mode" \
            --user "$BENCH_USER" --password "$BENCH_PASSWORD" "${cli[@]}" >"$RAW/propagation-loaded-$mode.json" \
            || die "propagation.py ($mode, under load) failed"
        : >"$RAW/load-loaded-$mode.tsv"
        for name in "${PG_NAMES[@]}"; do
            kill -INT "${wrk_pid_of[$name]}" 2>/dev/null || true
            wait "${wrk_pid_of[$name]}" 2>/dev/null || true
            read -r rps reqs _ p99 non2xx errs <<<"$(wrk_parse "$RAW/load-$mode-$name.txt")"
            printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$reqs" "$p99" "$((non2xx + errs))" >>"$RAW/load-loaded-$mode.tsv"
            log "loaded $mode: $name served $rps req/s meanwhile (p99 $p99 ms, non-2xx $non2xx, errors $errs)"
        done
    done
    repin "$SUT_CPU" "${GH_PID_OF[pg1]}"
    repin "$LOADGEN_CPU" "${GH_PID_OF[pg2]}" "${GH_PID_OF[pg3]}" "$PG_PID" "$UP1_PID" "$UP2_PID"
    for name in "${PG_NAMES[@]}"; do GH_TOKEN_OF[$name]=$(gh_login "$name" access_token); done
}

# token_ok NAME: the token the load runs use must get 200 (a run of fast 401s measures nothing)
token_ok() {
    local code
    code=$(http_status -H "Authorization: Bearer ${GH_TOKEN_OF[$1]}" "http://127.0.0.1:${GH_PORT_OF[$1]}/hello")
    [[ $code == 200 ]] || die "$1: the load token gets $code, not 200"
}

# ---------------------------------------------------------------- cpu

part_cpu() {
    local r name url out c0 c1 t0 t1 x0 x1 x2 i0 i1 b0 b1
    local rps reqs p50 p99 non2xx errs
    : >"$RAW/cpu.tsv"
    for name in sled pg1; do
        token_ok "$name"
        if ((WARMUP > 0)); then
            run_wrk "$RAW/warm-$name.txt" "$CONNS" "$WARMUP" "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" \
                -H "Authorization: Bearer ${GH_TOKEN_OF[$name]}"
        fi
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for name in sled pg1; do
            url=http://127.0.0.1:${GH_PORT_OF[$name]}/hello
            out=$RAW/cpu-$name-$r.txt
            x0=0 x1=0 x2=0 i0=0 i1=0
            if [[ $name == pg1 ]]; then
                # the same length of time without load: the followers' background polling
                x0=$(xact_commit); i0=$(now)
                sleep "$DURATION"
                x1=$(xact_commit); i1=$(now)
            fi
            c0=$(cpu_ticks "${GH_PID_OF[$name]}"); b0=$(cpu_core_busy_ticks "$SUT_CPU"); t0=$(now)
            run_wrk "$out" "$CONNS" "$DURATION" "$url" -H "Authorization: Bearer ${GH_TOKEN_OF[$name]}"
            c1=$(cpu_ticks "${GH_PID_OF[$name]}"); b1=$(cpu_core_busy_ticks "$SUT_CPU"); t1=$(now)
            [[ $name == pg1 ]] && x2=$(xact_commit)
            read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$name" "$rps" "$reqs" "$p50" "$p99" \
                "$non2xx" "$errs" "$((c1 - c0))" "$(secs_between "$t0" "$t1")" "$((b1 - b0))" \
                "$((x1 - x0))" "$((x2 - x1))" "$(secs_between "$i0" "$i1")" >>"$RAW/cpu.tsv"
            log "cpu round $r $name: $rps req/s, $(awk -v t=$((c1 - c0)) -v n="$reqs" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }') µs/req, non-2xx $non2xx; xact_commit idle +$((x1 - x0)), under load +$((x2 - x1))"
        done
    done
}

# ---------------------------------------------------------------- auth

# A profile of the database side: every 100 ms, what each gatehouse backend is doing
# (pg_stat_activity: state and wait event), one line per busy backend, into FILE.
pg_waits_start() {   # pg_waits_start FILE — sets WAITS_PID
    (
        while :; do
            pg_sql "SELECT state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU') \
                    FROM pg_stat_activity WHERE datname = 'gatehouse' AND backend_type = 'client backend' \
                    AND state <> 'idle'" || true
            sleep 0.1
        done
    ) >"$1" 2>/dev/null &
    WAITS_PID=$!
    BENCH_PIDS+=("$WAITS_PID")
}
pg_waits_stop() { kill "$WAITS_PID" 2>/dev/null || true; wait "$WAITS_PID" 2>/dev/null || true; }

part_auth() {
    local r kind name url out c0 c1 p0 p1 t0 t1 x0 x1 i rps reqs p50 p99 non2xx errs
    : >"$RAW/auth.tsv"
    export LOGIN_USER=$BENCH_USER LOGIN_PASSWORD=$BENCH_PASSWORD
    for ((r = 1; r <= ROUNDS; r++)); do
        for kind in login refresh; do
            for name in sled pg1; do
                url=http://127.0.0.1:${GH_PORT_OF[$name]}/auth/$kind
                out=$RAW/$kind-$name-$r.txt
                local -a script=(-s "$LOAD_DIR/login.lua")
                local conns=$LOGIN_CONNS
                if [[ $kind == refresh ]]; then
                    : >"$RAW/tokens-$name-$r.txt"
                    # one more than connections: wrk spends one on its check of request()
                    for ((i = 0; i <= REFRESH_CONNS; i++)); do gh_login "$name" refresh_token >>"$RAW/tokens-$name-$r.txt"; done
                    script=(-s "$LOAD_DIR/refresh.lua") conns=$REFRESH_CONNS
                fi
                x0=$(xact_commit)
                [[ $name == pg1 ]] && pg_waits_start "$RAW/waits-$kind-$r.txt"
                c0=$(cpu_ticks "${GH_PID_OF[$name]}"); p0=$(cpu_ticks "$PG_PID"); t0=$(now)
                REFRESH_TOKENS_FILE=$RAW/tokens-$name-$r.txt run_wrk "$out" "$conns" "$DURATION" "$url" --timeout 30s "${script[@]}"
                c1=$(cpu_ticks "${GH_PID_OF[$name]}"); p1=$(cpu_ticks "$PG_PID"); t1=$(now)
                [[ $name == pg1 ]] && pg_waits_stop
                x1=$(xact_commit)
                read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$out")"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$kind" "$name" "$rps" "$reqs" "$p50" "$p99" \
                    "$non2xx" "$errs" "$((c1 - c0))" "$((p1 - p0))" "$(secs_between "$t0" "$t1")" "$((x1 - x0))" >>"$RAW/auth.tsv"
                log "auth round $r $kind $name: $rps/s, p50 $p50 ms, non-2xx $non2xx, errors $errs"
            done
        done
    done
}

# ---------------------------------------------------------------- instructions

# User-space instructions per proxied request under callgrind, sled vs PostgreSQL: a count
# that does not depend on what else runs on the machine (the CPU-time figures of `cpu` do).
# Each runs under valgrind with instrumentation on only for the measured window, which
# includes the PostgreSQL replica's background polls of the change log.
part_instructions() {
    if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_control >/dev/null 2>&1; then
        warn "instructions: valgrind is not installed (apt-get install -y valgrind); skipped"
        return 0
    fi
    local real=$GATEHOUSE_BIN wrapper=$BENCH_TMP/gatehouse-under-callgrind name backend pid reqs total f n
    cat >"$wrapper" <<EOF
#!/bin/sh
if [ "\$1" = serve ]; then
    exec valgrind --tool=callgrind --callgrind-out-file=\$CALLGRIND_OUT \
        --dump-instr=no --instr-atstart=no "$real" "\$@"
fi
exec "$real" "\$@"
EOF
    chmod +x "$wrapper"
    : >"$RAW/instructions.tsv"
    for name in cg-sled cg-pg; do
        backend=postgres
        [[ $name == cg-sled ]] && backend=sled
        gh_config "$name" "$backend" "$UP1_PORT"
        if [[ $backend == sled ]]; then
            printf '%s\n' "$BENCH_PASSWORD" | gh_cli "$name" user add "$BENCH_USER" --password-stdin >/dev/null 2>&1 \
                || die "user add on $name failed"
        fi
        mkdir -p "$RAW/$name"
        CALLGRIND_OUT=$RAW/$name/callgrind.out GATEHOUSE_BIN=$wrapper gh_start "$name" "$SUT_CPU"
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
        for f in "$RAW/$name"/callgrind.out.*; do
            n=$(awk '/^totals:/ { print $2; exit }' "$f")
            total=$((total + ${n:-0}))
        done
        printf '%s\t%s\t%s\n' "$name" "$reqs" "$total" >>"$RAW/instructions.tsv"
        log "instructions $name: $total over $reqs requests = $((total / (reqs > 0 ? reqs : 1))) per request"
    done
}

# ---------------------------------------------------------------- scale

# scale_wrk LAYOUT ROUND NAME CPU — one wrk pinned to CPU against NAME, in the background (WRK_PID)
scale_wrk() {
    local layout=$1 r=$2 name=$3 cpu=$4
    LOADGEN_CPU=$cpu run_wrk "$RAW/scale-$layout-$name-$r.txt" "$CONNS" "$DURATION" \
        "http://127.0.0.1:${GH_PORT_OF[$name]}/hello" -H "Authorization: Bearer ${GH_TOKEN_OF[$name]}" &
    WRK_PID=$!
}

scale_run() {   # scale_run LAYOUT ROUND NAME...
    local layout=$1 r=$2 name c0 c1 t0 t1 rps reqs p50 p99 non2xx errs pids=() cpu
    shift 2
    declare -A before
    for name in "$@"; do before[$name]=$(cpu_ticks "${GH_PID_OF[$name]}"); done
    t0=$(now)
    for name in "$@"; do
        cpu=$SUT_CPU
        [[ $layout == dedicated ]] && cpu=$LOADGEN_CPU
        [[ $name == pg2 ]] && cpu=$LOADGEN_CPU
        scale_wrk "$layout" "$r" "$name" "$cpu"
        pids+=("$WRK_PID")
    done
    for p in "${pids[@]}"; do wait "$p" || die "wrk failed ($layout)"; done
    t1=$(now)
    for name in "$@"; do
        c1=$(cpu_ticks "${GH_PID_OF[$name]}")
        read -r rps reqs p50 p99 non2xx errs <<<"$(wrk_parse "$RAW/scale-$layout-$name-$r.txt")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$layout" "$name" "$rps" "$reqs" "$p50" "$p99" \
            "$non2xx" "$errs" "$((c1 - before[$name]))" "$(secs_between "$t0" "$t1")" >>"$RAW/scale.tsv"
        log "scale round $r $layout $name: $rps req/s, p99 $p99 ms, non-2xx $non2xx"
    done
}

part_scale() {
    local r
    : >"$RAW/scale.tsv"
    token_ok pg1
    token_ok pg2
    for ((r = 1; r <= ROUNDS; r++)); do
        # dedicated: pg1 alone on SUT_CPU, its upstream and wrk on LOADGEN_CPU
        repin "$SUT_CPU" "${GH_PID_OF[pg1]}"
        repin "$LOADGEN_CPU" "$UP1_PID" "${GH_PID_OF[pg2]}"
        scale_run dedicated "$r" pg1
        # box1: pg1 + upstream1 + wrk on SUT_CPU
        repin "$SUT_CPU" "$UP1_PID"
        scale_run box1 "$r" pg1
        # box2: box1 plus pg2 + upstream2 + wrk on LOADGEN_CPU
        repin "$LOADGEN_CPU" "$UP2_PID" "${GH_PID_OF[pg2]}"
        scale_run box2 "$r" pg1 pg2
        repin "$LOADGEN_CPU" "$UP1_PID"
    done
}

for part in $PARTS; do
    case $part in
        propagation) part_propagation ;;
        cpu) part_cpu ;;
        auth) part_auth ;;
        instructions) part_instructions ;;
        scale) part_scale ;;
        loaded) part_loaded ;;
        *) die "unknown part '$part' (propagation cpu instructions auth scale loaded)" ;;
    esac
    for name in sled "${PG_NAMES[@]}"; do
        kill -0 "${GH_PID_OF[$name]}" 2>/dev/null || die "$name exited during $part"
    done
done

MD=$BENCH_TMP/replicas.md
{
    if [[ ${QUICK:-0} == 1 ]]; then
        echo "**QUICK smoke test: checks the harness, not a measurement.**"
        echo
    fi
    echo "PostgreSQL $PG_VERSION (fsync=$PG_FSYNC, synchronous_commit=on, otherwise defaults), on CPU $LOADGEN_CPU with the upstream nginx and wrk. Replicas pg1 pg2 pg3 on one database, sled gatehouse beside them; every gatehouse pinned to one core at start (one tokio worker). argon2id: memory_kib 19456, iterations 2, parallelism 1 (SPEC defaults). $ROUNDS round(s) × $DURATION s, wrk ${CONNS} connections for proxied GETs; medians over rounds."
    echo
    python3 "$LOAD_DIR/replicas_report.py" "$RAW" "$CLK_TCK" "$CONNS" "$LOGIN_CONNS" "$REFRESH_CONNS"
    echo
    echo "PostgreSQL server CPU over the whole run: $(awk -v t=$(($(cpu_ticks "$PG_PID") - PG_CPU_BEFORE)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f s", t / hz }')."
} >"$MD"
emit_results "gatehouse replicas on PostgreSQL" "$MD"
