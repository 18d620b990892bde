-- verifyMfa: each request finishes one pending sign-in with its mfaToken and a TOTP code.
-- Tokens and codes are single use, so each line of the file serves one request.
-- args: pairs file (`mfaToken code` a line), number of threads
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local QUERY = "mutation($t: String!, $c: String) { verifyMfa(input: {mfaToken: $t, totpCode: $c}) "
  .. "{ __typename ... on AuthPayload { accessToken refreshToken expiresIn } } }"
local PREFIX = '{"query":' .. json_string(QUERY) .. ',"variables":{"t":'
local pairs_, next_ = {}, 1

function init(args)
  local threads = tonumber(args[2])
  for n, line in ipairs(read_lines(args[1])) do
    if (n - 1) % threads == id then
      table.insert(pairs_, line)
    end
  end
end

function request()
  local line = pairs_[next_] or "exhausted 000000"
  next_ = next_ + 1
  local token, code = line:match("^(%S+) (%S+)$")
  return post(PREFIX .. json_string(token) .. ',"c":' .. json_string(code) .. "}}")
end

function response(status, headers, body)
  check(status, body, '"__typename":"AuthPayload"')
end
