-- One organization flooding the cache with distinct large answers (wrk): register pages of every
-- size, sort and status, most of them asked for once. BENCH_FLOOD_TOKEN: its token.
local headers = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_FLOOD_TOKEN") or "") }
local sorts = { "score", "-score", "title", "-title", "created_at", "-created_at", "updated_at", "-updated_at" }
local statuses = { "open", "in_progress", "mitigated", "accepted", "closed" }

dofile("bench/wrk-threads.lua")

request = function()
  local path = string.format("/api/v1/risks?limit=%d&sort=%s&status=%s", math.random(50, 200),
    sorts[math.random(#sorts)], statuses[math.random(#statuses)])
  return wrk.format("GET", path, headers)
end
