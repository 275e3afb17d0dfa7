#!/usr/bin/env python3
"""Revocation propagation across replicas (issue #12 "Measure"; SPEC §8 "One gateway").

Drives N revocations against gatehouse replicas sharing one PostgreSQL database and
measures, for every other replica, the time from the revocation's acknowledgement to the
first 401 that replica gives the revoked token on a protected GET.

Each trial:
  1. log in on replica A (POST /auth/login) and wait until the new access token is
     accepted (200) by every replica;
  2. revoke, one of two ways (--mode):
       logout  - POST /auth/logout on A with the bearer token and the refresh token;
                 acknowledged = A's 204 has been read;
       disable - `gatehouse user disable NAME` (the CLI writes to the database directly,
                 no replica involved); acknowledged = the command exited 0; afterwards
                 `user enable NAME` restores the user for the next trial;
  3. from the acknowledgement, poll the protected GET with that token on every replica
     in turn, over one keep-alive connection each, until each has answered 401 once
     (deadline --deadline s). The time of each replica's first 401 is its sample; how
     many samples were a 401 on the very first poll is counted too (then the sample is
     one round trip and the change had arrived before the acknowledgement was read), and
     the same times counted from when the revocation was sent (the logout request, the
     CLI command started: an upper bound that includes the revocation's own work).
     Replica A after a logout is a check, not a sample: it must answer 401 at once
     (a logout fails the very next request on the replica that took it).

Output: one JSON object on stdout (samples per replica in ms, misses, check failures).
Standard library only.
"""

import argparse
import http.client
import json
import shlex
import subprocess
import sys
import time


class Conn:
    """One keep-alive HTTP/1.1 connection to a replica, reopened when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        raise RuntimeError("unreachable")


def login(conn, user, password):
    body = json.dumps({"username": user, "password": password})
    status, data = conn.request("POST", "/auth/login", body, {"Content-Type": "application/json"})
    if status != 200:
        raise SystemExit(f"login on port {conn.port} answered {status}: {data[:200]!r}")
    tokens = json.loads(data)
    return tokens["access_token"], tokens["refresh_token"]


def wait_status(conns, path, token, want, deadline_s):
    """Polls every connection until each answered `want`; returns seconds per port (None: missed)."""
    headers = {"Authorization": f"Bearer {token}"}
    start = time.monotonic()
    end = start + deadline_s
    seen = {c.port: None for c in conns}
    polls = {c.port: 0 for c in conns}
    while time.monotonic() < end and any(v is None for v in seen.values()):
        for c in conns:
            if seen[c.port] is not None:
                continue
            status, _ = c.request("GET", path, headers=headers)
            polls[c.port] += 1
            if status == want:
                seen[c.port] = time.monotonic() - start
    return seen, polls


def run_cli(cmd, *args):
    full = shlex.split(cmd) + list(args)
    out = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.decode()[-300:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", required=True, help="replica ports, comma-separated; the first is A")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--mode", choices=["logout", "disable"], default="logout")
    ap.add_argument("--user", default="bench")
    ap.add_argument("--password", default="password123")
    ap.add_argument("--path", default="/hello")
    ap.add_argument("--deadline", type=float, default=5.0, help="seconds to wait for each 401")
    ap.add_argument("--cli", default="", help="gatehouse CLI prefix for --mode disable (e.g. 'gatehouse -c FILE')")
    args = ap.parse_args()

    ports = [int(p) for p in args.ports.split(",")]
    conns = [Conn(p) for p in ports]
    a, others = conns[0], conns[1:]
    samples = {str(c.port): [] for c in (others if args.mode == "logout" else conns)}
    accept_ms = []
    misses = 0
    at_first_look = 0
    from_send = []
    a_not_at_once = 0
    started = time.monotonic()
    for trial in range(args.trials):
        access, refresh = login(a, args.user, args.password)
        ok, _ = wait_status(conns, args.path, access, 200, args.deadline)
        if any(v is None for v in ok.values()):
            raise SystemExit(f"trial {trial}: a fresh token was not accepted everywhere: {ok}")
        accept_ms.append(max(v for v in ok.values()) * 1000)
        if args.mode == "logout":
            body = json.dumps({"refresh_token": refresh})
            sent = time.monotonic()
            status, data = a.request("POST", "/auth/logout", body, {
                "Content-Type": "application/json", "Authorization": f"Bearer {access}"})
            if status != 204:
                raise SystemExit(f"trial {trial}: logout answered {status}: {data[:200]!r}")
            # acknowledged: timing starts now
            acked = time.monotonic()
            first, polls = wait_status(others, args.path, access, 401, args.deadline)
            status, _ = a.request("GET", args.path, headers={"Authorization": f"Bearer {access}"})
            if status != 401:
                a_not_at_once += 1
        else:
            sent = time.monotonic()
            run_cli(args.cli, "user", "disable", args.user)
            acked = time.monotonic()
            first, polls = wait_status(conns, args.path, access, 401, args.deadline)
        for port, secs in first.items():
            if secs is None:
                misses += 1
            else:
                samples[str(port)].append(secs * 1000)
                from_send.append((acked - sent + secs) * 1000)
                if polls[port] == 1:
                    at_first_look += 1
        if args.mode == "disable":
            run_cli(args.cli, "user", "enable", args.user)
        if (trial + 1) % 50 == 0:
            print(f"  {args.mode}: {trial + 1}/{args.trials}", file=sys.stderr)
    json.dump({
        "mode": args.mode,
        "trials": args.trials,
        "samples_ms": samples,
        "fresh_token_accepted_everywhere_ms": accept_ms,
        "misses": misses,
        "revoked_at_first_poll": at_first_look,
        "from_request_sent_ms": from_send,
        "deadline_s": args.deadline,
        "replica_a_not_401_at_once": a_not_at_once,
        "seconds": time.monotonic() - started,
    }, sys.stdout)
    print()


if __name__ == "__main__":
    main()
