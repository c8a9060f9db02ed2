// Spike: 10 users, a jump to 250 within seconds, a hold, and the recovery (scenarios.json).
//   BASE_URL=http://host:8080 TOKENS=viewer:…,analyst:… k6 run loadtest/spike.js
import { scenario } from './lib/scenario.js';

export const { options, setup, session, visit, handleSummary } = scenario('spike');
