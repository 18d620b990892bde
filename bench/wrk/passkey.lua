-- finishPasskeyLogin: each request answers one sign-in challenge with a passkey's assertion.
-- Challenges are single use, so each line of the file (a whole request body) serves one request.
-- args: bodies file, number of threads
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local bodies, next_ = {}, 1

function init(args)
  local threads = tonumber(args[2])
  for n, line in ipairs(read_lines(args[1])) do
    if (n - 1) % threads == id then
      table.insert(bodies, line)
    end
  end
end

function request()
  local body = bodies[next_] or '{"query":"{ exhausted }"}'
  next_ = next_ + 1
  return post(body)
end

function response(status, headers, body)
  check(status, body, '"__typename":"AuthPayload"')
end
