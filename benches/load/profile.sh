#!/usr/bin/env bash
# profile.sh — where a protected GET's time goes inside gatehouse, free of machine noise.
#
# Starts the upstream nginx and gatehouse (bench config: access lines off), then loads the
# protected route with wrk while gatehouse runs under a profiler:
#   PROFILER=callgrind  valgrind --tool=callgrind: user-space instructions per request
#                       (deterministic; the number to compare across changes) and the
#                       top functions, inclusive and self
#   PROFILER=perf       perf record -g on the running process: where the cycles go
#                       (kernel included), top symbols and per-crate self time
#   PROFILER=sched      perf's sched:sched_waking on every CPU: who wakes whom, per
#                       request (a write that finds its peer asleep in epoll_wait costs a
#                       wake-up; how the runtime orders its writes changes how often)
#
# Env knobs: PROFILER (callgrind) DURATION (s, 10; callgrind runs ~50× slower, so the
#            request count, not the time, is what matters) CONNS (16) TOP (25)
#            SUT_CPU (1) LOADGEN_CPU (0) GATEHOUSE_BIN BUILD (auto|1|0) KEEP_TMP=1
# Output: the report on stdout; raw profiler files stay in the temp dir with KEEP_TMP=1.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROFILER=${PROFILER:-callgrind}
DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
TOP=${TOP:-25}
case $PROFILER in
    callgrind) need_cmd valgrind callgrind_annotate ;;
    perf | sched) need_cmd perf ;;
    *) die "PROFILER must be callgrind, perf or sched, got '$PROFILER'" ;;
esac

bench_init
need_cmd nginx wrk
upstream_start
gatehouse_build || die "$GH_SKIP_REASON"

if [[ $PROFILER == callgrind ]]; then
    # gatehouse itself runs under valgrind: the wrapper is what gatehouse_start launches.
    REAL_BIN=$GATEHOUSE_BIN
    WRAPPER=$BENCH_TMP/gatehouse-under-callgrind
    cat >"$WRAPPER" <<EOF
#!/bin/sh
if [ "\$1" = serve ]; then
    exec valgrind --tool=callgrind --callgrind-out-file=$BENCH_TMP/callgrind.out \
        --dump-instr=no --instr-atstart=no "$REAL_BIN" "\$@"
fi
exec "$REAL_BIN" "\$@"
EOF
    chmod +x "$WRAPPER"
    GATEHOUSE_BIN=$WRAPPER
fi
gatehouse_start || die "$GH_SKIP_REASON"
check_auth gatehouse "http://127.0.0.1:$GH_PORT/hello" "$GH_TOKEN" || die "gatehouse failed the token checks"
# the valgrind process is gatehouse's pid (exec), so GH_PID is right for both profilers
run_wrk "$BENCH_TMP/warmup.txt" "$CONNS" 2 "http://127.0.0.1:$GH_PORT/hello" -H "Authorization: Bearer $GH_TOKEN"

measured_load() {   # the measured wrk run, the same for every profiler
    run_wrk "$BENCH_TMP/wrk.txt" "$CONNS" "$DURATION" "http://127.0.0.1:$GH_PORT/hello" -H "Authorization: Bearer $GH_TOKEN"
}

case $PROFILER in
    callgrind)
        callgrind_control -i on "$GH_PID" >/dev/null 2>&1
        measured_load
        callgrind_control -i off "$GH_PID" >/dev/null 2>&1
        callgrind_control -d "$GH_PID" >/dev/null 2>&1
        sleep 1
        ;;
    perf | sched)
        if [[ $PROFILER == perf ]]; then
            record=(-g -o "$BENCH_TMP/perf.data" -p "$GH_PID")   # gatehouse's call stacks
        else
            record=(-e sched:sched_waking -a -o "$BENCH_TMP/sched.data")   # every CPU's wake-ups
        fi
        perf record "${record[@]}" -- sleep "$DURATION" >/dev/null 2>&1 &
        PERF_PID=$!
        measured_load
        wait "$PERF_PID" || true
        ;;
esac
[[ $PROFILER == callgrind ]] && GATEHOUSE_BIN=$REAL_BIN
read -r RPS REQS P50 P99 NON2XX ERRS < <(wrk_parse "$BENCH_TMP/wrk.txt")
((NON2XX == 0 && ERRS == 0)) || warn "$NON2XX non-2xx responses, $ERRS socket errors during the profile"

echo "# gatehouse profile ($PROFILER) — $(date '+%Y-%m-%d %H:%M:%S %z')"
echo
echo "- gatehouse: $(gatehouse_rev)"
echo "- load: wrk, $CONNS connections, $DURATION s, protected GET /hello: $REQS requests ($RPS req/s under the profiler)"
echo
case $PROFILER in
    callgrind)
        # callgrind.out.1 is the dump taken right after the load (callgrind.out, if any,
        # is the empty one written at exit)
        files=("$BENCH_TMP"/callgrind.out.*)
        total=0
        for f in "${files[@]}"; do
            n=$(awk '/^totals:/ { print $2; exit }' "$f")
            total=$((total + ${n:-0}))
        done
        echo "**user-space instructions per request: $((total / (REQS > 0 ? REQS : 1)))** ($total over $REQS requests)"
        echo
        echo '```'
        annotate() { { callgrind_annotate "$@" 2>&1 || true; } | sed -n '/^Ir/,$p' | sed -n "1,$((TOP + 3))p" | cut -c1-200; }
        echo "inclusive:"
        annotate --inclusive=yes "${files[@]}"
        echo
        echo "self:"
        annotate "${files[@]}"
        echo '```'
        ;;
    perf)
        echo '```'
        perf report -i "$BENCH_TMP/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null \
            | grep -E '^ +[0-9]' | sed -n "1,${TOP}p" | cut -c1-160
        echo '```'
        ;;
    sched)
        echo "wake-ups per request, waker (its CPU) → wakee, every CPU, over the load:"
        echo
        echo '```'
        perf script -i "$BENCH_TMP/sched.data" -F comm,cpu,trace 2>/dev/null | awk -v n="$REQS" '
            BEGIN { per = n > 0 ? n : 1 }
            {
                i = index($0, " [")
                waker = substr($0, 1, i - 1); sub(/^ +/, "", waker)
                cpu = substr($0, i + 2, 3) + 0
                if (!match($0, /comm=[^ ]+/)) next
                count[waker " (CPU " cpu ") -> " substr($0, RSTART + 5, RLENGTH - 5)]++
                all++
            }
            END {
                printf "%.3f  all\n", all / per
                for (k in count) printf "%.3f  %s\n", count[k] / per, k
            }' | sort -rn | sed -n "1,$((TOP + 1))p"
        echo '```'
        ;;
esac
