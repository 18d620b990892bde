-- refreshToken, each in-flight request carrying the head of its own token chain.
--
-- Tokens rotate: each answer holds the successor of the token that was sent. The thread
-- keeps a queue of chain heads: a request takes one, its answer puts the successor back.
-- Connections never share a token, so no answer is a replay; a chain whose answer failed is
-- lost (and counted as bad), and when no head is left the request is sent with a dead token.
-- args: tokens file (one refresh token a line, each a fresh session), number of threads
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local QUERY = "mutation($t: String) { refreshToken(input: {refreshToken: $t}) { __typename "
  .. "... on AuthPayload { accessToken refreshToken expiresIn } } }"
local PREFIX = '{"query":' .. json_string(QUERY) .. ',"variables":{"t":'
local heads, first, last = {}, 1, 0

function init(args)
  local threads = tonumber(args[2])
  for n, token in ipairs(read_lines(args[1])) do
    if (n - 1) % threads == id then
      last = last + 1
      heads[last] = token
    end
  end
end

function request()
  local token = "exhausted"
  if first <= last then
    token = heads[first]
    heads[first] = nil
    first = first + 1
  end
  return post(PREFIX .. json_string(token) .. "}}")
end

function response(status, headers, body)
  if check(status, body, '"__typename":"AuthPayload"') then
    local successor = body:match('"refreshToken":"([^"]+)"')
    if successor then
      last = last + 1
      heads[last] = successor
    end
  end
end
