-- For the wrk runs whose figures a script reads (wrk -s bench/wrk-summary.lua): after wrk's own
-- report, one line of JSON with the throughput, the latency percentiles in ms and the error counts.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format('{"requests": %d, "requests_per_second": %.2f, "p50_ms": %.3f, "p95_ms": %.3f, '
    .. '"p99_ms": %.3f, "status_errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
