-- wrk script: POST /auth/login with a JSON body (the bench user's credentials).
-- Credentials come from the environment so that lib.sh stays the one place that names them.
local user = os.getenv("LOGIN_USER") or "bench"
local pass = os.getenv("LOGIN_PASSWORD") or "password123"
wrk.method = "POST"
wrk.body = string.format('{"username":"%s","password":"%s"}', user, pass)
wrk.headers["Content-Type"] = "application/json"
