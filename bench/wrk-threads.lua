-- Shared by the wrk scripts: every thread seeds its own random generator, so that the threads
-- do not send the same sequence of requests.
setup = function(thread)
  thread:set("seed", math.random(1, 1000000))
end

init = function()
  math.randomseed(seed)
end
