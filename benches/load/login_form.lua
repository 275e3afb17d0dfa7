-- wrk script: POST an OAuth2 password form (application/x-www-form-urlencoded), as the
-- reference app's `POST /token` (OAuth2PasswordRequestForm) takes it; credentials from the
-- environment as login.lua's.
local user = os.getenv("LOGIN_USER") or "bench"
local pass = os.getenv("LOGIN_PASSWORD") or "password123"
wrk.method = "POST"
wrk.body = string.format("grant_type=password&username=%s&password=%s", user, pass)
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
