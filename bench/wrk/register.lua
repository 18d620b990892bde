-- register, a new address every request.
-- args: tag unique to this run, password
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local QUERY = "mutation($i: RegisterInput!) { register(input: $i) { __typename "
  .. "... on RegisterSuccess { user { id email } } } }"
local tag, password, n = nil, nil, 0

function init(args)
  tag = args[1]
  password = args[2]
end

function request()
  n = n + 1
  local email = string.format("new-%s-%d-%d@example.com", tag, id, n)
  local variables = '{"i":{"email":"' .. email .. '","password":' .. json_string(password)
    .. ',"firstName":"New","lastName":"User"}}'
  return post('{"query":' .. json_string(QUERY) .. ',"variables":' .. variables .. "}")
end

function response(status, headers, body)
  check(status, body, '"__typename":"RegisterSuccess"')
end
