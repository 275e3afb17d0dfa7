#!/usr/bin/env python3
"""Markdown tables for replicas.sh from its raw directory (stdlib only).

usage: replicas_report.py RAW_DIR CLK_TCK CONNS LOGIN_CONNS REFRESH_CONNS
"""

import json
import math
import os
import statistics
import sys


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


def med(values):
    return statistics.median(values) if values else float("nan")


def rows(path, types):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(types):
                continue
            out.append({k: t(v) for (k, t), v in zip(types, parts)})
    return out


def propagation(raw):
    out = []
    names = {}
    if os.path.exists(os.path.join(raw, "names.tsv")):
        with open(os.path.join(raw, "names.tsv")) as f:
            names = dict(line.split() for line in f if line.strip())
    logout = "POST /auth/logout on pg1 → its 204"
    disable = "`gatehouse user disable` (CLI → database) → the command's exit"
    for file, mode, what in (("logout", "logout", logout), ("disable", "disable", disable),
                             ("loaded-logout", "logout", logout), ("loaded-disable", "disable", disable)):
        path = os.path.join(raw, f"propagation-{file}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            d = json.load(f)
        loaded = file.startswith("loaded")
        title = f"**Revocation propagation, {mode}{', under proxied load' if loaded else ''}**"
        out.append(f"{title} ({d['trials']} revocations; from {what}; "
                   f"to the first 401 on each replica; {d['seconds']:.0f} s in all)")
        out.append("")
        load = os.path.join(raw, f"load-{file}.tsv")
        if loaded and os.path.exists(load):
            parts = []
            for r in rows(load, [("name", str), ("rps", float), ("reqs", int), ("p99", float), ("bad", int)]):
                parts.append(f"{r['name']} {r['rps']:,.0f} req/s (p99 {r['p99']:.1f} ms, non-2xx + errors {r['bad']})")
            out.append("Proxied load meanwhile (one wrk per replica, all the time the revocations ran): " + "; ".join(parts) + ".")
            out.append("")
        out.append("| replica | samples | p50 ms | p90 ms | p99 ms | max ms | over 1 s |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        every = []
        for port, samples in d["samples_ms"].items():
            every += samples
        for port, samples in d["samples_ms"].items():
            if not samples:
                continue
            out.append(f"| {names.get(port, 'port ' + port)} | {len(samples)} | {pct(samples, 50):.1f} | {pct(samples, 90):.1f} | "
                       f"{pct(samples, 99):.1f} | {max(samples):.1f} | {sum(1 for s in samples if s > 1000)} |")
        if every:
            out.append(f"| **all** | {len(every)} | **{pct(every, 50):.1f}** | {pct(every, 90):.1f} | "
                       f"**{pct(every, 99):.1f}** | {max(every):.1f} | {sum(1 for s in every if s > 1000)} |")
        out.append("")
        fs = d.get("from_request_sent_ms") or []
        if fs:
            out.append(f"Counted from when the revocation was sent instead (its own work included): "
                       f"p50 {pct(fs, 50):.1f} ms, p99 {pct(fs, 99):.1f} ms, max {max(fs):.1f} ms.")
            out.append("")
        acc = d["fresh_token_accepted_everywhere_ms"]
        notes = [f"misses (no 401 within {d['deadline_s']:.0f} s): {d['misses']}",
                 f"401 on the very first poll after the acknowledgement: {d.get('revoked_at_first_poll', '?')} of {len(every)}",
                 f"a new login's token accepted by every replica after p50 {pct(acc, 50):.1f} ms, "
                 f"p99 {pct(acc, 99):.1f} ms (a new session propagates too)"]
        if mode == "logout":
            notes.append(f"pg1 (the replica that took the logout) not 401 on the very next request: "
                         f"{d['replica_a_not_401_at_once']} of {d['trials']}")
        out.append("; ".join(notes) + ".")
        out.append("")
    return out


def cpu(raw, hz):
    types = [("round", int), ("name", str), ("rps", float), ("reqs", int), ("p50", float), ("p99", float),
             ("non2xx", int), ("errs", int), ("ticks", int), ("secs", float), ("core", int),
             ("x_idle", int), ("x_load", int), ("idle_secs", float)]
    rs = rows(os.path.join(raw, "cpu.tsv"), types)
    if not rs:
        return []
    out = ["**Proxied protected GET, sled vs PostgreSQL** (same gatehouse binary and config but "
           "the store; pg1 on CPU 1, the sled gatehouse on CPU 1, never loaded at the same time)", "",
           "| store | req/s (median) | per round | p99 ms | CPU µs/req (median) | per round | CPU busy | rest of its core busy | non-2xx / errors |",
           "|---|---:|---|---:|---:|---|---:|---:|---:|"]
    per = {}
    for name in ("sled", "pg1"):
        mine = [r for r in rs if r["name"] == name]
        us = [r["ticks"] / hz * 1e6 / max(r["reqs"], 1) for r in mine]
        busy = [r["ticks"] / hz / r["secs"] for r in mine]
        rest = [(r["core"] - r["ticks"]) / hz / r["secs"] for r in mine]
        per[name] = {r["round"]: u for r, u in zip(mine, us)}
        label = "sled" if name == "sled" else "PostgreSQL (pg1)"
        out.append(f"| {label} | {med([r['rps'] for r in mine]):,.0f} | {' / '.join(format(r['rps'], '.0f') for r in mine)} | "
                   f"{med([r['p99'] for r in mine]):.3f} | {med(us):.2f} | {' / '.join(f'{u:.2f}' for u in us)} | "
                   f"{med(busy) * 100:.0f}% | {med(rest) * 100:.0f}% | {sum(r['non2xx'] for r in mine)} / {sum(r['errs'] for r in mine)} |")
    ratios = [per["pg1"][k] / per["sled"][k] for k in per["pg1"] if k in per["sled"]]
    out.append("")
    if ratios:
        out.append(f"CPU/req PostgreSQL ÷ sled, per round: {' / '.join(f'{x:.3f}' for x in ratios)} "
                   f"(median **{med(ratios):.3f}×**).")
        out.append("")
    pg = [r for r in rs if r["name"] == "pg1"]
    out += ["**pg_stat_database.xact_commit of the gatehouse database** (3 PostgreSQL replicas running, "
            "only pg1 loaded): an idle window, then the wrk window of the same length right after", "",
            "| round | idle window s | commits idle | wrk window s | commits under load | requests proxied | commits under load − idle |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in pg:
        out.append(f"| {r['round']} | {r['idle_secs']:.1f} | {r['x_idle']} | {r['secs']:.1f} | {r['x_load']} | "
                   f"{r['reqs']:,} | {r['x_load'] - r['x_idle']:+d} |")
    out.append("")
    return out


def auth(raw, hz, login_conns, refresh_conns):
    types = [("round", int), ("kind", str), ("name", str), ("rps", float), ("reqs", int), ("p50", float),
             ("p99", float), ("non2xx", int), ("errs", int), ("ticks", int), ("pg_ticks", int), ("secs", float),
             ("xacts", int)]
    rs = rows(os.path.join(raw, "auth.tsv"), types)
    if not rs:
        return []
    out = ["**Logins and refreshes per second, sled vs PostgreSQL** (gatehouse on CPU 1; wrk and "
           f"PostgreSQL on CPU 0; logins: {login_conns} connections, login.lua; refreshes: "
           f"{refresh_conns} connections, refresh.lua)", "",
           "| endpoint | store | per s (median) | per round | p50 ms | p99 ms | gatehouse CPU busy | PostgreSQL CPU busy | gatehouse CPU ms/op | database commits/op | non-2xx / errors |",
           "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    medians = {}
    for kind in ("login", "refresh"):
        for name in ("sled", "pg1"):
            mine = [r for r in rs if r["kind"] == kind and r["name"] == name]
            if not mine:
                continue
            m = med([r["rps"] for r in mine])
            medians[(kind, name)] = {r["round"]: r["rps"] for r in mine}
            label = "sled" if name == "sled" else "PostgreSQL"
            out.append(f"| POST /auth/{kind} | {label} | {m:,.1f} | {' / '.join(format(r['rps'], '.1f') for r in mine)} | "
                       f"{med([r['p50'] for r in mine]):.2f} | {med([r['p99'] for r in mine]):.2f} | "
                       f"{med([r['ticks'] / hz / r['secs'] for r in mine]) * 100:.0f}% | "
                       f"{med([r['pg_ticks'] / hz / r['secs'] for r in mine]) * 100:.0f}% | "
                       f"{med([r['ticks'] / hz * 1e3 / max(r['reqs'], 1) for r in mine]):.2f} | "
                       f"{'—' if name == 'sled' else format(med([r['xacts'] / max(r['reqs'], 1) for r in mine]), '.1f')} | "
                       f"{sum(r['non2xx'] for r in mine)} / {sum(r['errs'] for r in mine)} |")
    out.append("")
    for kind in ("login", "refresh"):
        a, b = medians.get((kind, "pg1")), medians.get((kind, "sled"))
        if a and b:
            ratios = [a[k] / b[k] for k in a if k in b]
            out.append(f"- {kind}s/s PostgreSQL ÷ sled per round: {' / '.join(f'{x:.2f}' for x in ratios)} "
                       f"(median **{med(ratios):.2f}×**)")
    out.append("")
    # the database side while pg1 was loaded: pg_stat_activity sampled every 100 ms
    for kind in ("login", "refresh"):
        counts = {}
        samples = 0
        for name in sorted(os.listdir(raw)):
            if not name.startswith(f"waits-{kind}-"):
                continue
            with open(os.path.join(raw, name)) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        counts[line] = counts.get(line, 0) + 1
                        samples += 1
        if samples:
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
            out.append(f"- PostgreSQL backends busy for gatehouse during /auth/{kind} (pg_stat_activity every 100 ms, "
                       f"{samples} backend samples): " + "; ".join(f"{k} {v / samples * 100:.0f}%" for k, v in top))
    out.append("")
    return out


def instructions(raw):
    types = [("name", str), ("reqs", int), ("total", int)]
    rs = {r["name"]: r for r in rows(os.path.join(raw, "instructions.tsv"), types)}
    if not rs:
        return []
    out = ["**User-space instructions per proxied request** (callgrind, instrumentation on for the measured "
           "window only, wrk 16 connections; does not depend on machine noise)", "",
           "| store | requests | instructions | per request |", "|---|---:|---:|---:|"]
    for name, label in (("cg-sled", "sled"), ("cg-pg", "PostgreSQL")):
        if name in rs:
            r = rs[name]
            out.append(f"| {label} | {r['reqs']:,} | {r['total']:,} | **{r['total'] / max(r['reqs'], 1):,.0f}** |")
    if "cg-sled" in rs and "cg-pg" in rs:
        a = rs["cg-pg"]["total"] / max(rs["cg-pg"]["reqs"], 1)
        b = rs["cg-sled"]["total"] / max(rs["cg-sled"]["reqs"], 1)
        out += ["", f"PostgreSQL ÷ sled: **{a / b:.3f}×** (the PostgreSQL replica's window includes its background "
                    "polls of the change log: 4 a second)."]
    out.append("")
    return out


def scale(raw, hz):
    types = [("round", int), ("layout", str), ("name", str), ("rps", float), ("reqs", int), ("p50", float),
             ("p99", float), ("non2xx", int), ("errs", int), ("ticks", int), ("secs", float)]
    rs = rows(os.path.join(raw, "scale.tsv"), types)
    if not rs:
        return []
    labels = {"dedicated": "1 replica, core to itself (wrk + upstream on the other core)",
              "box1": "1 replica sharing its core with its wrk + upstream",
              "box2": "2 replicas, each sharing its core with its own wrk + upstream"}
    out = ["**Two PostgreSQL replicas vs one** (proxied protected GET; each replica pinned to one core)", "",
           "| layout | total req/s (median) | per round | per replica (median) | replica CPU µs/req | replica CPU busy | p99 ms | non-2xx / errors |",
           "|---|---:|---|---|---:|---:|---:|---:|"]
    totals = {}
    for layout in ("dedicated", "box1", "box2"):
        mine = [r for r in rs if r["layout"] == layout]
        if not mine:
            continue
        rounds = sorted({r["round"] for r in mine})
        tot = {k: sum(r["rps"] for r in mine if r["round"] == k) for k in rounds}
        totals[layout] = tot
        names = sorted({r["name"] for r in mine})
        per_replica = ", ".join(f"{n} {med([r['rps'] for r in mine if r['name'] == n]):,.0f}" for n in names)
        us = med([r["ticks"] / hz * 1e6 / max(r["reqs"], 1) for r in mine])
        busy = med([r["ticks"] / hz / r["secs"] for r in mine])
        out.append(f"| {labels[layout]} | {med(list(tot.values())):,.0f} | {' / '.join(f'{tot[k]:.0f}' for k in rounds)} | "
                   f"{per_replica} | {us:.2f} | {busy * 100:.0f}% | {med([r['p99'] for r in mine]):.3f} | "
                   f"{sum(r['non2xx'] for r in mine)} / {sum(r['errs'] for r in mine)} |")
    out.append("")
    for a, b, what in (("box2", "box1", "2 replicas ÷ 1 replica, same layout (the scaling; 2.0 = linear)"),
                       ("box2", "dedicated", "2 replicas sharing cores ÷ 1 replica with a core to itself"),
                       ("box1", "dedicated", "1 replica sharing its core ÷ 1 replica with a core to itself")):
        if a in totals and b in totals:
            ratios = [totals[a][k] / totals[b][k] for k in totals[a] if k in totals[b]]
            out.append(f"- {what}: per round {' / '.join(f'{x:.2f}' for x in ratios)} (median **{med(ratios):.2f}×**)")
    out.append("")
    return out


def main():
    raw, hz = sys.argv[1], int(sys.argv[2])
    login_conns, refresh_conns = sys.argv[4], sys.argv[5]
    out = propagation(raw) + cpu(raw, hz) + instructions(raw) + auth(raw, hz, login_conns, refresh_conns) + scale(raw, hz)
    print("\n".join(out))


if __name__ == "__main__":
    main()
