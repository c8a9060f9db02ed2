// Baseline: a gradual ramp of signed-in users, 10 → 50 → 100, then down (scenarios.json).
//   BASE_URL=http://host:8080 TOKENS=viewer:…,analyst:… k6 run loadtest/baseline.js
import { scenario } from './lib/scenario.js';

export const { options, setup, session, visit, handleSummary } = scenario('baseline');
