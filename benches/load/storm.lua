-- wrk script: GET with a different bearer token per request, from the file named by
-- STORM_TOKENS_FILE (one a line), each sent STORM_REPEAT times (default 1) in turn; the
-- thread stops once every token has been answered that often and then creates the file
-- named by STORM_DONE_FILE, so that the caller can end wrk with SIGINT (wrk's main thread
-- otherwise sleeps out its -d): a run is "N requests", not "D seconds", and wrk's
-- elapsed time and latencies are those of the N. Use one wrk thread (-t1): each thread has
-- its own Lua state and would send the whole list. Connections still in flight when the
-- N-th answer arrives add up to one request each (cache hits): wrk's request count
-- includes them.
local tokens = {}
local total, sent, answered, failures = 0, 0, 0, 0

function init(args)
    local path = os.getenv("STORM_TOKENS_FILE")
    local repeat_each = tonumber(os.getenv("STORM_REPEAT") or "1")
    for token in io.lines(path) do
        if token ~= "" then
            tokens[#tokens + 1] = token
        end
    end
    total = #tokens * repeat_each
end

function request()
    -- wrk calls request() once up front to check it and throws that request away
    local token = tokens[(sent % #tokens) + 1]
    sent = sent + 1
    return wrk.format("GET", nil, { Authorization = "Bearer " .. token })
end

function response(status, headers, body)
    answered = answered + 1
    if status ~= 200 then
        failures = failures + 1
        if failures <= 3 then
            io.stderr:write(string.format("storm: answer %d %s\n", status, body:sub(1, 200)))
        end
    end
    if answered == total then
        wrk.thread:stop()
        local done = os.getenv("STORM_DONE_FILE")
        if done then
            local f = io.open(done, "w")
            if f then f:close() end
        end
    end
end
