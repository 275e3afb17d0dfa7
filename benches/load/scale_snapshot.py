#!/usr/bin/env python3
"""scale_snapshot.py — a `gatehouse store export` file with many users and sessions (scale.sh).

Reads a real export (--seed: one user made with `gatehouse user add`, whose argon2id PHC hash
every generated user reuses) and writes to stdout the same format (src/store/snapshot.rs):
the seed's header and records, USERS-1 more users, SESSIONS sessions and one refresh token
per token session, then the `end` line counting the records. The mix of sessions (see
scale.sh) is written to stderr as one line. Ids are random like gatehouse's own (users:
UUIDs; sessions: 16 bytes base64url, 22 characters); hashes are random 32 bytes in hex.
"""

import argparse
import base64
import json
import os
import sys
import uuid


def rid() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--sessions", type=int, required=True)
    ap.add_argument("--now", type=int, required=True)
    ap.add_argument("--grace", type=int, required=True, help="access_ttl + leeway, seconds")
    args = ap.parse_args()

    lines = [json.loads(line) for line in open(args.seed)]
    header, records = lines[0], [r for r in lines[1:] if r.get("type") != "end"]
    seed_users = [r for r in records if r.get("type") == "user"]
    if not seed_users:
        sys.exit("the seed export has no user")
    phc = seed_users[0]["password_hash"]
    now, grace = args.now, args.grace

    out = sys.stdout
    w = out.write
    w(json.dumps(header, separators=(",", ":")) + "\n")
    count = 0
    for r in records:
        w(json.dumps(r, separators=(",", ":")) + "\n")
        count += 1
    user_ids = [r["id"] for r in seed_users]
    created = now - 90 * 86400
    for i in range(1, args.users):
        uid = str(uuid.uuid4())
        user_ids.append(uid)
        w(
            f'{{"type":"user","id":"{uid}","username":"user{i:07d}","canonical":"user{i:07d}",'
            f'"password_hash":{json.dumps(phc)},"roles":["reader"],"enabled":true,'
            f'"created":{created},"password_changed_at":{created},"generation":0}}\n'
        )
        count += 1

    n = args.sessions
    ended_in_grace = n * 5 // 100
    ended_past = n * 1 // 100
    browser = n * 2 // 100
    live = n - ended_in_grace - ended_past - browser
    expires = now + 30 * 86400
    tokens = []
    for i in range(n):
        uid = user_ids[i % len(user_ids)]
        family = rid()
        start = now - 86400 + (i % 3600)
        if i < ended_in_grace:
            ended, brw = now - (i % grace), None
        elif i < ended_in_grace + ended_past:
            ended, brw = now - grace - 1 - (i % 60), None
        elif i < ended_in_grace + ended_past + browser:
            ended, brw = None, os.urandom(32).hex()
        else:
            ended, brw = None, None
        ended_json = "null" if ended is None else str(ended)
        if brw is None:
            w(
                f'{{"type":"session","family":"{family}","user_id":"{uid}","created":{start},'
                f'"generation":0,"expires_at":{expires},"ended_at":{ended_json}}}\n'
            )
            tokens.append((family, uid))
        else:
            w(
                f'{{"type":"session","family":"{family}","user_id":"{uid}","created":{start},'
                f'"generation":0,"expires_at":{now + 7 * 86400},"ended_at":null,'
                f'"browser":{{"cookie_hash":"{brw}","last_seen":{now - 60},"remember_me":false}}}}\n'
            )
        count += 1
    for family, uid in tokens:
        w(
            f'{{"type":"refresh_token","token_hash":"{os.urandom(32).hex()}","family":"{family}",'
            f'"user_id":"{uid}","expires_at":{expires},"spent":false}}\n'
        )
        count += 1
    w(f'{{"type":"end","records":{count}}}\n')
    out.flush()
    print(
        f"{ended_in_grace:,} ended within the grace, {ended_past:,} ended just past it, "
        f"{browser:,} live browser sessions, {live:,} live token sessions; "
        f"{len(tokens):,} refresh tokens",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
