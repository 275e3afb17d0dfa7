"""Real Python peers for gatehouse's interop and attack tests (tests/common/interop.rs).

One JSON request on stdin, one JSON answer on stdout; tokens travel only through these pipes.

  {"op": "verify", "peer": "pyjwt" | "jwcrypto", ...}  verify tokens as a relying party would
  {"op": "pems", "jwks_uri": URL}                      every JWKS key as SPKI PEM (for HAProxy)
  {"op": "forge", "category": NAME, ...}               hostile tokens for the attack tests
  {"op": "doc_python", "snippet": CODE, "headers_list": [...]}  run a docs snippet's identity()

`verify` pins everything a careful verifier pins: the JWKS URL (or the shared secret for
HS*), the algorithms, `iss`, `aud`, the required claims and the header `typ` (neither PyJWT
nor jwcrypto checks `typ`, so it is compared here after the signature verified).
"""

import base64
import datetime
import hashlib
import hmac
import json
import sys
import urllib.request

import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jwt as jwcrypto_jwt

# Order of the P-256 group (FIPS 186-4 D.1.2.3) and of Ed25519's base point (RFC 8032 §5.1).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fetch_jwks(uri):
    with urllib.request.urlopen(uri, timeout=10) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------------------ verify


def verify_pyjwt(request, token):
    if request.get("jwks_uri"):
        client = pyjwt.PyJWKClient(request["jwks_uri"], cache_keys=False, cache_jwk_set=False)
        key = client.get_signing_key_from_jwt(token).key
    else:
        key = request["secret"]
    claims = pyjwt.decode(
        token,
        key,
        algorithms=request["algorithms"],
        issuer=request["issuer"],
        audience=request["audience"],
        leeway=30,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    return pyjwt.get_unverified_header(token), claims


def verify_jwcrypto(request, token):
    if request.get("jwks_uri"):
        keys = jwcrypto_jwk.JWKSet.from_json(json.dumps(fetch_jwks(request["jwks_uri"])))
    else:
        keys = jwcrypto_jwk.JWK(kty="oct", k=b64(request["secret"].encode()))
    verified = jwcrypto_jwt.JWT(
        algs=request["algorithms"],
        check_claims={"iss": request["issuer"], "aud": request["audience"], "exp": None},
        expected_type="JWS",
    )
    verified.leeway = 30
    verified.deserialize(token, keys)
    return json.loads(verified.header), json.loads(verified.claims)


def verify(request):
    check = {"pyjwt": verify_pyjwt, "jwcrypto": verify_jwcrypto}[request["peer"]]
    results = []
    for token in request["tokens"]:
        try:
            header, claims = check(request, token)
            if header.get("typ") != request["typ"]:
                raise ValueError(f"typ {header.get('typ')!r} is not {request['typ']!r}")
            results.append({"ok": True, "header": header, "claims": claims})
        except Exception as error:  # every failure is an answer, not a crash
            results.append({"ok": False, "error": f"{type(error).__name__}: {error}"})
    return {"results": results}


def doc_python(request):
    """Runs a verification snippet from the docs: `identity(headers)` for each headers map."""
    namespace = {"__name__": "doc_snippet"}
    exec(compile(request["snippet"], "doc_snippet.py", "exec"), namespace)
    results = []
    for headers in request["headers_list"]:
        try:
            results.append({"ok": True, "identity": namespace["identity"](headers)})
        except Exception as error:  # every refusal is an answer
            results.append({"ok": False, "error": f"{type(error).__name__}: {error}"})
    return {"results": results}


def pems(request):
    out = {}
    for key in fetch_jwks(request["jwks_uri"])["keys"]:
        jwk = jwcrypto_jwk.JWK(**key)
        out[key["kid"]] = jwk.export_to_pem().decode()
    return {"pems": out}


# ------------------------------------------------------------------------------- forge


class Signer:
    """The real key (read from the gatehouse key file) and the genuine token it signed."""

    def __init__(self, request):
        with open(request["key_file"], "rb") as file:
            self.key = serialization.load_pem_private_key(file.read(), password=None)
        self.alg = request["alg"]
        header, payload, signature = request["token"].split(".")
        self.header = json.loads(unb64(header))
        self.claims = json.loads(unb64(payload))
        self.signature = unb64(signature)
        self.kid = self.header["kid"]
        self.public = self.key.public_key()

    def sign(self, message, alg=None):
        """Signs with the real key, with `alg`'s hash/padding (default: the key's own)."""
        return sign_with(self.key, alg or self.alg, message)

    def token(self, header=None, claims=None, alg=None, raw_header=None, raw_claims=None):
        h = raw_header if raw_header is not None else json.dumps(header or self.header)
        c = raw_claims if raw_claims is not None else json.dumps(claims or self.claims)
        message = f"{b64(h.encode())}.{b64(c.encode())}"
        return f"{message}.{b64(self.sign(message.encode(), alg))}"

    def with_header(self, **changes):
        header = dict(self.header)
        for name, value in changes.items():
            if value is DROP:
                header.pop(name, None)
            else:
                header[name] = value
        return header


DROP = object()


def sign_with(key, alg, message):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(digest)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]
        if alg.startswith("PS"):
            pad = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        else:
            pad = padding.PKCS1v15()
        return key.sign(message, pad, digest)
    return key.sign(message)  # Ed25519


def public_jwk(public, alg):
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[public.curve.key_size]
        members = {"crv": crv, "kty": "EC", "x": b64(numbers.x.to_bytes(size, "big")),
                   "y": b64(numbers.y.to_bytes(size, "big"))}
    elif isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        members = {"e": b64(numbers.e.to_bytes(3, "big")), "kty": "RSA",
                   "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))}
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}
    thumbprint = b64(hashlib.sha256(json.dumps(members, separators=(",", ":"),
                                                sort_keys=True).encode()).digest())
    return dict(members, kid=thumbprint, alg=alg, use="sig")


def attacker_key(alg):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def self_signed_der(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatehouse")])
    now = datetime.datetime.now(datetime.timezone.utc)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


def hmac_token(header, claims, secret, alg="HS256"):
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    message = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{message}.{b64(hmac.new(secret, message.encode(), digest).digest())}"


def forge_control(s, request):
    # The genuine header and claims re-signed here: accepted, so every other case below
    # fails only for the one fault it adds.
    return [("control: re-signed genuine token", s.token())]


def forge_alg_none(s, request):
    out = []
    for alg in ["none", "None", "NONE", "nOnE"]:
        header = b64(json.dumps(s.with_header(alg=alg)).encode())
        payload = b64(json.dumps(s.claims).encode())
        out.append((f"alg {alg}, empty signature", f"{header}.{payload}."))
        out.append((f"alg {alg}, genuine signature kept", f"{header}.{payload}.{b64(s.signature)}"))
    return out


def forge_hmac_public_key(s, request):
    public = s.public
    spki_pem = public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    spki_der = public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    encodings = {
        "SPKI PEM": spki_pem,
        "SPKI PEM without trailing newline": spki_pem.rstrip(b"\n"),
        "SPKI PEM with CRLF": spki_pem.replace(b"\n", b"\r\n"),
        "SPKI DER": spki_der,
        "SPKI DER base64": base64.b64encode(spki_der),
    }
    if isinstance(public, rsa.RSAPublicKey):
        pkcs1_pem = public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.PKCS1)
        encodings["PKCS#1 PEM"] = pkcs1_pem
        encodings["PKCS#1 PEM without trailing newline"] = pkcs1_pem.rstrip(b"\n")
        encodings["PKCS#1 DER"] = public.public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.PKCS1)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        encodings["SEC1 uncompressed point"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        encodings["raw Ed25519 public key"] = public.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for jwk in request["jwks"]["keys"]:
        if jwk["kid"] == s.kid:
            encodings["JWK JSON as published"] = json.dumps(jwk).encode()
            encodings["JWK JSON compact"] = json.dumps(jwk, separators=(",", ":")).encode()
            encodings["JWK JSON with trailing newline"] = json.dumps(jwk).encode() + b"\n"
    encodings["JWKS document"] = json.dumps(request["jwks"]).encode()
    out = []
    for name, secret in encodings.items():
        for alg in ["HS256", "HS384", "HS512"]:
            header = s.with_header(alg=alg)
            out.append((f"{alg} keyed with the {name}", hmac_token(header, s.claims, secret, alg)))
        out.append((f"HS256 keyed with the {name}, no kid",
                    hmac_token(s.with_header(alg="HS256", kid=DROP), s.claims, secret)))
    return out


def forge_alg_swap(s, request):
    out = []
    if s.alg == "ES256":
        for alg in ["ES384", "ES512"]:
            # The real P-256 key, hashed as the swapped alg names: a verifier that believed
            # the header would accept it.
            out.append((f"alg {alg}, real key with its hash", s.token(s.with_header(alg=alg), alg=alg)))
            out.append((f"alg {alg}, ES256 signature", s.token(s.with_header(alg=alg))))
        out.append(("alg es256 (case)", s.token(s.with_header(alg="es256"))))
        out.append(("alg ES256K", s.token(s.with_header(alg="ES256K"))))
    elif s.alg == "RS256":
        for alg in ["PS256", "RS384", "RS512", "PS384", "PS512"]:
            out.append((f"alg {alg}, real key with its padding and hash",
                        s.token(s.with_header(alg=alg), alg=alg)))
        out.append(("alg rs256 (case)", s.token(s.with_header(alg="rs256"))))
    else:
        for alg in ["Ed25519", "ED25519", "Ed448", "EDDSA", "eddsa", "ES256"]:
            out.append((f"alg {alg}, real Ed25519 signature", s.token(s.with_header(alg=alg))))
    out.append(("no alg member", s.token(s.with_header(alg=DROP))))
    out.append(("alg as an array", s.token(s.with_header(alg=[s.alg]))))
    return out


def forge_kid(s, request):
    cases = {
        "unknown kid": "not-a-configured-kid",
        "path traversal": "../../etc/passwd",
        "absolute path": "/dev/null",
        "CRLF": "x\r\nX-Injected: 1",
        "NUL": "x\u0000y",
        "SQL": "' OR '1'='1",
        "10 KB": "A" * 10240,
        "2 KB": "A" * 2048,
        "empty string": "",
        "number": 1,
        "object": {"kid": s.kid},
        "array": [s.kid],
        "null": None,
        "the real kid plus a space": s.kid + " ",
        "the real kid in upper case": s.kid.upper(),
        "the real kid with padding": s.kid + "=",
        "missing": DROP,
    }
    return [(f"kid {name}", s.token(s.with_header(kid=value))) for name, value in cases.items()]


def forge_key_urls(s, request):
    url = request["url"]
    out = []
    for member in ["jku", "x5u"]:
        out.append((f"{member} to the listener, real signature", s.token(s.with_header(**{member: url}))))
        attacker = attacker_key(s.alg)
        header = dict(s.with_header(**{member: url}), kid=public_jwk(attacker.public_key(), s.alg)["kid"])
        message = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(s.claims).encode())}"
        out.append((f"{member} to the listener, attacker's kid and signature",
                    f"{message}.{b64(sign_with(attacker, s.alg, message.encode()))}"))
    return out


def forge_embedded_key(s, request):
    out = []
    attacker = attacker_key(s.alg)
    jwk = public_jwk(attacker.public_key(), s.alg)
    cert = base64.b64encode(self_signed_der(attacker)).decode()

    def signed_by_attacker(header):
        message = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(s.claims).encode())}"
        return f"{message}.{b64(sign_with(attacker, s.alg, message.encode()))}"

    out.append(("jwk: attacker's key and kid", signed_by_attacker(s.with_header(jwk=jwk, kid=jwk["kid"]))))
    out.append(("jwk: attacker's key, real kid", signed_by_attacker(s.with_header(jwk=jwk))))
    out.append(("jwk: attacker's key, no kid", signed_by_attacker(s.with_header(jwk=jwk, kid=DROP))))
    out.append(("x5c: attacker's certificate and kid", signed_by_attacker(s.with_header(x5c=[cert], kid=jwk["kid"]))))
    out.append(("x5c: attacker's certificate, real kid", signed_by_attacker(s.with_header(x5c=[cert]))))
    real = public_jwk(s.public, s.alg)
    out.append(("jwk: the real public key, real signature", s.token(s.with_header(jwk=real))))
    out.append(("x5c: real signature", s.token(s.with_header(x5c=[cert]))))
    return out


def forge_crit(s, request):
    return [
        ("crit [exp]", s.token(s.with_header(crit=["exp"]))),
        ("crit []", s.token(s.with_header(crit=[]))),
        ("crit [b64] with b64 false", s.token(s.with_header(crit=["b64"], b64=False))),
        ("crit [urn:x] with that member", s.token(s.with_header(**{"crit": ["urn:x"], "urn:x": 1}))),
    ]


def forge_signature(s, request):
    message = ".".join(request["token"].split(".")[:2])
    longer = s.signature + bytes(1)
    flipped = s.signature[:-1] + bytes([s.signature[-1] ^ 1])
    out = [
        ("empty signature", f"{message}."),
        ("all-zero signature", f"{message}.{b64(bytes(len(s.signature)))}"),
        ("signature truncated by one byte", f"{message}.{b64(s.signature[:-1])}"),
        ("signature with one byte more", f"{message}.{b64(longer)}"),
        ("signature bit flipped", f"{message}.{b64(flipped)}"),
    ]
    if s.alg == "ES256":
        r = int.from_bytes(s.signature[:32], "big")
        sig_s = int.from_bytes(s.signature[32:], "big")

        def raw(r_value, s_value):
            return f"{message}.{b64(r_value.to_bytes(32, 'big') + s_value.to_bytes(32, 'big'))}"

        out += [
            ("r = 0", raw(0, sig_s)),
            ("s = 0", raw(r, 0)),
            ("r = n", raw(P256_N, sig_s)),
            ("s = n", raw(r, P256_N)),
            ("r = n, s = n", raw(P256_N, P256_N)),
            ("r + n (out of range, same value mod n)", raw(r + P256_N, sig_s) if r + P256_N < 2**256 else raw(2**256 - 1, sig_s)),
            ("s + n (out of range, same value mod n)", raw(r, sig_s + P256_N) if sig_s + P256_N < 2**256 else raw(r, 2**256 - 1)),
            ("r = 2^256 - 1", raw(2**256 - 1, sig_s)),
            ("DER-encoded signature", f"{message}.{b64(encode_dss_signature(r, sig_s))}"),
        ]
    if s.alg == "EdDSA":
        big_s = int.from_bytes(s.signature[32:], "little") + ED25519_L
        if big_s < 2**256:
            out.append(("S + L (non-canonical)", f"{message}.{b64(s.signature[:32] + big_s.to_bytes(32, 'little'))}"))
    return out


def forge_high_s(s, request):
    # The twin of the genuine ECDSA signature: (r, n - s) verifies just as well.
    r = s.signature[:32]
    sig_s = int.from_bytes(s.signature[32:], "big")
    twin_signature = r + (P256_N - sig_s).to_bytes(32, "big")
    message = ".".join(request["token"].split(".")[:2])
    twin = f"{message}.{b64(twin_signature)}"
    der = encode_dss_signature(int.from_bytes(r, "big"), P256_N - sig_s)
    s.public.verify(der, message.encode(), ec.ECDSA(hashes.SHA256()))  # raises if not valid
    return [("high-s twin of the revoked token (a valid signature)", twin)]


def forge_base64(s, request):
    genuine = request["token"]
    parts = genuine.split(".")
    out = []
    padded = [p + "=" * (-len(p) % 4) for p in parts]
    for index, name in enumerate(["header", "payload", "signature"]):
        if padded[index] != parts[index]:
            variant = list(parts)
            variant[index] = padded[index]
            out.append((f"'=' padding on the {name}", ".".join(variant)))
    out.append(("'=' padding on every part", ".".join(padded)))
    # Standard alphabet ('+', '/'): re-sign with spacing varied until some part needs them.
    for spaces in range(64):
        raw_header = json.dumps(s.header, separators=(", " + " " * spaces, ": "))
        token = s.token(raw_header=raw_header)
        std = ".".join(
            base64.b64encode(unb64(p)).decode().rstrip("=") for p in token.split(".")
        )
        if std != token:
            out.append(("standard base64 alphabet ('+' '/')", std))
            out.append(("standard base64 alphabet with '=' padding",
                        ".".join(base64.b64encode(unb64(p)).decode() for p in token.split("."))))
            break
    out.append(("whitespace inside the token", genuine[:10] + " " + genuine[10:]))
    out.append(("a fourth segment", genuine + ".AAAA"))
    out.append(("JWS JSON serialization", json.dumps({"protected": parts[0], "payload": parts[1], "signature": parts[2]})))
    return out


def forge_claims(s, request):
    c = s.claims
    cases = {
        "exp as a string": dict(c, exp=str(c["exp"])),
        "exp in the past": dict(c, exp=c["iat"] - 3600, nbf=c["iat"] - 7200, iat=c["iat"] - 7200),
        "nbf in the future": dict(c, nbf=c["iat"] + 3600),
        "iat as a string": dict(c, iat=str(c["iat"])),
        "aud as an array": dict(c, aud=[c["aud"]]),
        "aud as a number": dict(c, aud=1),
        "aud of another service": dict(c, aud="https://orders.internal"),
        "iss of another issuer": dict(c, iss=c["iss"] + "/"),
        "roles as a string": dict(c, roles="admin"),
        "roles with a number": dict(c, roles=["admin", 1]),
        "sub as a number": dict(c, sub=1),
        "sub missing": {k: v for k, v in c.items() if k != "sub"},
        "exp missing": {k: v for k, v in c.items() if k != "exp"},
        "username as an array": dict(c, username=[c["username"]]),
        "jti as a number": dict(c, jti=1),
        "a JSON array payload": [c],
    }
    out = [(name, s.token(claims=claims)) for name, claims in cases.items()]
    text = json.dumps(c)
    out.append(("duplicate sub member", s.token(raw_claims=text[:-1] + ', "sub": "someone-else"}')))
    return out


def forge_typ(s, request):
    return [
        (f"typ {name}", s.token(s.with_header(typ=value)))
        for name, value in {
            "JWT": "JWT",
            "missing": DROP,
            "gatehouse-assertion+jwt": "gatehouse-assertion+jwt",
            "AT+JWT with a suffix": "at+jwt2",
            "number": 1,
        }.items()
    ]


FORGERS = {
    "control": forge_control,
    "alg_none": forge_alg_none,
    "hmac_public_key": forge_hmac_public_key,
    "alg_swap": forge_alg_swap,
    "kid": forge_kid,
    "key_urls": forge_key_urls,
    "embedded_key": forge_embedded_key,
    "crit": forge_crit,
    "signature": forge_signature,
    "high_s": forge_high_s,
    "base64": forge_base64,
    "claims": forge_claims,
    "typ": forge_typ,
}


def forge(request):
    signer = Signer(request)
    return {"tokens": [[name, token] for name, token in FORGERS[request["category"]](signer, request)]}


def main():
    request = json.load(sys.stdin)
    handler = {"verify": verify, "pems": pems, "forge": forge, "doc_python": doc_python}[
        request["op"]
    ]
    json.dump(handler(request), sys.stdout)


if __name__ == "__main__":
    main()
