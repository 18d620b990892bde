-- login with the right password, spread over the seeded users.
-- args: emails file (one a line), password
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "common.lua")

local QUERY = "mutation($i: LoginInput!) { login(input: $i) { __typename "
  .. "... on AuthPayload { accessToken refreshToken expiresIn user { id email } } } }"
local emails, password, i

function init(args)
  emails = read_lines(args[1])
  password = args[2]
  i = math.floor(#emails * id / 7) -- threads start far apart
end

function request()
  i = i % #emails + 1
  local variables = '{"i":{"email":' .. json_string(emails[i]) .. ',"password":'
    .. json_string(password) .. "}}"
  return post('{"query":' .. json_string(QUERY) .. ',"variables":' .. variables .. "}")
end

function response(status, headers, body)
  check(status, body, '"__typename":"AuthPayload"')
end
