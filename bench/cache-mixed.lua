-- Realistic mixed traffic for the cache benchmark (wrk): 95 % reads spread over every cached
-- namespace, 5 % writes (risk updates and creations), across several organizations.
-- BENCH_TOKENS: comma-separated "token:risk_id" pairs, one per organization.
local orgs = {}
for pair in string.gmatch(os.getenv("BENCH_TOKENS") or "", "[^,]+") do
  local token, risk = string.match(pair, "([^:]+):(.+)")
  orgs[#orgs + 1] = { headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, risk = risk }
end
local lists = { "/api/v1/risks", "/api/v1/risks?status=open", "/api/v1/risks?severity=critical&sort=-created_at",
  "/api/v1/risks?category=security", "/api/v1/risks?status=in_progress&sort=title" }
local searches = { "vendor", "billing", "phishing", "outage", "backup", "ctl-00", "payroll", "access" }
local dashboard = { "/api/v1/dashboard/stats", "/api/v1/dashboard/matrix", "/api/v1/dashboard/timeline",
  "/api/v1/dashboard/top-risks" }
local counter = 0

-- Each thread draws its own random sequence.
dofile("bench/wrk-threads.lua")

request = function()
  counter = counter + 1
  local org = orgs[math.random(#orgs)]
  local roll = math.random(100)
  if roll <= 5 then
    if roll <= 3 then
      return wrk.format("PATCH", "/api/v1/risks/" .. org.risk, org.headers,
        string.format('{"likelihood":%d}', math.random(5)))
    end
    return wrk.format("POST", "/api/v1/risks", org.headers,
      string.format('{"title":"Load %d","likelihood":3,"impact":3}', counter))
  elseif roll <= 40 then
    return wrk.format("GET", lists[math.random(#lists)], org.headers)
  elseif roll <= 55 then
    return wrk.format("GET", "/api/v1/risks?q=" .. searches[math.random(#searches)], org.headers)
  elseif roll <= 80 then
    return wrk.format("GET", dashboard[math.random(#dashboard)], org.headers)
  elseif roll <= 92 then
    return wrk.format("GET", "/api/v1/marketplace/connectors", org.headers)
  else
    return wrk.format("GET", "/api/v1/reports/summary", org.headers)
  end
end
