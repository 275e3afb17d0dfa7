# shellcheck shell=bash disable=SC2034  # globals set here are read by the scripts that source it
# pg.sh — a throwaway PostgreSQL for a bench (login_isolation.sh STORE=postgres, scale.sh). Source it
# after lib.sh and bench_init, then call pg_start. Debian's postgresql: initdb into its own
# temp dir (as the postgres user when root: initdb refuses root), pg_ctl start on a free
# loopback port pinned to LOADGEN_CPU, fsync as PG_FSYNC (default on, PostgreSQL's
# default), stopped and removed at exit (after the gatehouses, by the EXIT trap).
# (replicas.sh keeps its own copy of these lines, with its statistics helpers.)

PG_FSYNC=${PG_FSYNC:-on}
[[ $PG_FSYNC == on || $PG_FSYNC == off ]] || die "PG_FSYNC must be on or off"
need_cmd runuser
PG_BIN=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
[[ -n $PG_BIN && -x $PG_BIN/initdb ]] || die "PostgreSQL is not installed: apt-get install -y postgresql (RUNLEVEL=1 keeps its service from starting)"
PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-bench-pg.XXXXXX")
PG_AS=()
((EUID == 0)) && PG_AS=(runuser -u postgres --)

pg_stop() {
    [[ -f $PG_DIR/data/postmaster.pid ]] || return 0
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 \
        || "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
}
pg_cleanup() {
    local rc=$? p
    set +e
    trap - ERR
    for p in "${BENCH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    pg_stop
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $PG_DIR"; else rm -rf "$PG_DIR"; fi
    (exit "$rc")
    bench_cleanup
}
trap pg_cleanup EXIT

pg_sql() {   # pg_sql SQL [DATABASE] (default: postgres)
    "$PG_BIN/psql" -X -A -t -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "${2:-postgres}" -c "$1"
}

pg_start() {   # sets PG_PORT PG_URL PG_PID PG_VERSION
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
