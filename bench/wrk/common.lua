-- Shared by the scenario scripts (loaded with dofile): thread numbering, file reading, JSON
-- strings, counting answers that are not what the scenario expects, and one report line.
--
-- wrk runs setup() and done() in its main Lua state and init/request/response in one state
-- per thread; thread:set/get carry values between them.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

bad = 0 -- per thread: HTTP 200 answers without the expected text (a GraphQL error, say)
first_bad = nil

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(lines, line)
    end
  end
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function read_all(path)
  local file = assert(io.open(path, "r"))
  local text = file:read("*a")
  file:close()
  return text
end

function json_string(text)
  local escaped = text:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

function post(body, token)
  local headers = { ["Content-Type"] = "application/json" }
  if token then
    headers["Authorization"] = "Bearer " .. token
  end
  return wrk.format("POST", nil, headers, body)
end

-- true when the answer is what the scenario expects; counts and keeps one sample otherwise
function check(status, body, expect)
  if status == 200 and body:find(expect, 1, true) then
    return true
  end
  bad = bad + 1
  if first_bad == nil then
    first_bad = status .. " " .. body:sub(1, 300):gsub("%s+", " ")
  end
  return false
end

function done(summary, latency, requests)
  local total_bad, sample = 0, ""
  for _, thread in ipairs(threads) do
    total_bad = total_bad + (thread:get("bad") or 0)
    local s = thread:get("first_bad")
    if s and sample == "" then
      sample = s
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"socket_errors":%d,"timeouts":%d,"http_errors":%d,"bad":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, e.status,
    total_bad))
  if sample ~= "" then
    io.write("BENCH_SAMPLE " .. sample .. "\n")
  end
end
