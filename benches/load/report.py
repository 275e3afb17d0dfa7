#!/usr/bin/env python3
"""Turn the raw per-run rows of the load benches into Markdown tables (stdlib only).

  report.py compare RUNS.tsv CLK_TCK   rows: round target rps requests p50_ms p99_ms cpu_ticks seconds non2xx errors other_ticks
                                             [cycles_u cycles_k instructions_u instructions_k] (perf stat; nan if absent)
  report.py login   RUNS.tsv           rows: round phase rps requests p50_ms p99_ms non2xx errors login_rps login_non2xx login_errors
"""
import statistics
import sys
from collections import OrderedDict

LABELS = {
    "upstream": "upstream nginx, direct (the limit)",
    "nginx": "nginx reverse proxy (the proxy limit)",
    "haproxy": "HAProxy 2.6 + HS256 JWT check",
    "gatehouse": "gatehouse (protected route, identity headers)",
}


def rows(path):
    with open(path) as f:
        for line in f:
            if line.strip():
                yield line.split()


def med(values):
    return statistics.median(values) if values else float("nan")


def fmt_ratio(a, b):
    if not a or not b or a != a or b != b:
        return "n/a"
    return f"{a / b:.2f}×"


def compare(path, clk_tck):
    runs = OrderedDict()
    for r in rows(path):
        rnd, target = int(r[0]), r[1]
        rps, reqs, p50, p99, ticks, secs, non2xx, errs, other = map(float, r[2:11])
        cu, ck, iu, ik = map(float, (r[11:15] + ["nan"] * 4)[:4])
        runs.setdefault(target, []).append(
            dict(round=rnd, rps=rps, reqs=reqs, p50=p50, p99=p99, ticks=ticks, secs=secs, non2xx=non2xx, errs=errs,
                 other=other,
                 cycles=(cu + ck) / reqs if reqs else float("nan"),
                 cycles_u=cu / reqs if reqs else float("nan"),
                 instr_u=iu / reqs if reqs else float("nan"),
                 instr_k=ik / reqs if reqs else float("nan"))
        )
    counted = any(x["cycles"] == x["cycles"] for rs in runs.values() for x in rs)
    out = []
    counters_head = " SUT cycles/req all (user) | SUT instructions/req user + kernel |" if counted else ""
    counters_rule = "---:|---:|" if counted else ""
    out.append("| target | req/s (median) | req/s per round | p50 ms | p99 ms | SUT CPU µs/req |" + counters_head
               + " SUT CPU busy | rest of SUT core busy | non-2xx / socket errors |")
    out.append("|---|---:|---|---:|---:|---:|" + counters_rule + "---:|---:|---:|")
    max_other = 0.0
    summary = {}
    for target, rs in runs.items():
        rps = med([x["rps"] for x in rs])
        p50 = med([x["p50"] for x in rs])
        p99 = med([x["p99"] for x in rs])
        cpu_us = med([x["ticks"] / clk_tck * 1e6 / x["reqs"] if x["reqs"] else float("nan") for x in rs])
        busy = med([x["ticks"] / clk_tck / x["secs"] * 100 for x in rs])
        other = med([x["other"] / clk_tck / x["secs"] * 100 for x in rs])
        max_other = max([max_other] + [x["other"] / clk_tck / x["secs"] * 100 for x in rs])
        bad = int(sum(x["non2xx"] for x in rs)), int(sum(x["errs"] for x in rs))
        cycles = med([x["cycles"] for x in rs if x["cycles"] == x["cycles"]])
        summary[target] = dict(rps=rps, p50=p50, p99=p99, cpu=cpu_us, cycles=cycles, bad=bad)
        per_round = " / ".join(f"{x['rps']:.0f}" for x in rs)
        flag = "" if bad == (0, 0) else " ⚠"
        counters = ""
        if counted:
            cycles_u = med([x["cycles_u"] for x in rs if x["cycles_u"] == x["cycles_u"]])
            instr_u = med([x["instr_u"] for x in rs if x["instr_u"] == x["instr_u"]])
            instr_k = med([x["instr_k"] for x in rs if x["instr_k"] == x["instr_k"]])
            counters = f" {cycles / 1e3:.1f}k ({cycles_u / 1e3:.1f}k) | {instr_u / 1e3:.1f}k + {instr_k / 1e3:.1f}k |"
        out.append(
            f"| {LABELS.get(target, target)} | {rps:,.0f} | {per_round} | {p50:.3f} | {p99:.3f} | {cpu_us:.1f} |{counters} {busy:.0f}% | {other:.0f}% | {bad[0]} / {bad[1]}{flag} |"
        )
    out.append("")
    g = summary.get("gatehouse")
    if g:
        # Per round too: a round's targets run back to back, so a slow phase of the host
        # (this VM has them, tens of seconds long) hits both sides of a per-round ratio.
        out.append("| ratio | of the medians | per round (median) |")
        out.append("|---|---:|---|")
        by_round = {t: {x["round"]: x for x in rs} for t, rs in runs.items()}

        def per_round(other, key):
            ratios = []
            for rnd, gx in sorted(by_round.get("gatehouse", {}).items()):
                ox = by_round.get(other, {}).get(rnd)
                if ox and gx[key] and ox[key]:
                    ratios.append(gx[key] / ox[key])
            if not ratios:
                return "n/a"
            listed = " / ".join(f"{r:.2f}" for r in ratios)
            return f"{listed} (**{med(ratios):.2f}×**)"

        def cpu(x):
            return x["ticks"] / x["reqs"] if x["reqs"] else float("nan")

        for rs in by_round.values():
            for x in rs.values():
                x["cpu"] = cpu(x)
        for other, name in (("nginx", "nginx proxy"), ("haproxy", "HAProxy+JWT"), ("upstream", "upstream (limit)")):
            o = summary.get(other)
            if o:
                out.append(f"| req/s gatehouse / {name} | {fmt_ratio(g['rps'], o['rps'])} | {per_round(other, 'rps')} |")
        for other, name in (("nginx", "nginx proxy"), ("haproxy", "HAProxy+JWT")):
            o = summary.get(other)
            if o:
                out.append(f"| p99 gatehouse / {name} | {fmt_ratio(g['p99'], o['p99'])} | {per_round(other, 'p99')} |")
        for other, name in (("nginx", "nginx proxy"), ("haproxy", "HAProxy+JWT")):
            o = summary.get(other)
            if o:
                out.append(f"| CPU/req gatehouse / {name} | {fmt_ratio(g['cpu'], o['cpu'])} | {per_round(other, 'cpu')} |")
        if counted:
            for other, name in (("nginx", "nginx proxy"), ("haproxy", "HAProxy+JWT")):
                o = summary.get(other)
                if o:
                    out.append(f"| cycles/req gatehouse / {name} | {fmt_ratio(g['cycles'], o['cycles'])} | {per_round(other, 'cycles')} |")
    else:
        out.append("No gatehouse row: ratios not computed.")
    if max_other > 15:
        out.append("")
        out.append(f"⚠ up to {max_other:.0f}% of the SUT core went to something other than the SUT (other processes, "
                   "interrupts/softirq): the machine was not quiet, treat the numbers with care.")
    if any(s["bad"] != (0, 0) for s in summary.values()):
        out.append("")
        out.append("⚠ some runs had non-2xx answers or socket errors: those rows do not measure the happy path.")
    print("\n".join(out))


def login(path):
    by_phase = OrderedDict()
    for r in rows(path):
        rnd, phase = int(r[0]), r[1]
        vals = list(map(float, r[2:]))
        by_phase.setdefault(phase, []).append(vals)
    out = []
    out.append("| phase | GET req/s | GET p50 ms | GET p99 ms (median) | GET p99 per round | GET non-2xx / errors | logins/s | login non-2xx / errors |")
    out.append("|---|---:|---:|---:|---|---:|---:|---:|")
    p99s = {}
    for phase, rs in by_phase.items():
        rps = med([x[0] for x in rs])
        p50 = med([x[2] for x in rs])
        p99 = med([x[3] for x in rs])
        p99s[phase] = p99
        per_round = " / ".join(f"{x[3]:.3f}" for x in rs)
        non2xx, errs = int(sum(x[4] for x in rs)), int(sum(x[5] for x in rs))
        if phase == "logins":
            lrps = f"{med([x[6] for x in rs]):,.1f}"
            lbad = f"{int(sum(x[7] for x in rs))} / {int(sum(x[8] for x in rs))}"
        else:
            lrps, lbad = "—", "—"
        out.append(f"| {phase} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {per_round} | {non2xx} / {errs} | {lrps} | {lbad} |")
    out.append("")
    if "idle" in p99s and "logins" in p99s and p99s["idle"] > 0:
        ratio = p99s["logins"] / p99s["idle"]
        verdict = "meets" if ratio <= 2 else "MISSES"
        out.append(f"p99 under login flood / p99 idle = **{ratio:.2f}×** ({verdict} the ≤ 2× target)")
    print("\n".join(out))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], float(sys.argv[3]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "login":
        login(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
