-- wrk script for the intake benchmark: every request is a distinct, correctly signed
-- pull_request delivery (new X-GitHub-Delivery, new PR number and head SHA, so each one stores a
-- delivery row and a pr_check job). Signatures come from payload.py (same template).
-- Env: BENCH_SIGS (signature file), BENCH_START (first body index), BENCH_DELAY_MS (pause per connection between requests, to
-- approximate a fixed rate; 0 = as fast as possible).

local TEMPLATE = '{"action":"synchronize","number":%d,"before":"0000000000000000000000000000000000000000",'
  .. '"after":"%s","pull_request":{"url":"https://api.github.com/repos/acme/gitops/pulls/%d",'
  .. '"id":%d,"number":%d,"state":"open","locked":false,"title":"Bump web image in staging",'
  .. '"user":{"login":"alice","id":1001,"type":"User"},"body":"Rolls the new web image to '
  .. 'staging. Capstan benchmark payload; the fields mirror a real synchronize delivery.",'
  .. '"created_at":"2026-11-20T09:12:00Z","updated_at":"2026-11-20T10:40:11Z","draft":false,'
  .. '"head":{"label":"acme:bench","ref":"bench-%d","sha":"%s","user":{"login":"acme","id":2002,'
  .. '"type":"Organization"},"repo":{"id":3003,"name":"gitops","full_name":"acme/gitops"}},'
  .. '"base":{"label":"acme:main","ref":"main","sha":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",'
  .. '"user":{"login":"acme","id":2002,"type":"Organization"},"repo":{"id":3003,"name":"gitops",'
  .. '"full_name":"acme/gitops"}},"merged":false,"mergeable":null,"comments":0,"commits":1,'
  .. '"additions":1,"deletions":1,"changed_files":1},"repository":{"id":3003,"name":"gitops",'
  .. '"full_name":"acme/gitops","private":true,"owner":{"login":"acme","id":2002,'
  .. '"type":"Organization"},"default_branch":"main"},"organization":{"login":"acme","id":2002},'
  .. '"sender":{"login":"alice","id":1001,"type":"User"},"installation":{"id":55501}}'

local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

-- Each thread runs in its own Lua state: the thread count comes in as `wrk … -- THREADS`.
function init(args)
  nthreads = tonumber(args[1]) or 1
  sigs = {}
  for line in io.lines(os.getenv("BENCH_SIGS")) do
    sigs[#sigs + 1] = line
  end
  delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
  run = os.getenv("BENCH_RUN") or tostring(os.time())
  -- Thread t uses body indices start+t, start+t+T, … so threads (and runs given different
  -- BENCH_START values) never share a body, and every delivery stores a new job.
  start = tonumber(os.getenv("BENCH_START") or "1")
  n = start + tid
  non2xx = 0
end

function request()
  if n > #sigs then
    n = 1 + tid -- wrapped: bodies repeat (their jobs then deduplicate); raise BENCH_COUNT
  end
  local sha = string.format("%040d", n)
  local body = string.format(TEMPLATE, n, sha, n, n, n, n, sha)
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "pull_request",
    ["X-GitHub-Delivery"] = string.format("bench-%s-%d-%d", run, tid, n),
    ["X-Hub-Signature-256"] = sigs[n],
  }
  n = n + nthreads
  return wrk.format("POST", "/webhooks/github", headers, body)
end

function delay()
  return delay_ms
end

function response(status, headers, body)
  if status ~= 202 then
    non2xx = non2xx + 1
    if non2xx <= 3 then
      io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local lat = function(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    "RESULT requests=%d seconds=%.1f rate=%.0f/s p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    lat(50), lat(90), lat(99), latency.max / 1000.0,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout))
end
