// The step a stepped shape is in: each step is its ramp plus its hold, `seconds` long. Every
// request carries its step's number as the tag `step`, so the summary has figures per step.
import exec from 'k6/execution';

let stepSeconds = null;

export function useSteps(seconds) {
  stepSeconds = seconds;
}

export function stepLength() {
  return stepSeconds;
}

// Tags what this VU records next with the current step (stepped shapes only).
export function tagStep() {
  if (!stepSeconds) return;
  const elapsed = (Date.now() - exec.scenario.startTime) / 1000;
  exec.vu.metrics.tags.step = String(Math.floor(elapsed / stepSeconds) + 1);
}
