"""authlib, unmodified, as an OAuth 2.0 client of gatehouse (tests/interop_authlib.rs).

One JSON request on stdin, one JSON answer on stdout; the client secret travels only
through these pipes and the tokens never leave this process.

  {"token_endpoint", "introspection_endpoint", "protected_url",
   "client_id", "client_secret", "auth_method": "client_secret_basic" | "client_secret_post"}

With authlib's requests integration (`OAuth2Session`): fetches a client-credentials token
(RFC 6749 §4.4), calls the protected URL with it, introspects it (RFC 7662, authlib's
`introspect_token`, authenticating the same way), and tries a wrong secret. The answer
reports what authlib saw; the Rust test judges it.
"""

import json
import sys

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session


def session(request, secret):
    return OAuth2Session(
        client_id=request["client_id"],
        client_secret=secret,
        token_endpoint_auth_method=request["auth_method"],
    )


def main():
    request = json.load(sys.stdin)
    out = {}
    client = session(request, request["client_secret"])
    token = client.fetch_token(request["token_endpoint"], grant_type="client_credentials")
    out["token_members"] = sorted(token.keys())
    out["token_type"] = token["token_type"]
    out["expires_in"] = token["expires_in"]

    protected = client.get(request["protected_url"])
    out["protected_status"] = protected.status_code

    introspection = client.introspect_token(
        request["introspection_endpoint"], token=token["access_token"]
    )
    out["introspection_status"] = introspection.status_code
    out["introspection"] = introspection.json()

    inactive = client.introspect_token(
        request["introspection_endpoint"], token="not-a-token"
    )
    out["inactive"] = inactive.json()

    wrong = session(request, "not-the-secret")
    try:
        wrong.fetch_token(request["token_endpoint"], grant_type="client_credentials")
        out["wrong_secret"] = "accepted"
    except OAuthError as error:
        out["wrong_secret"] = error.error
    print(json.dumps(out))


if __name__ == "__main__":
    main()
