-- An authenticated GraphQL query, the same document each time, round-robin over access tokens.
-- args: query file, tokens file (one access token a line), text every good answer contains
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local requests, i, expect

function init(args)
  local body = '{"query":' .. json_string(read_all(args[1])) .. "}"
  expect = args[3]
  requests = {}
  for _, token in ipairs(read_lines(args[2])) do
    table.insert(requests, post(body, token))
  end
  i = id -- threads start at different tokens
end

function request()
  i = i % #requests + 1
  return requests[i]
end

function response(status, headers, body)
  check(status, body, expect)
end
