-- POST /v1/search with one digest per request, cycling through queries.txt.
-- QUERIES=path (default queries.txt), K=10, CUTOFF=N (only matches with distance < N;
-- unset or "none": the k nearest at any distance).
package.path = package.path .. ";" .. (os.getenv("BENCH_DIR") or ".") .. "/?.lua"
local c = require("common")
local queries = c.lines(os.getenv("QUERIES") or "queries.txt")
local k = tonumber(os.getenv("K") or "10")
local cutoff = tonumber(os.getenv("CUTOFF") or "")
local extra = cutoff and (', "cutoff": ' .. cutoff) or ""
local i = 0

function setup(thread)
  thread:set("offset", math.random(#queries))
end

function init(args)
  i = offset or 0
end

request = function()
  i = i + 1
  local q = queries[(i % #queries) + 1]
  return wrk.format("POST", "/v1/search", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. c.key(),
  }, '{"digests": ["' .. q .. '"], "k": ' .. k .. extra .. '}')
end

done = c.done
