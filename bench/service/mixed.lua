-- Mixed read/write: WRITE_PCT % of requests upsert a new digest sample
-- (POST /v1/samples), the rest search (POST /v1/search, k=10).
package.path = package.path .. ";" .. (os.getenv("BENCH_DIR") or ".") .. "/?.lua"
local c = require("common")
local queries = c.lines(os.getenv("QUERIES") or "queries.txt")
local write_pct = tonumber(os.getenv("WRITE_PCT") or "10")
local i = 0
local threads = 0
local run_id = tonumber(os.getenv("RUN_ID") or os.time())

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

request = function()
  i = i + 1
  local q = queries[(i % #queries) + 1]
  local hdr = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c.key()}
  if (i % 100) < write_pct then
    local sha = string.format("%08x%08x%048d", tid, i, run_id)
    return wrk.format("POST", "/v1/samples", hdr,
      '{"samples": [{"sha256": "' .. sha .. '", "tlsh": "' .. q .. '", "family": "bench", "threat": "low", "source": "wrk"}]}')
  end
  return wrk.format("POST", "/v1/search", hdr, '{"digests": ["' .. q .. '"], "k": 10}')
end

done = c.done
