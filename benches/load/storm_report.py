#!/usr/bin/env python3
"""Markdown tables for storm.sh (issue #17 target 3): storm_report.py STORM_TSV [CRITERION_US]

STORM_TSV columns: round workers alg phase requests seconds cpu_ns futex ctxsw p50 p99 non2xx errs.
CRITERION_US: optional "ALG=µs ALG=µs" — criterion's uncached verify per algorithm, for the
"predicted" column (hit cost + uncached verify).
"""
import statistics
import sys
from collections import defaultdict


def main() -> None:
    rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
    crit = {}
    if len(sys.argv) > 2 and sys.argv[2].strip():
        for item in sys.argv[2].split():
            alg, us = item.split("=")
            crit[alg] = float(us)
    runs = defaultdict(list)  # (workers, alg, phase) -> [(cpu µs/req, futex/req, cs/req, p99, bad, reqs)]
    algs, workers = [], []
    for r, w, alg, phase, reqs, secs, cpu_ns, futex, cs, p50, p99, non2xx, errs in rows:
        n = int(reqs)
        runs[(w, alg, phase)].append(
            (int(cpu_ns) / n / 1000, int(futex) / n, int(cs) / n, float(p99), int(non2xx) + int(errs), n, n / float(secs))
        )
        if alg not in algs:
            algs.append(alg)
        if w not in workers:
            workers.append(w)
    med = lambda xs: statistics.median(xs)

    print("| workers | algorithm | phase | requests | CPU µs/req (per round) | futex/req | ctx switches/req | p99 ms | non-2xx + errors |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|")
    for w in workers:
        for alg in algs:
            for phase in ("miss", "hit"):
                xs = runs.get((w, alg, phase))
                if not xs:
                    continue
                per_round = ", ".join(f"{x[0]:.1f}" for x in xs)
                print(f"| {w} | {alg} | {phase} | {med([x[5] for x in xs]):,.0f} | **{med([x[0] for x in xs]):.1f}** ({per_round}) "
                      f"| {med([x[1] for x in xs]):.3f} | {med([x[2] for x in xs]):.3f} | {med([x[3] for x in xs]):.2f} | {sum(x[4] for x in xs)} |")
    print()
    print("Cost of a miss = CPU per request of the miss pass − of the hit pass (per round, then the median), against criterion's uncached verify:")
    print()
    print("| workers | algorithm | miss − hit, µs (per round) | criterion uncached verify, µs | measured ÷ criterion | miss CPU ÷ (hit + criterion) |")
    print("|---|---|---|---:|---:|---:|")
    for w in workers:
        for alg in algs:
            miss, hit = runs.get((w, alg, "miss"), []), runs.get((w, alg, "hit"), [])
            if not miss or not hit:
                continue
            diffs = [m[0] - h[0] for m, h in zip(miss, hit)]
            d = med(diffs)
            c = crit.get(alg)
            ratio = f"{d / c:.2f}×" if c else "—"
            pred = f"{med([m[0] / (h[0] + c) for m, h in zip(miss, hit)]):.2f}×" if c else "—"
            print(f"| {w} | {alg} | {d:.1f} ({', '.join(f'{x:.1f}' for x in diffs)}) | {c if c else '—'} | {ratio} | {pred} |")
    if len(workers) > 1:
        print()
        print("Two workers ÷ one worker, CPU per request (median of the per-round ratios):")
        print()
        print("| algorithm | miss | hit |")
        print("|---|---:|---:|")
        for alg in algs:
            cells = []
            for phase in ("miss", "hit"):
                one, two = runs.get(("1", alg, phase), []), runs.get(("2", alg, phase), [])
                cells.append(f"{med([b[0] / a[0] for a, b in zip(one, two)]):.2f}×" if one and two else "—")
            print(f"| {alg} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
