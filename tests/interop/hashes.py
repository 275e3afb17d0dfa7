"""Password hashes made by the real Python implementations, for tests/user_import.rs.

One JSON request on stdin: {"hashes": [{"scheme": NAME, "password": TEXT}, ...]}; one JSON
answer on stdout: {"hashes": [HASH, ...]} in the same order. Passwords travel only through
these pipes. Schemes, each made the way the application that owns the user table made it:

  bcrypt-2a, bcrypt-2b      pyca `bcrypt` (bcrypt.hashpw with gensalt(prefix=...)), as a
                            FastAPI app calling bcrypt directly does
  bcrypt-2y                 passlib's bcrypt handler with ident "2y" (passlib's
                            CryptContext(schemes=["bcrypt"]) is the FastAPI tutorial's hasher)
  bcrypt-passlib            passlib CryptContext(schemes=["bcrypt"]).hash, exactly the tutorial
  argon2id, argon2i         argon2-cffi PasswordHasher, with 8 MiB of memory rather than its
                            64 MiB default (the tests run a debug build, where that costs
                            seconds per login)
  django-pbkdf2             Django's own make_password (its default pbkdf2_sha256 hasher and
                            iteration count)

bcrypt (pyca `bcrypt` < 5.0, passlib) reads only the first 72 bytes of a password; a longer
one is hashed by its first 72 bytes without an error, which is what the >72-byte test relies
on. The cost is kept at the minimum (4) so the test stays fast; the format is the same.
"""

import json
import sys

import argon2
import bcrypt
from passlib.context import CryptContext
from passlib.hash import bcrypt as passlib_bcrypt


def django_make_password():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
            USE_TZ=True,
        )
        django.setup()
    from django.contrib.auth.hashers import make_password

    return make_password


def make(scheme, password):
    raw = password.encode("utf-8")
    if scheme in ("bcrypt-2a", "bcrypt-2b"):
        prefix = scheme.split("-")[1].encode()
        return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
    if scheme == "bcrypt-2y":
        return passlib_bcrypt.using(ident="2y", rounds=4).hash(password)
    if scheme == "bcrypt-passlib":
        context = CryptContext(schemes=["bcrypt"], deprecated="auto", bcrypt__rounds=4)
        return context.hash(password)
    if scheme == "argon2id":
        return argon2.PasswordHasher(
            type=argon2.Type.ID, time_cost=2, memory_cost=8192, parallelism=1
        ).hash(password)
    if scheme == "argon2i":
        return argon2.PasswordHasher(
            type=argon2.Type.I, time_cost=3, memory_cost=8192, parallelism=2
        ).hash(password)
    if scheme == "django-pbkdf2":
        return django_make_password()(password, hasher="pbkdf2_sha256")
    raise SystemExit(f"unknown scheme {scheme!r}")


def main():
    request = json.load(sys.stdin)
    hashes = [make(item["scheme"], item["password"]) for item in request["hashes"]]
    json.dump({"hashes": hashes}, sys.stdout)


if __name__ == "__main__":
    main()
