// k6 script: the gateway's forward-auth (/api/auth/verify) against its trivial /healthz, with
// the same client, the same virtual users and the same phase length, in alternating rounds: in
// each round /healthz, then a valid key's verification, then a malformed key's, one after the
// other. Drift of the machine (another process waking up, a CPU's clock) then lands on every
// target alike instead of on whichever ran last, and the spread of the per-round ratios says
// how much a figure can be trusted. The ratio of their throughputs is the cost of a
// verification as seen by a reverse proxy. The malformed key, which the service rejects without
// touching the database, separates the cost of the HTTP → gRPC hop from the cost of the store.
//
//   KEYRACK_URL=http://127.0.0.1:8080 KEYRACK_KEY=sk_live_… k6 run bench/gateway.js
//
// Optional: VUS (default 8), SECONDS (per phase, default 4), ROUNDS (default 3), GAP (seconds
// between phases, default 1). Each phase's start offset is written to the summary's JSON, so
// bench/gateway.sh can match the server's CPU samples to phases.
import http from 'k6/http';
import { check } from 'k6';
import { alternatingPhases, scenariosOf, measure } from './k6-phases.js';

const BASE = __ENV.KEYRACK_URL || 'http://127.0.0.1:8080';
const KEY = __ENV.KEYRACK_KEY;
const VUS = Number(__ENV.VUS || 8);
const SECONDS = Number(__ENV.SECONDS || 4);
const ROUNDS = Number(__ENV.ROUNDS || 3);
const GAP = Number(__ENV.GAP || 1);
const TARGETS = ['healthz', 'verify', 'malformed'];

if (!KEY) {
  throw new Error('set KEYRACK_KEY to a key holding the chat scope');
}

const phases = alternatingPhases(TARGETS, ROUNDS, SECONDS, GAP);
const METRICS = { count: 'http_reqs', duration: 'http_req_duration' };
const { scenarios, thresholds } = scenariosOf(phases, {
  vus: VUS,
  seconds: SECONDS,
  gracefulStop: '0s',
  ...METRICS,
});

export const options = {
  discardResponseBodies: true,
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// The wall-clock instant the phases' start offsets count from (just before the first begins).
export function setup() {
  return { t0: Date.now() };
}

export function healthz() {
  const response = http.get(`${BASE}/healthz`);
  check(response, { 'healthz 200': (r) => r.status === 200 });
}

export function verify() {
  const response = http.get(`${BASE}/api/auth/verify?scope=chat`, {
    headers: { Authorization: `Bearer ${KEY}` },
  });
  check(response, { 'verify 200': (r) => r.status === 200 });
}

// Each malformed request claims its own client address (198.18.0.0/15, the benchmarking range):
// from one address, the brute-force guard would answer 429 after 100 failures and this row would
// measure the guard instead of the rejection. The gateway believes the header only from a
// trusted proxy: bench/gateway.sh starts it with `KEYRACK_TRUSTED_PROXIES=127.0.0.1`.
function benchmarkAddress() {
  const n = Math.floor(Math.random() * 131072);
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

export function malformed() {
  const response = http.get(`${BASE}/api/auth/verify?scope=chat`, {
    headers: { Authorization: 'Bearer sk_live_abc123...', 'X-Forwarded-For': benchmarkAddress() },
  });
  check(response, { 'malformed 401': (r) => r.status === 401 });
}

export function handleSummary(data) {
  const { measured, overall, ratios, spread } = measure(data, phases, {
    seconds: SECONDS,
    rounds: ROUNDS,
    ...METRICS,
  });
  const healthz = overall('healthz');
  const verify = overall('verify');
  const rejected = overall('malformed');
  const row = (name, f) =>
    `${name.padEnd(18)} ${f.rps.toFixed(0).padStart(8)} req/s   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms`;
  const text = [
    `gateway benchmark: ${VUS} VUs, ${ROUNDS} rounds of ${SECONDS}s per endpoint, ${BASE}`,
    row('/healthz', healthz),
    row('/api/auth/verify', verify),
    row('  malformed key', rejected),
    `ratio verify/healthz throughput: ${spread(ratios('verify', 'healthz'))}`,
    `ratio malformed-key verify/healthz throughput: ${spread(ratios('malformed', 'healthz'))}`,
    `checks passed: ${(data.metrics.checks.values.rate * 100).toFixed(2)}%`,
    '',
  ].join('\n');
  const json = {
    healthz,
    verify,
    malformed: rejected,
    phases: measured,
    labels: { healthz: '/healthz', verify: '/api/auth/verify', malformed: '  malformed key' },
    baseline: 'healthz',
    vus: VUS,
    seconds: SECONDS,
    rounds: ROUNDS,
    t0_ms: data.setup_data.t0,
  };
  return { stdout: text, 'bench/results/gateway-latest.json': JSON.stringify(json, null, 2) };
}
