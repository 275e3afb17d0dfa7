#!/usr/bin/env bash
# scale.sh — gatehouse with a big store (issue #17 target 2): USERS users and SESSIONS
# refresh sessions, on sled and on PostgreSQL, against the same gatehouse on an empty store.
#
# Filling (both backends, one file): the bench user is made with `gatehouse user add` in a
# scratch sled store and exported (`gatehouse store export`) to get one real argon2id PHC
# hash; scale_snapshot.py writes a `store export` file with that user, USERS-1 more users
# reusing its hash, and SESSIONS sessions (with one refresh token per token session).
# The product's `gatehouse store import FILE` cannot load it into sled at the default
# sizes (issue #17 findings): it writes one transaction that sled holds in memory (it
# passed 11 GB of RSS before it was stopped). So, bench-only: sled gets
# examples/scale_fill_sled.rs (built with `cargo build --example scale_fill_sled` when
# SLED_FILL is missing), which writes the file into the store's trees in batches.
# PostgreSQL gets the file's lines COPYed into a staging table and INSERT … SELECTed into
# the tables (PG_FILL=sql, the faster fill), or the product's verb (PG_FILL=import; it
# imports in COPY chunks since 2026-12-04, 65 s for the default sizes).
# Why not `gatehouse user import` for the users: it makes new user ids, and sessions must
# name their user's id; `store import` takes both at once and refuses a store that is not
# empty, so users and sessions go in together. (The fill time
# of each backend is reported; it is a one-off, not what is measured.)
#
# The session mix (of SESSIONS; ended ones are what a steady store holds: the purge removes
# sessions ended more than the grace ago, so "ended" here means within the grace, plus a
# few just past it that the next purge takes):
#   5 %  ended within the grace (access_ttl + leeway: tokens of them may still be live)
#   1 %  ended just past the grace (awaiting the purge)
#   2 %  live browser sessions (SPEC §10; no refresh token)
#   rest live token sessions of their user's current generation, one refresh token each
# spread round-robin over the users.
#
# Measured, per backend ("big" = the filled store, "empty" = only the bench user):
#   start  ROUNDS × {big, empty} alternating: spawn → GET /readyz 200 (SPEC §6) in ms,
#          VmRSS SETTLE s after ready, VmRSS again once idle (the start-up purge done; at
#          most IDLE_RSS_WAIT s), VmHWM (peak). With BASELINE_BIN set, the same on the
#          big store for that binary too (before/after in one run).
#   cpu    big and empty gatehouse both running (pinned to SUT_CPU), protected GET /hello
#          with wrk, ROUNDS rounds alternating: gatehouse CPU µs per request (/proc stat)
#   instr  user-space instructions per protected GET under callgrind, big and empty (needs
#          valgrind; skipped without). Noise-free.
#
# Env knobs: USERS (100000) SESSIONS (1000000) BACKENDS ("sled postgres")
#            PARTS ("start cpu instr") ROUNDS (3) DURATION (s, 5) CONNS (16) SETTLE (s, 2)
#            CALLGRIND_DURATION (s, 5) IDLE_RSS_WAIT (s, 180) IDLE_WAIT (s, 0: cpu and instr start measuring
#            once gatehouse is idle, waiting at most this long, ×4 under callgrind — the
#            start-up purge on a big sled store takes tens of seconds) BASELINE_BIN (unset)
#            START_BINS ("label=path ...": more binaries for the start part) SLED_FILL (the filler's
#            path: target/debug/examples/scale_fill_sled) PG_FILL (sql: COPY + INSERT …
#            SELECT; import: `gatehouse store import`, which fails at the default sizes, see
#            above) PG_FSYNC (off: the fill is not
#            what is measured) QUICK=1 (USERS 10000, SESSIONS 100000, 1 round, 2 s)
#            RESULTS=FILE SUT_CPU (1) LOADGEN_CPU (0) GATEHOUSE_BIN BUILD GH_LOG_LEVEL KEEP_TMP
#            START_FRESH (0; 1: every start on the big sled store opens a fresh copy of the
#            store as filled, so every round's start-up purge does the same work — without
#            it only the first round's purge removes anything, and later rounds re-open a
#            store sled has rewritten; costs a copy of the store, ~10 s, per start)
# Needs: wrk nginx python3 curl; for postgres Debian's postgresql (initdb, pg_ctl, psql);
#        valgrind for `instr`. Disk: about 1 GB of temp files at the default sizes.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    USERS=${USERS:-10000} SESSIONS=${SESSIONS:-100000} ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-2}
    CALLGRIND_DURATION=${CALLGRIND_DURATION:-2}
fi
USERS=${USERS:-100000}
SESSIONS=${SESSIONS:-1000000}
BACKENDS=${BACKENDS:-sled postgres}
PARTS=${PARTS:-start cpu instr}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-16}
SETTLE=${SETTLE:-2}
CALLGRIND_DURATION=${CALLGRIND_DURATION:-5}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_RSS_WAIT=${IDLE_RSS_WAIT:-180}
START_FRESH=${START_FRESH:-0}
[[ $START_FRESH == 0 || $START_FRESH == 1 ]] || die "START_FRESH must be 0 or 1, got '$START_FRESH'"
PG_FSYNC=${PG_FSYNC:-off}
PG_FILL=${PG_FILL:-sql}
export PG_FILL
[[ $PG_FILL == import || $PG_FILL == sql ]] || die "PG_FILL must be import or sql"
for v in USERS SESSIONS ROUNDS DURATION CONNS SETTLE CALLGRIND_DURATION IDLE_WAIT IDLE_RSS_WAIT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((USERS >= 1)) || die "USERS must be ≥ 1"
for b in $BACKENDS; do [[ $b == sled || $b == postgres ]] || die "BACKENDS: sled and/or postgres, got '$b'"; done
[[ -z ${BASELINE_BIN:-} || -x $BASELINE_BIN ]] || die "BASELINE_BIN=$BASELINE_BIN is not executable"
# START_BINS="label=path ...": more binaries for the start part only (target big@label).
declare -A START_BIN
for pair in ${START_BINS:-}; do
    [[ $pair == *=* && -x ${pair#*=} ]] || die "START_BINS: '$pair' is not label=executable"
    START_BIN[${pair%%=*}]=${pair#*=}
done
export START_BINS

bench_init
need_cmd wrk nginx
gatehouse_build || die "$GH_SKIP_REASON"
SLED_FILL=${SLED_FILL:-$REPO_ROOT/target/debug/examples/scale_fill_sled}
if [[ " $BACKENDS " == *" sled "* && ! -x $SLED_FILL ]]; then
    log "building the sled filler: cargo build --example scale_fill_sled"
    (cd "$REPO_ROOT" && timeout 1800 cargo build --example scale_fill_sled) >"$BENCH_TMP/fill-build.log" 2>&1 \
        || { tail -n 15 "$BENCH_TMP/fill-build.log" >&2; die "cannot build examples/scale_fill_sled.rs"; }
fi
upstream_start upstream "$LOADGEN_CPU"

RAW=$BENCH_TMP/raw
mkdir -p "$RAW"
MS() { echo $(($(date +%s%N) / 1000000)); }

# ---------------------------------------------------------------- PostgreSQL (load/pg.sh)

# The throwaway PostgreSQL (initdb + pg_ctl into a temp dir, stopped and removed at exit).
[[ " $BACKENDS " == *" postgres "* ]] && source "$LOAD_DIR/pg.sh"

# pg_fill_sql DB: the snapshot file's records into the tables straight (PG_FILL=sql): each
# line into a staging table as jsonb (the lines hold no backslash or tab, so COPY's text
# format takes them as they are), then one INSERT … SELECT per table.
pg_fill_sql() {
    local db=$1
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" <<EOF
BEGIN;
CREATE TEMP TABLE line (j jsonb);
\\copy line FROM '$SNAPSHOT'
INSERT INTO users (id, username, canonical, password_hash, roles, enabled, created, password_changed_at, generation)
  SELECT j->>'id', j->>'username', j->>'canonical', j->>'password_hash',
         ARRAY(SELECT jsonb_array_elements_text(j->'roles')), (j->>'enabled')::boolean,
         (j->>'created')::bigint, (j->>'password_changed_at')::bigint, (j->>'generation')::bigint
  FROM line WHERE j->>'type' = 'user';
INSERT INTO sessions (user_id, family, created, generation, expires_at, ended_at, cookie_hash, last_seen, remember_me)
  SELECT j->>'user_id', j->>'family', (j->>'created')::bigint, (j->>'generation')::bigint,
         (j->>'expires_at')::bigint, (j->>'ended_at')::bigint,
         decode(j->'browser'->>'cookie_hash', 'hex'), (j->'browser'->>'last_seen')::bigint,
         (j->'browser'->>'remember_me')::boolean
  FROM line WHERE j->>'type' = 'session';
INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at, spent)
  SELECT decode(j->>'token_hash', 'hex'), j->>'family', j->>'user_id', (j->>'expires_at')::bigint,
         (j->>'spent')::boolean
  FROM line WHERE j->>'type' = 'refresh_token';
COMMIT;
EOF
}

# ---------------------------------------------------------------- gatehouse instances

declare -A CONF_OF URL_OF PORT_OF OPS_OF

# gh_config NAME BACKEND: a config in $BENCH_TMP/NAME (sled: its own store; postgres: its own
# database NAME). Default token lifetimes: the grace is access_ttl 15m + leeway 30s.
gh_config() {
    local name=$1 backend=$2 dir=$BENCH_TMP/$1 port ops
    mkdir -p "$dir"
    pick_port port
    pick_port ops
    PORT_OF[$name]=$port OPS_OF[$name]=$ops CONF_OF[$name]=$dir/gateway.toml URL_OF[$name]=
    if [[ $backend == postgres ]]; then
        pg_sql "CREATE DATABASE $name" >/dev/null
        URL_OF[$name]=postgres://postgres@127.0.0.1:$PG_PORT/$name
    fi
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

$(bench_toml_common)
EOF
}

gh_cli() {   # gh_cli NAME ARGS... (stdin passed through)
    local name=$1
    shift
    env GATEHOUSE_SECRET="$BENCH_SECRET" ${URL_OF[$name]:+GATEHOUSE_STORE_URL=${URL_OF[$name]}} \
        timeout 3600 "$GATEHOUSE_BIN" -c "${CONF_OF[$name]}" "$@"
}

# gh_spawn NAME [BIN [WRAPPER...]]: start `serve`, pinned to SUT_CPU; sets GH_PID, and
# READY_MS (spawn → /readyz 200, polled every 10 ms). False when not ready within 600 s.
gh_spawn() {
    local name=$1 bin=${2:-$GATEHOUSE_BIN} t0 deadline code
    shift 2 || shift $#
    t0=$(MS)
    start_pinned "$SUT_CPU" "$BENCH_TMP/$name/gatehouse.log" env GATEHOUSE_SECRET="$BENCH_SECRET" \
        ${URL_OF[$name]:+GATEHOUSE_STORE_URL=${URL_OF[$name]}} "$@" "$bin" serve -c "${CONF_OF[$name]}"
    GH_PID=$LAST_PID
    deadline=$((SECONDS + 600))
    while ((SECONDS < deadline)); do
        kill -0 "$GH_PID" 2>/dev/null || { tail -n 20 "$BENCH_TMP/$name/gatehouse.log" >&2; return 1; }
        code=$(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "http://127.0.0.1:${OPS_OF[$name]}/readyz" || true)
        if [[ $code == 200 ]]; then
            READY_MS=$(($(MS) - t0))
            return 0
        fi
        sleep 0.01
    done
    return 1
}

gh_stop() {   # gh_stop PID: TERM, wait (sled's lock is free again afterwards)
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# wait_idle PID TIMEOUT_S: until the process used under 5 % of a core over a second (the
# start-up purge, which scans every session and refresh token, is done), at most TIMEOUT_S;
# prints the seconds waited.
wait_idle() {
    local pid=$1 timeout=$2 t0=$SECONDS a b
    while ((SECONDS - t0 < timeout)); do
        a=$(cpu_ticks "$pid"); sleep 1; b=$(cpu_ticks "$pid")
        (((b - a) * 100 < 5 * CLK_TCK)) && break
    done
    echo $((SECONDS - t0))
}

status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

gh_token() {   # gh_token NAME: a fresh login's access token
    local body
    body=$(curl -s --fail --max-time 120 -X POST -H 'Content-Type: application/json' \
        --data "{\"username\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" \
        "http://127.0.0.1:${PORT_OF[$1]}/auth/login") || die "login on $1 failed"
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$body"
}

# ---------------------------------------------------------------- the snapshot file

gh_config seed sled
printf '%s\n' "$BENCH_PASSWORD" | gh_cli seed user add "$BENCH_USER" --password-stdin >"$RAW/seed-user.log" 2>&1 \
    || { cat "$RAW/seed-user.log" >&2; die "user add failed"; }
gh_cli seed store export >"$RAW/seed.jsonl" 2>"$RAW/seed-export.log" \
    || { cat "$RAW/seed-export.log" >&2; die "store export failed"; }
SNAPSHOT=$BENCH_TMP/scale.jsonl
t0=$(MS)
python3 "$LOAD_DIR/scale_snapshot.py" --seed "$RAW/seed.jsonl" --users "$USERS" --sessions "$SESSIONS" \
    --now "$(date +%s)" --grace 930 >"$SNAPSHOT" 2>"$RAW/snapshot.log" \
    || { cat "$RAW/snapshot.log" >&2; die "scale_snapshot.py failed"; }
log "snapshot: $(cat "$RAW/snapshot.log") in $(($(MS) - t0)) ms, $(du -h "$SNAPSHOT" | cut -f1)"
MIX=$(cat "$RAW/snapshot.log")

# ---------------------------------------------------------------- fill the stores

[[ " $BACKENDS " == *" postgres "* ]] && pg_start
declare -A FILL_MS
for backend in $BACKENDS; do
    big=${backend}_big empty=${backend}_empty
    gh_config "$big" "$backend"
    gh_config "$empty" "$backend"
    if [[ $backend == postgres ]]; then
        gh_cli "$big" migrate >"$RAW/$big-migrate.log" 2>&1 || { cat "$RAW/$big-migrate.log" >&2; die "migrate failed"; }
        gh_cli "$empty" migrate >"$RAW/$empty-migrate.log" 2>&1 || { cat "$RAW/$empty-migrate.log" >&2; die "migrate failed"; }
    fi
    t0=$(MS)
    if [[ $backend == sled ]]; then
        log "$big: scale_fill_sled ($USERS users, $SESSIONS sessions)"
        "$SLED_FILL" "$SNAPSHOT" "$BENCH_TMP/$big/data" >"$RAW/$big-import.log" 2>&1 \
            || { tail -n 5 "$RAW/$big-import.log" >&2; die "scale_fill_sled into $big failed"; }
    elif [[ $PG_FILL == sql ]]; then
        log "$big: COPY + INSERT … SELECT ($USERS users, $SESSIONS sessions)"
        pg_fill_sql "$big" >"$RAW/$big-import.log" 2>&1 \
            || { tail -n 5 "$RAW/$big-import.log" >&2; die "SQL fill of $big failed"; }
    else
        log "$big: gatehouse store import ($USERS users, $SESSIONS sessions)"
        gh_cli "$big" store import "$SNAPSHOT" >"$RAW/$big-import.log" 2>&1 \
            || { tail -n 5 "$RAW/$big-import.log" >&2; die "store import into $big failed"; }
    fi
    FILL_MS[$backend]=$(($(MS) - t0))
    log "$big: filled in ${FILL_MS[$backend]} ms"
    if [[ $backend == sled && $START_FRESH == 1 ]]; then
        cp -a "$BENCH_TMP/$big/data" "$BENCH_TMP/$big/data.filled"
        log "$big: kept a copy as filled (START_FRESH=1: every start opens a fresh copy)"
    fi
    printf '%s\n' "$BENCH_PASSWORD" | gh_cli "$empty" user add "$BENCH_USER" --password-stdin >"$RAW/$empty-user.log" 2>&1 \
        || { cat "$RAW/$empty-user.log" >&2; die "user add on $empty failed"; }
    if [[ $backend == postgres ]]; then
        pg_sql "VACUUM ANALYZE" "$big" >/dev/null
        log "$big: database size $(pg_sql "SELECT pg_size_pretty(pg_database_size('$big'))")"
    else
        log "$big: store size $(du -sh "$BENCH_TMP/$big/data" | cut -f1)"
    fi
done

# ---------------------------------------------------------------- start: time to ready, RSS

: >"$RAW/start.tsv"
if [[ " $PARTS " == *" start "* ]]; then
    for backend in $BACKENDS; do
        targets=("${backend}_big" "${backend}_empty")
        [[ -n ${BASELINE_BIN:-} ]] && targets+=("${backend}_big@baseline")
        for label in "${!START_BIN[@]}"; do targets+=("${backend}_big@$label"); done
        for ((r = 1; r <= ROUNDS; r++)); do
            # alternate the order round by round
            ((r % 2 == 0)) && targets=("${targets[@]:1}" "${targets[0]}")
            for target in "${targets[@]}"; do
                name=${target%@*} bin=$GATEHOUSE_BIN
                [[ $target == *@baseline ]] && bin=$BASELINE_BIN
                [[ $target == *@* && $target != *@baseline ]] && bin=${START_BIN[${target#*@}]}
                if [[ $name == sled_big && $START_FRESH == 1 ]]; then
                    rm -rf "$BENCH_TMP/$name/data"
                    cp -a "$BENCH_TMP/$name/data.filled" "$BENCH_TMP/$name/data"
                fi
                gh_spawn "$name" "$bin" || die "$target did not become ready"
                sleep "$SETTLE"
                rss=$(status_kib "$GH_PID" VmRSS)
                # then once the start-up work (sled: the purge) is done
                idle_s=$(wait_idle "$GH_PID" "$IDLE_RSS_WAIT")
                idle_rss=$(status_kib "$GH_PID" VmRSS) hwm=$(status_kib "$GH_PID" VmHWM)
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$r" "$READY_MS" "$rss" "$hwm" "$idle_rss" "$idle_s" >>"$RAW/start.tsv"
                log "$target round $r: ready in $READY_MS ms, VmRSS $((rss / 1024)) MiB, idle after $idle_s s more: VmRSS $((idle_rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB"
                gh_stop "$GH_PID"
            done
        done
    done
fi

# ---------------------------------------------------------------- cpu: interleaved CPU per request

: >"$RAW/cpu.tsv"
if [[ " $PARTS " == *" cpu "* ]]; then
    LOADAVG_CPU=$(cut -d' ' -f1-3 /proc/loadavg)
    for backend in $BACKENDS; do
        declare -A PID_OF TOKEN_OF
        for name in "${backend}_big" "${backend}_empty"; do
            gh_spawn "$name" || die "$name did not become ready"
            PID_OF[$name]=$GH_PID
            TOKEN_OF[$name]=$(gh_token "$name")
            check_auth "$name" "http://127.0.0.1:${PORT_OF[$name]}/hello" "${TOKEN_OF[$name]}" || die "$name failed the token checks"
            run_wrk "$RAW/$name-warmup.txt" "$CONNS" 2 "http://127.0.0.1:${PORT_OF[$name]}/hello" -H "Authorization: Bearer ${TOKEN_OF[$name]}"
            ((IDLE_WAIT > 0)) && log "$name: idle after $(wait_idle "${PID_OF[$name]}" "$IDLE_WAIT") s"
        done
        order=("${backend}_big" "${backend}_empty")
        for ((r = 1; r <= ROUNDS; r++)); do
            ((r % 2 == 0)) && order=("${order[1]}" "${order[0]}")
            for name in "${order[@]}"; do
                before=$(cpu_ticks "${PID_OF[$name]}")
                run_wrk "$RAW/$name-$r.txt" "$CONNS" "$DURATION" "http://127.0.0.1:${PORT_OF[$name]}/hello" -H "Authorization: Bearer ${TOKEN_OF[$name]}"
                after=$(cpu_ticks "${PID_OF[$name]}")
                read -r rps reqs _ p99 non2xx errs < <(wrk_parse "$RAW/$name-$r.txt")
                ((non2xx == 0 && errs == 0)) || warn "$name: $non2xx non-2xx, $errs socket errors"
                printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$((after - before))" "$reqs" "$rps" "$p99" >>"$RAW/cpu.tsv"
                log "$name round $r: $rps req/s, $(((after - before) * 1000000 / CLK_TCK / (reqs > 0 ? reqs : 1))) µs CPU/request"
            done
        done
        for name in "${backend}_big" "${backend}_empty"; do gh_stop "${PID_OF[$name]}"; done
        unset PID_OF TOKEN_OF
    done
    LOADAVG_CPU+=" → $(cut -d' ' -f1-3 /proc/loadavg)"
fi

# ---------------------------------------------------------------- instr: callgrind per request

: >"$RAW/instr.tsv"
if [[ " $PARTS " == *" instr "* ]]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        warn "valgrind missing: instr skipped (apt-get install -y valgrind)"
    else
        for backend in $BACKENDS; do
            for name in "${backend}_big" "${backend}_empty"; do
                out=$RAW/$name.callgrind
                gh_spawn "$name" "$GATEHOUSE_BIN" valgrind --tool=callgrind --callgrind-out-file="$out" \
                    --dump-instr=no --instr-atstart=no || die "$name under callgrind did not become ready"
                token=$(gh_token "$name")
                url="http://127.0.0.1:${PORT_OF[$name]}/hello"
                run_wrk "$RAW/$name-cg-warmup.txt" "$CONNS" 2 "$url" -H "Authorization: Bearer $token"
                ((IDLE_WAIT > 0)) && log "$name: idle after $(wait_idle "$GH_PID" "$((IDLE_WAIT * 4))") s"
                callgrind_control -i on "$GH_PID" >/dev/null 2>&1
                run_wrk "$RAW/$name-cg.txt" "$CONNS" "$CALLGRIND_DURATION" "$url" -H "Authorization: Bearer $token"
                callgrind_control -i off "$GH_PID" >/dev/null 2>&1
                callgrind_control -d "$GH_PID" >/dev/null 2>&1
                sleep 1
                read -r _ reqs _ _ non2xx errs < <(wrk_parse "$RAW/$name-cg.txt")
                ((non2xx == 0 && errs == 0)) || warn "$name: $non2xx non-2xx, $errs socket errors under callgrind"
                total=0
                for f in "$out".*; do
                    n=$(awk '/^totals:/ { print $2; exit }' "$f")
                    total=$((total + ${n:-0}))
                done
                printf '%s\t%s\t%s\n' "$name" "$total" "$reqs" >>"$RAW/instr.tsv"
                log "$name: $((total / (reqs > 0 ? reqs : 1))) instructions per request ($reqs requests)"
                gh_stop "$GH_PID"
            done
        done
    fi
fi

# ---------------------------------------------------------------- report

MD=$BENCH_TMP/scale.md
fills=
for backend in $BACKENDS; do fills+="$backend ${FILL_MS[$backend]} ms; "; done
python3 - "$RAW" "$CLK_TCK" "$USERS" "$SESSIONS" "$MIX" "$fills" "${LOADAVG_CPU:-}" \
    "$DURATION" "$CONNS" "$ROUNDS" "$SETTLE" >"$MD" <<'EOF'
import statistics, sys
raw, clk, users, sessions, mix, fills, loadavg, duration, conns, rounds, settle = sys.argv[1:]
clk = int(clk)
def rows(name):
    try:
        return [line.rstrip("\n").split("\t") for line in open(f"{raw}/{name}.tsv") if line.strip()]
    except FileNotFoundError:
        return []
med = statistics.median
import os
if os.environ.get("BASELINE_BIN"):
    print(f"Targets `…@baseline` ran `{os.environ['BASELINE_BIN']}` on the same store.")
for pair in os.environ.get("START_BINS", "").split():
    print(f"Targets `…@{pair.split('=', 1)[0]}` ran `{pair.split('=', 1)[1]}` on the same store (start only).")
    print()
print(f"Store: {int(users):,} users, {int(sessions):,} sessions ({mix}). "
      f"Filled (sled: `examples/scale_fill_sled.rs`; PostgreSQL: `PG_FILL` = {os.environ.get('PG_FILL', 'sql')}): {fills.strip()}")
print()
start = rows("start")
if start:
    print(f"**Start** (spawn → `/readyz` 200; VmRSS {settle} s after ready and once idle; VmHWM = peak), median of {rounds} round(s), all rounds listed:")
    print()
    print("| target | ready (ms) | VmRSS (MiB) | VmRSS once idle (MiB) | VmHWM (MiB) | rounds: ready ms / RSS / idle RSS MiB (idle after s) |")
    print("|---|---:|---:|---:|---:|---|")
    for target in dict.fromkeys(r[0] for r in start):
        rs = [r for r in start if r[0] == target]
        ready = [int(r[2]) for r in rs]; rss = [int(r[3]) / 1024 for r in rs]; hwm = [int(r[4]) / 1024 for r in rs]
        idle = [int(r[5]) / 1024 for r in rs]
        each = ", ".join(f"{int(r[2])} / {int(r[3]) / 1024:.0f} / {int(r[5]) / 1024:.0f} ({r[6]})" for r in rs)
        print(f"| {target} | {med(ready):.0f} | {med(rss):.1f} | {med(idle):.1f} | {max(hwm):.1f} | {each} |")
    print()
cpu = rows("cpu")
if cpu:
    print(f"**Protected GET, CPU per request** (both running, wrk {conns} connections {duration} s per round, rounds alternating; load average {loadavg}):")
    print()
    print("| target | req/s (median) | CPU µs/request (median) | p99 ms (median) | per round µs |")
    print("|---|---:|---:|---:|---|")
    per = {}
    for target in dict.fromkeys(r[0] for r in cpu):
        rs = [r for r in cpu if r[0] == target]
        us = [int(r[2]) * 1e6 / clk / max(int(r[3]), 1) for r in rs]
        per[target] = us
        print(f"| {target} | {med(float(r[4]) for r in rs):.0f} | {med(us):.1f} | {med(float(r[5]) for r in rs):.2f} | {', '.join(f'{u:.1f}' for u in us)} |")
    print()
    for backend in ("sled", "postgres"):
        b, e = per.get(f"{backend}_big"), per.get(f"{backend}_empty")
        if b and e:
            ratios = [x / y for x, y in zip(b, e)]
            print(f"- {backend}: big ÷ empty CPU per request, per round: {', '.join(f'{x:.3f}' for x in ratios)} (median {med(ratios):.3f})")
    print()
instr = rows("instr")
if instr:
    print("**Protected GET, user-space instructions per request** (callgrind, deterministic):")
    print()
    print("| target | instructions/request | requests |")
    print("|---|---:|---:|")
    per = {}
    for name, total, reqs in instr:
        per[name] = int(total) / max(int(reqs), 1)
        print(f"| {name} | {per[name]:,.0f} | {int(reqs):,} |")
    print()
    for backend in ("sled", "postgres"):
        b, e = per.get(f"{backend}_big"), per.get(f"{backend}_empty")
        if b and e:
            print(f"- {backend}: big ÷ empty = {b / e:.3f}")
    print()
EOF
emit_results "gatehouse with $USERS users and $SESSIONS sessions (scale.sh)" "$MD"
