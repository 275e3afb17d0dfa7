#!/usr/bin/env bash
# memory.sh — gatehouse resident memory idle and with many idle keep-alive connections.
#
# VmRSS of the gatehouse process (/proc/PID/status) after start-up and one request ("idle"),
# then with CONN_COUNT keep-alive connections open, each having sent one valid protected
# GET /hello and then stayed silent, then again after those connections were closed.
#
# Env knobs: CONN_COUNT (10000) CONN_PARALLEL (200: connections being opened at once)
#            SETTLE (s, 3: wait before reading RSS) QUICK=1 (CONN_COUNT 1000, SETTLE 1)
#            RESULTS=FILE SUT_CPU (1) LOADGEN_CPU (0) GATEHOUSE_BIN BUILD (auto|1|0)
#            GH_LOG_LEVEL (warn) KEEP_TMP=1
# Exit 3 when gatehouse cannot be measured (does not build or does not start).

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    CONN_COUNT=${CONN_COUNT:-1000} SETTLE=${SETTLE:-1}
fi
CONN_COUNT=${CONN_COUNT:-10000}
CONN_PARALLEL=${CONN_PARALLEL:-200}
SETTLE=${SETTLE:-3}
for v in CONN_COUNT CONN_PARALLEL SETTLE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((CONN_COUNT >= 1 && CONN_PARALLEL >= 1)) || die "CONN_COUNT and CONN_PARALLEL must be ≥ 1"

bench_init
need_cmd nginx
# The client holds CONN_COUNT sockets; gatehouse holds as many plus its upstream pool.
if ((BENCH_NOFILE < CONN_COUNT + 500)); then
    die "ulimit -n is $BENCH_NOFILE (hard limit $(ulimit -Hn)); $CONN_COUNT connections need ≥ $((CONN_COUNT + 500)): raise it (as root: ulimit -Hn $((CONN_COUNT * 2)))"
fi

skip() { log "SKIPPED: $*"; echo "memory: SKIPPED — $*"; exit 3; }

upstream_start
gatehouse_build || skip "$GH_SKIP_REASON"
# room for every test connection, and an idle timeout longer than the whole hold
gatehouse_start "max_connections = $((CONN_COUNT + 2000))
idle_timeout = \"600s\"" || skip "$GH_SKIP_REASON"
check_auth gatehouse "http://127.0.0.1:$GH_PORT/hello" "$GH_TOKEN" || die "gatehouse failed the token checks"

fds() { find "/proc/$GH_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$GH_PID/status"; }

sleep "$SETTLE"
RSS_IDLE=$(rss_kib "$GH_PID") FDS_IDLE=$(fds)
log "idle: VmRSS $RSS_IDLE KiB, $FDS_IDLE fds"

READY=$BENCH_TMP/conns.ready STOP=$BENCH_TMP/conns.stop OUT=$BENCH_TMP/conns.out
OPEN_TIMEOUT=$((60 + CONN_COUNT / 50))
start_pinned "$LOADGEN_CPU" "$OUT" env BENCH_TOKEN="$GH_TOKEN" timeout --kill-after=5 $((OPEN_TIMEOUT + 400)) \
    python3 "$LOAD_DIR/idle_conns.py" --port "$GH_PORT" --count "$CONN_COUNT" --parallel "$CONN_PARALLEL" \
    --ready-file "$READY" --stop-file "$STOP" --open-timeout "$OPEN_TIMEOUT" --hold-max 300
CLIENT_PID=$LAST_PID
log "opening $CONN_COUNT keep-alive connections ($CONN_PARALLEL at a time, at most $OPEN_TIMEOUT s)"
deadline=$((SECONDS + OPEN_TIMEOUT + 30))
while [[ ! -f $READY ]]; do
    kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$OUT" >&2; die "the connection client exited early"; }
    ((SECONDS < deadline)) || die "connections not open after $OPEN_TIMEOUT s"
    sleep 0.2
done
OPENED=$(cat "$READY")
log "client: $OPENED"
sleep "$SETTLE"
RSS_LOADED=$(rss_kib "$GH_PID") FDS_LOADED=$(fds) HWM=$(hwm_kib)
log "with connections: VmRSS $RSS_LOADED KiB (peak $HWM KiB), $FDS_LOADED fds"
kill -0 "$GH_PID" 2>/dev/null || die "gatehouse exited while holding the connections"

touch "$STOP"
deadline=$((SECONDS + 60))
while kill -0 "$CLIENT_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
kill -0 "$CLIENT_PID" 2>/dev/null && die "the connection client did not stop"
FINAL=$(tail -n 1 "$OUT")
sleep "$SETTLE"
RSS_AFTER=$(rss_kib "$GH_PID") FDS_AFTER=$(fds)
log "after closing: VmRSS $RSS_AFTER KiB, $FDS_AFTER fds"

MD=$BENCH_TMP/memory.md
python3 - "$FINAL" "$CONN_COUNT" "$RSS_IDLE" "$RSS_LOADED" "$HWM" "$RSS_AFTER" "$FDS_IDLE" "$FDS_LOADED" "$FDS_AFTER" >"$MD" <<'EOF'
import json, sys
final = json.loads(sys.argv[1])
count, idle, loaded, hwm, after, fd_idle, fd_loaded, fd_after = map(int, sys.argv[2:])
opened = final.get("open", 0)
ok = final.get("status", {}).get("200", 0)
mib = lambda k: f"{k / 1024:.1f} MiB"
print("| state | gatehouse VmRSS | open fds |")
print("|---|---:|---:|")
print(f"| idle (after start-up and the token checks) | {mib(idle)} | {fd_idle} |")
print(f"| {opened:,} idle keep-alive connections open | {mib(loaded)} (peak VmHWM {mib(hwm)}) | {fd_loaded} |")
print(f"| after the client closed them | {mib(after)} | {fd_after} |")
print()
per = (loaded - idle) / opened if opened else float("nan")
print(f"Growth: {mib(loaded - idle)} for {opened:,} connections = **{per:.1f} KiB per idle connection**.")
print()
print(f"Client: asked for {count:,}; answers by status {final.get('status')}; failures {final.get('errors') or 'none'}; "
      f"server said `Connection: close` on {final.get('server_said_close', 0)}; "
      f"opened in {final.get('seconds_to_open')} s; still open when released: {final.get('still_open_at_end')} of {opened}.")
if ok != count or final.get("still_open_at_end") != opened:
    print()
    print("⚠ not every connection got a 200 and stayed open: the loaded figure covers fewer connections than asked.")
EOF
emit_results "gatehouse memory with $CONN_COUNT idle keep-alive connections" "$MD"
