#!/usr/bin/env python3
"""Many distinct, valid access tokens for the cache-miss storm (storm.sh, issue #17 target 3).

  mint_tokens.py --template TOKEN --count N [--key PEM] > tokens.txt

TEMPLATE is a token gatehouse itself issued (from POST /auth/login): every minted token
has its header (alg, typ, kid) and its claims exactly (iss, aud, sub = the real user id,
username, roles, iat, nbf, exp, sid, client_id), with a fresh `jti` (a UUID, as gatehouse
writes), so each is a different token with a different signature that gatehouse accepts.
HS* tokens are signed with the secret in the environment variable BENCH_SECRET (the
bytes of GATEHOUSE_SECRET, never on the command line); ES256, EdDSA and RS256 with the
private key file `gatehouse keys generate` wrote (--key).

Needs PyJWT and cryptography (storm.sh installs them into a venv from
requirements-jwt.txt).
"""
import argparse
import base64
import json
import os
import sys
import uuid

# PyJWT, not the stdlib-only jwt.py beside this script (the script's directory comes first
# on sys.path).
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import jwt  # noqa: E402


def segment(token: str, i: int) -> dict:
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--key", help="PEM private key (key-pair algorithms)")
    args = parser.parse_args()
    header, claims = segment(args.template, 0), segment(args.template, 1)
    alg = header["alg"]
    if alg.startswith("HS"):
        key = os.environ.get("BENCH_SECRET", "").encode()
        if len(key) < 32:
            sys.exit("mint_tokens.py: BENCH_SECRET must hold the shared secret")
    else:
        if not args.key:
            sys.exit(f"mint_tokens.py: --key is needed for {alg}")
        with open(args.key, "rb") as f:
            key = f.read()
    extra = {k: v for k, v in header.items() if k != "alg"}
    out = sys.stdout
    seen = set()
    for _ in range(args.count):
        claims["jti"] = str(uuid.uuid4())
        token = jwt.encode(claims, key, algorithm=alg, headers=extra)
        if token in seen:
            sys.exit("mint_tokens.py: duplicate token")
        seen.add(token)
        out.write(token + "\n")


if __name__ == "__main__":
    main()
