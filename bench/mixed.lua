-- Mixed read/write traffic for wrk: 80 % reads (an item, the default page, a filtered page,
-- dashboard stats), 20 % writes (create a risk, update one). BENCH_TOKEN authenticates;
-- BENCH_IDS lists risk ids (comma-separated) to read and update.
local token = os.getenv("BENCH_TOKEN")
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do
  ids[#ids + 1] = id
end
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local counter = 0

-- Each thread draws its own random sequence.
dofile("bench/wrk-threads.lua")

local function some_risk()
  return "/api/v1/risks/" .. ids[math.random(#ids)]
end

request = function()
  local roll = math.random(100)
  counter = counter + 1
  if roll <= 30 then
    return wrk.format("GET", some_risk(), headers)
  elseif roll <= 55 then
    return wrk.format("GET", "/api/v1/risks", headers)
  elseif roll <= 70 then
    return wrk.format("GET", "/api/v1/risks?status=open&severity=high&sort=-created_at", headers)
  elseif roll <= 80 then
    return wrk.format("GET", "/api/v1/dashboard/stats", headers)
  elseif roll <= 90 then
    local body = string.format('{"title":"Load %d","likelihood":%d,"impact":%d,"category":"operational"}',
      counter, math.random(5), math.random(5))
    return wrk.format("POST", "/api/v1/risks", headers, body)
  else
    return wrk.format("PATCH", some_risk(), headers, string.format('{"title":"Updated %d"}', counter))
  end
end

done = function(summary, latency, requests)
  local failed = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.2f %.2f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, failed))
end
