// The end-of-run summary: k6's data as JSON for the report (SUMMARY_JSON), and a short text on stdout.
import { ROUTES, THINK_TIME, WRITE_SHARE } from './journeys.js';
import { stepLength } from './steps.js';

const ms = (value) => (value === undefined ? '-' : value.toFixed(1).padStart(8));

function thresholdLines(data) {
  const lines = [];
  for (const [metric, values] of Object.entries(data.metrics)) {
    for (const [rule, { ok }] of Object.entries(values.thresholds || {})) {
      lines.push(`  ${ok ? 'pass' : 'FAIL'}  ${metric} ${rule}`);
    }
  }
  return lines;
}

function routeLines(data) {
  const lines = ['  route                        count   p50 ms   p95 ms   p99 ms   max ms  errors  hit ratio'];
  for (const route of ROUTES) {
    const duration = data.metrics[`http_req_duration{route:${route}}`];
    if (!duration || !duration.values.count) continue;
    const v = duration.values;
    const errors = data.metrics[`errors{route:${route}}`];
    const hits = data.metrics[`cache_hits{route:${route}}`];
    const errorCount = errors ? errors.values.passes : 0;
    const hitRatio = hits && hits.values.passes + hits.values.fails ? `${(100 * hits.values.rate).toFixed(1)} %` : '-';
    lines.push(
      `  ${route.padEnd(26)}${String(v.count).padStart(8)} ${ms(v['p(50)'])} ${ms(v['p(95)'])} ${ms(v['p(99)'])} ${ms(v.max)} ${String(errorCount).padStart(7)}  ${hitRatio}`,
    );
  }
  return lines;
}

export function summaryOutputs(data) {
  const all = data.metrics.http_req_duration ? data.metrics.http_req_duration.values : {};
  const reqs = data.metrics.http_reqs ? data.metrics.http_reqs.values : { count: 0, rate: 0 };
  const text = [
    '',
    `requests: ${reqs.count} (${reqs.rate.toFixed(1)}/s)  p50 ${ms(all['p(50)'])} ms  p95 ${ms(all['p(95)'])} ms  p99 ${ms(all['p(99)'])} ms`,
    ...routeLines(data),
    'thresholds:',
    ...thresholdLines(data),
    '',
  ].join('\n');
  const outputs = { stdout: text };
  if (__ENV.SUMMARY_JSON) {
    const settings = { step_seconds: stepLength(), write_share: WRITE_SHARE, think_time: THINK_TIME };
    outputs[__ENV.SUMMARY_JSON] = JSON.stringify(Object.assign({ openrisk: settings }, data), null, 1);
  }
  return outputs;
}
