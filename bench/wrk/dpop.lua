-- `me` with DPoP-bound access tokens: each request carries its token and a fresh proof.
-- Proofs are single use, so each line of the file serves one request.
-- args: query file, lines file (`token proof` a line), number of threads
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local body, lines, next_ = nil, {}, 1

function init(args)
  body = '{"query":' .. json_string(read_all(args[1])) .. "}"
  local threads = tonumber(args[3])
  for n, line in ipairs(read_lines(args[2])) do
    if (n - 1) % threads == id then
      table.insert(lines, line)
    end
  end
end

function request()
  local line = lines[next_] or "exhausted exhausted"
  next_ = next_ + 1
  local token, proof = line:match("^(%S+) (%S+)$")
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "DPoP " .. token,
    ["DPoP"] = proof,
  }
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  check(status, body, '"me":{"id"')
end
