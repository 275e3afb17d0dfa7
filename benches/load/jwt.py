#!/usr/bin/env python3
"""HS256 JWT helper for the load benches (standard library only).

  jwt.py mint   [--sub S] [--iss I] [--aud A] [--ttl SECONDS] [--alg HS256|none]
  jwt.py tamper TOKEN        # same header and claims, broken signature
  jwt.py claim  TOKEN NAME   # print one payload claim (no verification)

The HMAC secret is read from the environment variable BENCH_SECRET so that it
never shows up in `ps`.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(args) -> str:
    secret = os.environ.get("BENCH_SECRET", "").encode()
    if len(secret) < 32:
        sys.exit("jwt.py: BENCH_SECRET must be set and at least 32 bytes")
    now = int(time.time())
    header = {"alg": args.alg, "typ": "JWT", "kid": "bench"}
    claims = {
        "iss": args.iss,
        "aud": args.aud,
        "sub": args.sub,
        "username": args.username or args.sub,
        "roles": [],
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl,
        "jti": str(uuid.uuid4()),
    }
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    if args.alg == "none":
        return signing_input + "."
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(b64url_decode(sig))
    if not raw:
        raw = bytearray(32)
    raw[0] ^= 0x01  # flip one bit of the MAC: same length, same encoding, wrong value
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def claim(token: str, name: str) -> str:
    payload = json.loads(b64url_decode(token.split(".")[1]))
    value = payload.get(name, "")
    return value if isinstance(value, str) else json.dumps(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("mint")
    m.add_argument("--sub", default="bench")
    m.add_argument("--username", default=None)
    m.add_argument("--iss", default="bench")
    m.add_argument("--aud", default="bench")
    m.add_argument("--ttl", type=int, default=86400, help="seconds until exp (negative: already expired)")
    m.add_argument("--alg", default="HS256", choices=["HS256", "none"])
    t = sub.add_parser("tamper")
    t.add_argument("token")
    c = sub.add_parser("claim")
    c.add_argument("token")
    c.add_argument("name")
    args = parser.parse_args()
    if args.cmd == "mint":
        print(mint(args))
    elif args.cmd == "tamper":
        print(tamper(args.token))
    else:
        print(claim(args.token, args.name))


if __name__ == "__main__":
    main()
