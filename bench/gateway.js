// k6 script: the gateway's forward-auth (/api/auth/verify) against its trivial /healthz, with
// the same client, the same virtual users and the same duration, one after the other in one run.
// The ratio of their throughputs is the cost of a verification as seen by a reverse proxy.
// A third scenario verifies a malformed key, which the service rejects without touching the
// database: it separates the cost of the HTTP → gRPC hop from the cost of the store.
//
//   KEYRACK_URL=http://127.0.0.1:8080 KEYRACK_KEY=sk_live_… k6 run bench/gateway.js
//
// Optional: VUS (default 8), SECONDS (per scenario, default 10).
import http from 'k6/http';
import { check } from 'k6';

const BASE = __ENV.KEYRACK_URL || 'http://127.0.0.1:8080';
const KEY = __ENV.KEYRACK_KEY;
const VUS = Number(__ENV.VUS || 8);
const SECONDS = Number(__ENV.SECONDS || 10);

if (!KEY) {
  throw new Error('set KEYRACK_KEY to a key holding the chat scope');
}

export const options = {
  discardResponseBodies: true,
  scenarios: {
    healthz: { executor: 'constant-vus', vus: VUS, duration: `${SECONDS}s`, exec: 'healthz' },
    verify: {
      executor: 'constant-vus',
      vus: VUS,
      duration: `${SECONDS}s`,
      exec: 'verify',
      startTime: `${SECONDS + 2}s`,
    },
    malformed: {
      executor: 'constant-vus',
      vus: VUS,
      duration: `${SECONDS}s`,
      exec: 'malformed',
      startTime: `${2 * (SECONDS + 2)}s`,
    },
  },
  // Thresholds on tagged metrics make k6 keep per-scenario figures for the summary below.
  thresholds: {
    'http_reqs{scenario:healthz}': ['count>0'],
    'http_reqs{scenario:verify}': ['count>0'],
    'http_req_duration{scenario:healthz}': ['p(99)>=0'],
    'http_req_duration{scenario:verify}': ['p(99)>=0'],
    'http_reqs{scenario:malformed}': ['count>0'],
    'http_req_duration{scenario:malformed}': ['p(99)>=0'],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

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
  const figures = (scenario) => {
    const count = data.metrics[`http_reqs{scenario:${scenario}}`].values.count;
    const duration = data.metrics[`http_req_duration{scenario:${scenario}}`].values;
    return { rps: count / SECONDS, p50: duration.med, p99: duration['p(99)'] };
  };
  const healthz = figures('healthz');
  const verify = figures('verify');
  const rejected = figures('malformed');
  const row = (name, f) =>
    `${name.padEnd(18)} ${f.rps.toFixed(0).padStart(8)} req/s   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms`;
  const text = [
    `gateway benchmark: ${VUS} VUs, ${SECONDS}s per endpoint, ${BASE}`,
    row('/healthz', healthz),
    row('/api/auth/verify', verify),
    row('  malformed key', rejected),
    `ratio verify/healthz throughput: ${(verify.rps / healthz.rps).toFixed(3)}`,
    `ratio malformed-key verify/healthz throughput: ${(rejected.rps / healthz.rps).toFixed(3)}`,
    `checks passed: ${(data.metrics.checks.values.rate * 100).toFixed(2)}%`,
    '',
  ].join('\n');
  return { stdout: text, 'bench/results/gateway-latest.json': JSON.stringify({ healthz, verify, malformed: rejected, vus: VUS, seconds: SECONDS }, null, 2) };
}
