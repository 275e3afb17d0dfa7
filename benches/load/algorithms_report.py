#!/usr/bin/env python3
"""Tables for algorithms.sh: RAW dir and CLK_TCK in; Markdown out (stdlib only)."""
import os
import statistics
import sys

raw, hz = sys.argv[1], float(sys.argv[2])


def rows(name):
    path = os.path.join(raw, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def table(kind, unit_label):
    data = {}
    for row in rows(f"{kind}.tsv"):
        _, _, alg, rps, reqs, _, p99, non2xx, errs, ticks, _ = row
        reqs = int(reqs)
        per = float(ticks) / hz * 1e6 / reqs if reqs else float("nan")
        data.setdefault(alg, []).append((float(rps), float(p99), per, int(non2xx) + int(errs)))
    if not data:
        return
    base = data.get("HS256")
    base_per = statistics.median(x[2] for x in base) if base else None
    print(f"| algorithm | {unit_label}/s | p99 ms | gatehouse CPU µs per {unit_label} | ÷ HS256 | non-2xx + errors |")
    print("|---|---|---|---|---|---|")
    for alg, runs in data.items():
        rps = statistics.median(x[0] for x in runs)
        p99 = statistics.median(x[1] for x in runs)
        per = statistics.median(x[2] for x in runs)
        ratio = f"{per / base_per:.3f}×" if base_per else "n/a"
        bad = sum(x[3] for x in runs)
        print(f"| {alg} | {rps:,.0f} | {p99:.2f} | {per:.1f} | {ratio} | {bad} |")
    print()


print("### Protected GET (verified-token cache: one token per run)\n")
table("cpu", "request")
ins = rows("instructions.tsv")
if ins:
    base = next((int(t) / max(int(n), 1) for _, a, n, t in ins if a == "HS256"), None)
    print("### User-space instructions per protected GET (callgrind)\n")
    print("| algorithm | requests | instructions per request | ÷ HS256 |")
    print("|---|---|---|---|")
    for _, alg, n, total in ins:
        per = int(total) / max(int(n), 1)
        ratio = f"{per / base:.4f}×" if base else "n/a"
        print(f"| {alg} | {int(n):,} | {per:,.0f} | {ratio} |")
    print()
print("### POST /auth/login (argon2id + access-token signing)\n")
table("login", "login")
