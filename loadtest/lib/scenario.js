// Builds k6 options from scenarios.json: the shape (full, or `quick` with QUICK=1), the plan's and
// our thresholds, and the sub-metrics the report breaks down per route and per step.
import { checkUsers, ROUTES, session, visit } from './journeys.js';
import { useSteps } from './steps.js';
import { summaryOutputs } from './summary.js';

const SPEC = JSON.parse(open('../scenarios.json'));
const TREND_STATS = ['avg', 'min', 'med', 'p(50)', 'p(95)', 'p(99)', 'max', 'count'];

// Each step of a stepped shape is its ramp plus its hold; requests carry the step's number as tag.
function steppedStages(shape) {
  const stages = [];
  for (const target of shape.steps) {
    stages.push({ duration: shape.ramp, target }, { duration: shape.hold, target });
  }
  if (shape.down) stages.push({ duration: shape.down, target: 0 });
  return stages;
}

function seconds(duration) {
  let total = 0;
  for (const [, n, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit];
  }
  return total;
}

function build(name) {
  const spec = SPEC[name];
  const shape = spec[__ENV.QUICK ? 'quick' : 'full'];
  const stages = shape.steps
    ? steppedStages(shape)
    : shape.stages.map(([duration, target]) => ({ duration, target }));
  const scenario =
    spec.executor === 'ramping-arrival-rate'
      ? {
          executor: 'ramping-arrival-rate',
          exec: 'visit',
          startRate: shape.steps[0],
          timeUnit: '1s',
          preAllocatedVUs: shape.preAllocatedVUs,
          maxVUs: shape.maxVUs,
          stages,
        }
      : { executor: 'ramping-vus', exec: 'session', startVUs: shape.startVUs, stages, gracefulRampDown: '30s' };

  const thresholds = {};
  for (const source of ['plan', 'ours']) {
    for (const [metric, rules] of Object.entries(spec.thresholds[source])) {
      thresholds[metric] = (thresholds[metric] || []).concat(rules);
    }
  }
  // Empty thresholds make k6 keep these sub-metrics in its summary.
  for (const route of ROUTES) {
    for (const metric of ['http_req_duration', 'http_reqs', 'errors', 'cache_hits']) {
      thresholds[`${metric}{route:${route}}`] = [];
    }
  }
  if (shape.steps) {
    shape.steps.forEach((_, index) => {
      thresholds[`http_req_duration{step:${index + 1}}`] = [];
    });
    // The open model stops at its first dropped iteration: the server no longer keeps up, and the
    // later steps could only be worse. (Latency is judged per step by the report: a p99 threshold
    // here would be evaluated on the first few samples of a step.)
    if (spec.executor === 'ramping-arrival-rate') {
      thresholds.dropped_iterations = [{ threshold: 'count==0', abortOnFail: true }];
    }
  }
  return {
    options: { scenarios: { [name]: scenario }, thresholds, summaryTrendStats: TREND_STATS, setupTimeout: '120s' },
    stepSeconds: shape.steps ? seconds(shape.ramp) + seconds(shape.hold) : null,
  };
}

// Everything a scenario script exports: `export const { options, … } = scenario('baseline')`.
export function scenario(name) {
  const { options, stepSeconds } = build(name);
  useSteps(stepSeconds);
  return { options, setup: checkUsers, session, visit, handleSummary: summaryOutputs };
}
