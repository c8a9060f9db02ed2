// What the users of an OpenRisk deployment do, shared by every scenario.
//
// Environment: BASE_URL (default http://127.0.0.1:8080); TOKENS, a comma-separated list of
// `role:token` (roles viewer, analyst, admin; any number of organizations); WRITE_SHARE, the share
// of sessions that write (default 0.05); THINK_TIME, the mean pause between two pages in seconds
// (default 1.5).
//
// Every request is tagged with its route. `errors` counts unexpected statuses and stale reads: after
// each write, the next read of that risk must show it (read-your-writes, on any replica).
import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import { tagStep } from './steps.js';

export const ROUTES = [
  'me',
  'risks.list',
  'risks.search',
  'risks.get',
  'risks.history',
  'risks.mitigations',
  'dashboard.stats',
  'dashboard.matrix',
  'dashboard.timeline',
  'dashboard.top_risks',
  'marketplace.connectors',
  'marketplace.connector',
  'marketplace.installations',
  'reports.summary',
  'reports.export',
  'risks.create',
  'risks.update',
  'mitigations.create',
];

const errors = new Rate('errors');
const cacheHits = new Rate('cache_hits');
const staleReads = new Counter('stale_reads');
const readBacks = new Counter('read_backs');

const API = `${(__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '')}/api/v1`;
export const WRITE_SHARE = Number(__ENV.WRITE_SHARE || 0.05);
export const THINK_TIME = Number(__ENV.THINK_TIME || 1.5);
// What every request accepts, as a browser's `gzip, deflate, br, zstd` (k6 decodes it), or
// `identity`; unset, k6's own default.
const ACCEPT_ENCODING = __ENV.ACCEPT_ENCODING ? { 'Accept-Encoding': __ENV.ACCEPT_ENCODING } : {};
const USERS = (__ENV.TOKENS || '')
  .split(',')
  .filter(Boolean)
  .map((entry) => {
    const [role, token] = entry.trim().split(':');
    return { role, token };
  });
const WRITERS = USERS.filter((u) => u.role === 'analyst' || u.role === 'admin');

const STATUSES = ['draft', 'open', 'in_progress', 'mitigated', 'accepted', 'closed'];
const SEVERITIES = ['low', 'medium', 'high', 'critical'];
const SORTS = ['-score', 'score', '-created_at', '-updated_at', 'title'];
const CATEGORIES = ['Operational', 'Financial', 'Compliance', 'Security', 'Technology', 'Privacy'];
const TAGS = ['gdpr', 'cloud', 'vendor', 'ransomware', 'pci', 'availability', 'third-party', 'backup'];
const SEARCHES = ['ransomware', 'payment', 'vendor', 'billing', 'breach', 'outage', 'phishing', 'erp', 'hr systems', 'data warehouse'];
const CONNECTOR_CATEGORIES = ['ticketing', 'chat', 'siem', 'cloud', 'vulnerability', 'identity'];
const CONNECTORS = ['jira', 'slack', 'splunk', 'okta', 'github', 'servicenow', 'pagerduty', 'teams', 'qualys', 'aws-security-hub'];

const pick = (items) => items[Math.floor(Math.random() * items.length)];
const between = (low, high) => low + Math.floor(Math.random() * (high - low + 1));
const think = () => sleep(THINK_TIME * (0.33 + Math.random() * 1.34));
const noPause = () => {};
const query = (params) =>
  params
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join('&');

function headers(user, extra) {
  return Object.assign(
    { Authorization: `Bearer ${user.token}`, 'Content-Type': 'application/json' },
    ACCEPT_ENCODING,
    extra,
  );
}

// One request; records errors and, on cacheable answers, hits. Returns the response when its status
// is the expected one, else null.
function call(user, method, route, path, { body = null, expect = 200, extraHeaders = {} } = {}) {
  tagStep();
  const res = http.request(method, API + path, body === null ? null : JSON.stringify(body), {
    headers: headers(user, extraHeaders),
    tags: { route },
    responseType: route === 'reports.export' ? 'none' : 'text',
  });
  const ok = res.status === expect;
  errors.add(!ok, { route });
  const cache = res.headers['X-Cache'];
  if (cache === 'HIT' || cache === 'MISS') cacheHits.add(cache === 'HIT', { route });
  if (!ok) console.warn(`${method} ${path}: ${res.status} (expected ${expect}) ${String(res.body).slice(0, 200)}`);
  return ok ? res : null;
}

// Reads a risk (and optionally a list) after a write and counts a stale read when the write is missing.
function expectFresh(route, description, fresh) {
  readBacks.add(1, { route });
  errors.add(!fresh, { route });
  if (!fresh) {
    staleReads.add(1, { route });
    console.error(`stale read after ${description}`);
  }
}

function ids(res) {
  return res ? res.json('items.#.id') || [] : [];
}

// ---------------------------------------------------------------- page views of a signed-in user
// Each takes the user, the risks found on earlier pages and the pause between two requests that are
// two pages (think time in sessions, none in visits); each returns the risks found so far.

function dashboard(user, found) {
  call(user, 'GET', 'dashboard.stats', '/dashboard/stats');
  call(user, 'GET', 'dashboard.matrix', '/dashboard/matrix');
  call(user, 'GET', 'dashboard.top_risks', '/dashboard/top-risks?limit=10');
  if (Math.random() < 0.3) call(user, 'GET', 'dashboard.timeline', `/dashboard/timeline?days=${pick([30, 90, 365])}`);
  return found;
}

// The register as people open it: the default view most often, else a filter or two and a sort.
function registerFilters() {
  if (Math.random() < 0.4) return [];
  return [
    ['status', Math.random() < 0.5 ? pick(STATUSES) : undefined],
    ['severity', Math.random() < 0.4 ? pick(SEVERITIES) : undefined],
    ['category', Math.random() < 0.2 ? pick(CATEGORIES) : undefined],
    ['tag', Math.random() < 0.2 ? pick(TAGS) : undefined],
    ['sort', Math.random() < 0.6 ? pick(SORTS) : undefined],
  ];
}

function register(user, found, pause) {
  const filters = registerFilters();
  const first = call(user, 'GET', 'risks.list', `/risks?${query(filters)}`);
  const listed = ids(first);
  const cursor = first && first.json('next_cursor');
  if (cursor && Math.random() < 0.3) {
    pause();
    listed.push(...ids(call(user, 'GET', 'risks.list', `/risks?${query([...filters, ['cursor', cursor]])}`)));
  }
  return listed.concat(found).slice(0, 100);
}

function search(user, found) {
  return ids(call(user, 'GET', 'risks.search', `/risks?${query([['q', pick(SEARCHES)]])}`)).concat(found).slice(0, 100);
}

function riskDetail(user, found, pause) {
  const id = pick(found.length ? found : register(user, found, pause));
  if (!id) return found;
  call(user, 'GET', 'risks.get', `/risks/${id}`);
  call(user, 'GET', 'risks.mitigations', `/risks/${id}/mitigations`);
  if (Math.random() < 0.5) call(user, 'GET', 'risks.history', `/risks/${id}/history`);
  return found;
}

function marketplace(user, found) {
  call(user, 'GET', 'marketplace.connectors', '/marketplace/connectors');
  call(user, 'GET', 'marketplace.connectors', `/marketplace/connectors?category=${pick(CONNECTOR_CATEGORIES)}`);
  call(user, 'GET', 'marketplace.connector', `/marketplace/connectors/${pick(CONNECTORS)}`);
  call(user, 'GET', 'marketplace.installations', '/marketplace/installations');
  return found;
}

function summary(user, found) {
  call(user, 'GET', 'reports.summary', `/reports/summary?format=${Math.random() < 0.8 ? 'json' : 'html'}`);
  return found;
}

function exportRegister(user, found) {
  const filters = [['format', 'csv'], ['status', pick(['open', 'in_progress'])], ['severity', pick(['high', 'critical'])]];
  call(user, 'GET', 'reports.export', `/reports/risk-register?${query(filters)}`);
  return found;
}

const ACTIVITIES = [
  [dashboard, 25],
  [register, 25],
  [riskDetail, 20],
  [search, 12],
  [marketplace, 8],
  [summary, 8],
  [exportRegister, 2],
];
const TOTAL_WEIGHT = ACTIVITIES.reduce((sum, [, weight]) => sum + weight, 0);

function activity() {
  let draw = Math.random() * TOTAL_WEIGHT;
  for (const [run, weight] of ACTIVITIES) {
    draw -= weight;
    if (draw < 0) return run;
  }
  return ACTIVITIES[0][0];
}

// ---------------------------------------------------------------- writes, each read back

function readRisk(user, id, description, fresh) {
  const res = call(user, 'GET', 'risks.get', `/risks/${id}`);
  if (res) expectFresh('risks.get', description, fresh(res.json()));
  return res;
}

// The newest load-test risks of the organization: a query every writer of the organization shares,
// so its cached answer must be invalidated by each of their writes.
function readRecent(user, id, description, version) {
  const res = call(user, 'GET', 'risks.list', '/risks?tag=loadtest&sort=-updated_at&limit=50');
  if (res) {
    const listed = (res.json('items') || []).find((risk) => risk.id === id);
    expectFresh('risks.list', description, listed !== undefined && listed.version >= version);
  }
}

// Creates a risk tagged `loadtest` and reads it back; returns the creation's response.
function createRisk(user) {
  const title = `Load test risk lt-${exec.vu.idInTest}-${exec.vu.iterationInInstance}-${Date.now()}`;
  const created = call(user, 'POST', 'risks.create', '/risks', {
    expect: 201,
    body: { title, likelihood: between(1, 5), impact: between(1, 5), category: 'Operational', tags: ['loadtest'] },
  });
  if (created) readRisk(user, created.json('id'), 'create', (r) => r.title === title);
  return created;
}

function writeSession(user) {
  const created = createRisk(user);
  if (!created) return;
  const risk = created.json();
  const marker = risk.ref;
  let etag = created.headers.Etag;
  readRecent(user, risk.id, 'create (list)', 1);
  think();

  const likelihood = (risk.likelihood % 5) + 1;
  const updated = call(user, 'PATCH', 'risks.update', `/risks/${risk.id}`, {
    body: { likelihood, description: `Reviewed ${marker}` },
    extraHeaders: { 'If-Match': etag },
  });
  if (!updated) return;
  etag = updated.headers.Etag;
  readRisk(user, risk.id, 'update', (r) => r.likelihood === likelihood && r.version === 2);
  readRecent(user, risk.id, 'update (list)', 2);
  think();

  const mitigation = call(user, 'POST', 'mitigations.create', `/risks/${risk.id}/mitigations`, {
    expect: 201,
    body: { title: `Mitigation ${marker}` },
  });
  if (!mitigation) return;
  const mitigationId = mitigation.json('id');
  const listed = call(user, 'GET', 'risks.mitigations', `/risks/${risk.id}/mitigations`);
  if (listed) expectFresh('risks.mitigations', 'mitigation create', ids(listed).includes(mitigationId));
  const afterMitigation = readRisk(user, risk.id, 'mitigation create (count)', (r) => r.mitigation_count === 1);
  if (!afterMitigation) return;
  etag = afterMitigation.headers.Etag;
  think();

  const status = pick(['in_progress', 'mitigated', 'accepted']);
  if (call(user, 'PATCH', 'risks.update', `/risks/${risk.id}`, { body: { status }, extraHeaders: { 'If-Match': etag } })) {
    readRisk(user, risk.id, 'status change', (r) => r.status === status);
  }
}

// ---------------------------------------------------------------- entry points

// A closed-model session: sign in, then a few pages with think time; WRITE_SHARE of sessions write.
export function session() {
  if (Math.random() < WRITE_SHARE && WRITERS.length) {
    writeSession(pick(WRITERS));
    return;
  }
  const user = pick(USERS);
  call(user, 'GET', 'me', '/me');
  let found = [];
  for (let page = between(3, 6); page > 0; page--) {
    think();
    found = activity()(user, found, think);
  }
}

// An open-model visit: one page, no think time. Writes keep their share, as a creation read back.
export function visit() {
  if (Math.random() < WRITE_SHARE && WRITERS.length) {
    createRisk(pick(WRITERS));
    return;
  }
  activity()(pick(USERS), [], noPause);
}

// Refuses to start without tokens, and checks that each of them signs in.
export function checkUsers() {
  if (!USERS.length) exec.test.abort('TOKENS is empty: set it to a comma-separated list of role:token');
  for (const user of USERS) {
    const res = http.get(`${API}/me`, { headers: headers(user), tags: { route: 'setup' } });
    if (res.status !== 200) exec.test.abort(`a ${user.role} token does not sign in at ${API}/me: ${res.status}`);
  }
}
