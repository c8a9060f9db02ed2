// Capacity: an open model, visits arriving at a rate raised in steps until p99 exceeds its limit or
// iterations are dropped; the report names the highest step held (scenarios.json).
//   BASE_URL=http://host:8080 TOKENS=viewer:…,analyst:… k6 run loadtest/capacity.js
import { scenario } from './lib/scenario.js';

export const { options, setup, session, visit, handleSummary } = scenario('capacity');
