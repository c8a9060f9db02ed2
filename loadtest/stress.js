// Stress: 50 → 500 users in steps; the report names the step where p95 first exceeds its limit.
//   BASE_URL=http://host:8080 TOKENS=viewer:…,analyst:… k6 run loadtest/stress.js
import { scenario } from './lib/scenario.js';

export const { options, setup, session, visit, handleSummary } = scenario('stress');
