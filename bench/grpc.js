// k6 script: gRPC VerifyKey against the same server's grpc.health.v1.Health/Check, with k6's
// gRPC client (a second client beside key-bench, in another language and runtime): the same
// virtual users, each with one HTTP/2 connection, the same phase length, in alternating rounds
// (Health/Check, then VerifyKey, in each round), so drift of the machine lands on both alike.
// Each phase's start offset is written to the summary's JSON, so bench/grpc.sh can match the
// server's CPU samples to phases.
//
//   KEYRACK_ADDR=127.0.0.1:50051 KEYRACK_KEY=sk_live_… k6 run bench/grpc.js
//
// Optional: VUS (default 16), SECONDS (per phase, default 4), ROUNDS (default 3), GAP (seconds
// between phases, default 1), TARGETS (default `health,verify`; one alone, to profile the
// server under it), RATE (calls a second per phase, for every target alike; default: each VU
// calls back to back).
import grpc from 'k6/net/grpc';
import { check } from 'k6';
import { alternatingPhases, scenariosOf, measure } from './k6-phases.js';

const ADDR = __ENV.KEYRACK_ADDR || '127.0.0.1:50051';
const KEY = __ENV.KEYRACK_KEY;
const VUS = Number(__ENV.VUS || 16);
const SECONDS = Number(__ENV.SECONDS || 4);
const ROUNDS = Number(__ENV.ROUNDS || 3);
const GAP = Number(__ENV.GAP || 1);
const RATE = Number(__ENV.RATE || 0);
const TARGETS = (__ENV.TARGETS || 'health,verify').split(',');

if (!KEY) {
  throw new Error('set KEYRACK_KEY to a key holding the chat scope');
}

const phases = alternatingPhases(TARGETS, ROUNDS, SECONDS, GAP);
const METRICS = { count: 'iterations', duration: 'grpc_req_duration' };
// Calls under way at a phase's end finish (well inside GAP) instead of being cut off, which
// k6's gRPC client reports as DEADLINE_EXCEEDED.
const { scenarios, thresholds } = scenariosOf(phases, {
  vus: VUS,
  seconds: SECONDS,
  gracefulStop: '500ms',
  rate: RATE,
  ...METRICS,
});

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

export function setup() {
  return { t0: Date.now() };
}

// One connection per VU, opened on its first call and kept: both targets share it, so they
// differ in nothing but the call.
const client = new grpc.Client();
let connected = false;
function connection() {
  if (!connected) {
    client.connect(ADDR, { plaintext: true, reflect: true });
    connected = true;
  }
  return client;
}

export function health() {
  const response = connection().invoke('grpc.health.v1.Health/Check', {});
  check(response, {
    SERVING: (r) => r && r.status === grpc.StatusOK && r.message.status === 'SERVING',
  });
}

export function verify() {
  const response = connection().invoke('keyrack.v1.KeyService/VerifyKey', {
    key: KEY,
    required_scopes: ['chat'],
    client_ip: '203.0.113.7',
    country: 'DE',
    tag: 'POST /api/chat',
  });
  check(response, {
    VALID: (r) => r && r.status === grpc.StatusOK && r.message.valid === true,
  });
}

export function handleSummary(data) {
  const { measured, overall, ratios, spread } = measure(data, phases, {
    seconds: SECONDS,
    rounds: ROUNDS,
    ...METRICS,
  });
  const row = (name, f) =>
    `${name.padEnd(32)} ${f.rps.toFixed(0).padStart(8)} req/s   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms`;
  const run = (target) => (TARGETS.includes(target) ? overall(target) : null);
  const health = run('health');
  const verify = run('verify');
  const text = [
    `gRPC benchmark (k6): ${VUS} VUs, one connection each, ${RATE ? `${RATE} calls/s` : 'back to back'}, ${ROUNDS} rounds of ${SECONDS}s per target, ${ADDR}`,
    ...(health ? [row('grpc.health.v1.Health/Check', health)] : []),
    ...(verify ? [row('keyrack.v1.KeyService/VerifyKey', verify)] : []),
    ...(health && verify
      ? [`ratio VerifyKey/Health throughput: ${spread(ratios('verify', 'health'))}`]
      : []),
    `checks passed: ${(data.metrics.checks.values.rate * 100).toFixed(2)}%`,
    ...data.root_group.checks
      .filter((c) => c.fails > 0)
      .map((c) => `  check ${c.name} failed ${c.fails} times of ${c.passes + c.fails}`),
    '',
  ].join('\n');
  const json = {
    health,
    verify,
    phases: measured,
    labels: { health: 'Health/Check', verify: 'VerifyKey' },
    baseline: 'health',
    vus: VUS,
    seconds: SECONDS,
    rounds: ROUNDS,
    t0_ms: data.setup_data.t0,
  };
  return { stdout: text, 'bench/results/grpc-latest.json': JSON.stringify(json, null, 2) };
}
