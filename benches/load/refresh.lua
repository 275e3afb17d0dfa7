-- wrk script: POST /auth/refresh in chains. Refresh tokens are single-use, so every
-- request spends one and its 200 answer brings the next: a pool of tokens (one per
-- connection, from logins made beforehand)
-- is consumed by request() and refilled by response(). The starting tokens are read from
-- the file named by REFRESH_TOKENS_FILE, one a line: one more than connections, because
-- wrk calls request() once at start to check it (on thread 0's state) and throws that
-- request away, token included. A request made while the pool is
-- empty (an earlier refresh failed) carries an invalid token and is counted as non-2xx.
-- Use with one wrk thread (-t1): each thread has its own Lua state and pool.
local pool = {}

function init(args)
    local path = os.getenv("REFRESH_TOKENS_FILE")
    if path then
        for token in io.lines(path) do
            if token ~= "" then
                pool[#pool + 1] = token
            end
        end
    end
end

function request()
    local token = table.remove(pool) or "pool-empty"
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
        '{"refresh_token":"' .. token .. '"}')
end

local failures = 0

function response(status, headers, body)
    if status == 200 then
        local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
        if token then
            pool[#pool + 1] = token
            return
        end
    end
    -- the first few failures, for the log (error bodies carry no token, SPEC §5)
    failures = failures + 1
    if failures <= 3 then
        io.stderr:write(string.format("refresh failed: %d %s\n", status, body:sub(1, 200)))
    end
end
