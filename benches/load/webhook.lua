-- wrk script: posts GitLab issue events, each a new delivery (its own
-- X-Gitlab-Event-UUID) about its own issue, so every request is a durable
-- insert and not a deduplicated repeat.
--
-- Arguments (after `--`): the payload template (a GitLab issue event with
-- the issue number replaced by __IID__), the webhook secret, the pause
-- in milliseconds each connection takes between requests (0: as fast as
-- possible), and optionally a number that keeps this wrk's issues apart
-- from another's running at the same time.

local threads = {}
local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "r"))
  template = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Gitlab-Event"] = "Issue Hook"
  wrk.headers["X-Gitlab-Token"] = args[2]
  pause = tonumber(args[3]) or 0
  base = tonumber(args[4]) or 0
  sent = 0
end

function delay()
  return pause
end

function request()
  sent = sent + 1
  local iid = (base + thread_id) * 10000000 + sent
  wrk.headers["X-Gitlab-Event-UUID"] = "load-" .. iid
  local body = template:gsub("__IID__", tostring(iid))
  return wrk.format(nil, "/webhooks/gitlab", nil, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and not warned then
    warned = true
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("requests %d in %.1fs = %.0f req/s, errors %d (status %d, timeout %d)\n",
    summary.requests, seconds, summary.requests / seconds,
    summary.errors.status + summary.errors.timeout + summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
