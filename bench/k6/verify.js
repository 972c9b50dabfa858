// k6 script: load-test your own Keyrack deployment's VerifyKey over gRPC, next to the same
// server's grpc.health.v1.Health/Check (no work: the cost of the network, TLS and the gRPC
// stack alone), at a constant arrival rate (an open loop: requests are sent on schedule whether
// or not earlier ones have been answered, so a slow server shows up as latency and as dropped
// iterations, not as a politely slower client). Health/Check runs first, then VerifyKey, with the
// same rate and duration, in one run. The methods are found through server reflection, which
// every Keyrack server offers; no proto file is needed.
//
//   KEYRACK_ADDR=keyrack.internal:50051 KEYRACK_KEY=sk_live_… KEYRACK_SCOPE=chat \
//     RATE=1000 DURATION=30s k6 run bench/k6/verify.js
//
// Environment:
//   KEYRACK_ADDR      host:port of the gRPC API (default 127.0.0.1:50051)
//   KEYRACK_KEY       a key to verify (required); use a key made for the test, e.g. with a
//                     rate limit above RATE, since every request counts as its use
//   KEYRACK_SCOPE     scope(s) the requests require, comma-separated (default: none, any valid key)
//   KEYRACK_TLS       1 to connect with TLS (default: plaintext)
//   KEYRACK_CLIENT_IP an end-client address to send along (default: none)
//   RATE              requests per second per scenario (default 200)
//   DURATION          per scenario, e.g. 30s or 2m (default 30s)
//   VUS               virtual users pre-allocated per scenario (default 20; k6 adds up to
//                     4 times as many if the server falls behind)
//   P99_MS            the example threshold on VerifyKey's p99, in ms (default 10)
//   SUMMARY_JSON      also write the figures to this file
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const ADDR = __ENV.KEYRACK_ADDR || '127.0.0.1:50051';
const KEY = __ENV.KEYRACK_KEY;
const SCOPES = (__ENV.KEYRACK_SCOPE || '').split(',').map((s) => s.trim()).filter((s) => s);
const TLS = __ENV.KEYRACK_TLS === '1';
const CLIENT_IP = __ENV.KEYRACK_CLIENT_IP || '';
const RATE = Number(__ENV.RATE || 200);
const DURATION = __ENV.DURATION || '30s';
const VUS = Number(__ENV.VUS || 20);
const P99_MS = Number(__ENV.P99_MS || 10);

if (!KEY) {
  throw new Error('set KEYRACK_KEY to a key of the deployment (with KEYRACK_SCOPE, if any)');
}

// Seconds in a k6 duration such as 45s, 2m or 1h30m: the second scenario starts after the first.
function seconds(duration) {
  const units = { h: 3600, m: 60, s: 1 };
  let total = 0;
  const parts = duration.match(/(\d+(?:\.\d+)?)(h|m|s)/g);
  if (!parts || parts.join('') !== duration) {
    throw new Error(`DURATION must look like 30s, 2m or 1h30m, not ${duration}`);
  }
  for (const part of parts) {
    total += Number(part.slice(0, -1)) * units[part.slice(-1)];
  }
  return total;
}

const SECONDS = seconds(DURATION);
const scenario = (exec, startSeconds) => ({
  executor: 'constant-arrival-rate',
  rate: RATE,
  timeUnit: '1s',
  duration: DURATION,
  preAllocatedVUs: VUS,
  maxVUs: VUS * 4,
  exec,
  startTime: `${startSeconds}s`,
});

export const options = {
  scenarios: {
    health: scenario('health', 0),
    verify: scenario('verify', SECONDS + 2),
  },
  thresholds: {
    // The example target: tighten or relax it to your own service level objective.
    'grpc_req_duration{scenario:verify}': [`p(99)<${P99_MS}`],
    // Per-scenario figures for the summary below (k6 keeps tagged metrics only with a threshold).
    'grpc_req_duration{scenario:health}': ['p(99)>=0'],
    'iterations{scenario:health}': ['count>0'],
    'iterations{scenario:verify}': ['count>0'],
    checks: ['rate==1'],
  },
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// One connection per VU, opened on its first request and kept, as a service's client would.
let client;
function connected() {
  if (!client) {
    client = new grpc.Client();
    client.connect(ADDR, { plaintext: !TLS, reflect: true });
  }
  return client;
}

export function health() {
  const response = connected().invoke('grpc.health.v1.Health/Check', { service: '' });
  check(response, {
    SERVING: (r) => r && r.status === grpc.StatusOK && r.message.status === 'SERVING',
  });
}

export function verify() {
  const response = connected().invoke('keyrack.v1.KeyService/VerifyKey', {
    key: KEY,
    required_scopes: SCOPES,
    client_ip: CLIENT_IP,
  });
  check(response, {
    VALID: (r) => r && r.status === grpc.StatusOK && r.message.valid === true,
  });
}

export function handleSummary(data) {
  const metric = (name) => (data.metrics[name] ? data.metrics[name].values : {});
  const figures = (name) => {
    const duration = metric(`grpc_req_duration{scenario:${name}}`);
    return {
      requests: metric(`iterations{scenario:${name}}`).count || 0,
      p50_ms: duration.med,
      p90_ms: duration['p(90)'],
      p99_ms: duration['p(99)'],
      max_ms: duration.max,
    };
  };
  const rows = { health: figures('health'), verify: figures('verify') };
  const ms = (value) => (value === undefined ? '-' : value.toFixed(3)).padStart(9);
  const row = (name, f) =>
    `${name.padEnd(34)} ${String(f.requests).padStart(8)} ${ms(f.p50_ms)} ${ms(f.p90_ms)} ${ms(f.p99_ms)} ${ms(f.max_ms)}`;
  const dropped = metric('dropped_iterations').count || 0;
  const passed = metric('checks').rate;
  const verdict = data.metrics['grpc_req_duration{scenario:verify}'];
  const met = verdict && verdict.thresholds && Object.values(verdict.thresholds).every((t) => t.ok);
  const text = [
    `Keyrack at ${ADDR}${TLS ? ' (TLS)' : ''}: ${RATE} req/s for ${DURATION} per RPC, open loop`,
    `${''.padEnd(34)} ${'requests'.padStart(8)} ${'p50 ms'.padStart(9)} ${'p90 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'max ms'.padStart(9)}`,
    row('grpc.health.v1.Health/Check', rows.health),
    row('keyrack.v1.KeyService/VerifyKey', rows.verify),
    `VerifyKey p99 minus Health/Check p99: ${(rows.verify.p99_ms - rows.health.p99_ms).toFixed(3)} ms (what verification adds)`,
    `threshold p99 < ${P99_MS} ms: ${met ? 'met' : 'NOT met'}; dropped iterations (rate not sustained): ${dropped}`,
    `checks passed: ${passed === undefined ? '-' : (passed * 100).toFixed(2)}%`,
    '',
  ].join('\n');
  const out = { stdout: text };
  if (__ENV.SUMMARY_JSON) {
    out[__ENV.SUMMARY_JSON] = JSON.stringify({ addr: ADDR, rate: RATE, duration: DURATION, ...rows, dropped }, null, 2);
  }
  return out;
}
