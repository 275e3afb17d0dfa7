// npm jose as a real relying party for gatehouse's interop tests (tests/common/interop.rs).
// One JSON request on stdin, one JSON answer on stdout; tokens travel only through the pipes.
//
//   {"jwks_uri"? | "secret"?, "issuer", "audience", "typ", "algorithms", "tokens": [...]}
//   → {"results": [{"ok", "header", "claims"} | {"ok": false, "error"}],
//      "thumbprints": [{"kid", "thumbprint"}]}   (RFC 7638 SHA-256 of every JWKS key)
//   {"module": FILE, "headers_list": [...]}: runs a docs snippet's identity(headers)
//
// jwtVerify pins the algorithms, `iss`, `aud` and the header `typ`; createRemoteJWKSet
// selects the key by `kid` from the JWKS at the pinned URL.
import { calculateJwkThumbprint, createRemoteJWKSet, jwtVerify } from 'jose';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString('utf8'));

// {"module": FILE, "headers_list": [...]}: a docs snippet (an ES module next to this file,
// exporting identity(headers)) run on each headers object.
if (request.module) {
  const { identity } = await import(new URL(request.module, import.meta.url));
  const results = [];
  for (const headers of request.headers_list) {
    try {
      results.push({ ok: true, identity: await identity(headers) });
    } catch (error) {
      results.push({ ok: false, error: `${error.code ?? error.name}: ${error.message}` });
    }
  }
  process.stdout.write(JSON.stringify({ results }));
  process.exit(0);
}

const key = request.jwks_uri
  ? createRemoteJWKSet(new URL(request.jwks_uri), { cacheMaxAge: 0, cooldownDuration: 0 })
  : new TextEncoder().encode(request.secret);

const results = [];
for (const token of request.tokens) {
  try {
    const { payload, protectedHeader } = await jwtVerify(token, key, {
      algorithms: request.algorithms,
      issuer: request.issuer,
      audience: request.audience,
      typ: request.typ,
      clockTolerance: 30,
      requiredClaims: ['exp', 'iat', 'nbf', 'sub', 'jti'],
    });
    results.push({ ok: true, header: protectedHeader, claims: payload });
  } catch (error) {
    results.push({ ok: false, error: `${error.code ?? error.name}: ${error.message}` });
  }
}

const thumbprints = [];
if (request.jwks_uri) {
  const response = await fetch(request.jwks_uri);
  const jwks = await response.json();
  for (const jwk of jwks.keys) {
    thumbprints.push({ kid: jwk.kid, thumbprint: await calculateJwkThumbprint(jwk, 'sha256') });
  }
}

process.stdout.write(JSON.stringify({ results, thumbprints }));
