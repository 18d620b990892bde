-- /oauth2/token, authorization_code with PKCE: each request exchanges one code (single use),
-- so each line of the file (a whole form-encoded request body) serves one request.
-- args: bodies file, number of threads
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local bodies, next_ = {}, 1
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function init(args)
  local threads = tonumber(args[2])
  for n, line in ipairs(read_lines(args[1])) do
    if (n - 1) % threads == id then
      table.insert(bodies, line)
    end
  end
end

function request()
  local body = bodies[next_] or "grant_type=exhausted"
  next_ = next_ + 1
  return wrk.format("POST", "/oauth2/token", headers, body)
end

function response(status, headers, body)
  check(status, body, '"id_token"')
end
