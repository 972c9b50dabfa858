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
// between phases, default 1).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const ADDR = __ENV.KEYRACK_ADDR || '127.0.0.1:50051';
const KEY = __ENV.KEYRACK_KEY;
const VUS = Number(__ENV.VUS || 16);
const SECONDS = Number(__ENV.SECONDS || 4);
const ROUNDS = Number(__ENV.ROUNDS || 3);
const GAP = Number(__ENV.GAP || 1);
const TARGETS = ['health', 'verify'];

if (!KEY) {
  throw new Error('set KEYRACK_KEY to a key holding the chat scope');
}

// One scenario per target and round, named `<target>_r<round>`, back to back with GAP between.
const phases = [];
for (let round = 1; round <= ROUNDS; round++) {
  for (const target of TARGETS) {
    phases.push({ name: `${target}_r${round}`, target, round, start: phases.length * (SECONDS + GAP) });
  }
}

const scenarios = {};
const thresholds = { checks: ['rate==1'] };
for (const phase of phases) {
  scenarios[phase.name] = {
    executor: 'constant-vus',
    vus: VUS,
    duration: `${SECONDS}s`,
    exec: phase.target,
    startTime: `${phase.start}s`,
    // Calls under way at the phase's end finish (well inside GAP) instead of being cut off,
    // which k6's gRPC client reports as DEADLINE_EXCEEDED.
    gracefulStop: '500ms',
  };
  // Thresholds on tagged metrics make k6 keep per-scenario figures for the summary below.
  thresholds[`iterations{scenario:${phase.name}}`] = ['count>0'];
  thresholds[`grpc_req_duration{scenario:${phase.name}}`] = ['p(99)>=0'];
}

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

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

export function handleSummary(data) {
  const figures = (name) => {
    const count = data.metrics[`iterations{scenario:${name}}`].values.count;
    const duration = data.metrics[`grpc_req_duration{scenario:${name}}`].values;
    return { rps: count / SECONDS, requests: count, p50: duration.med, p99: duration['p(99)'] };
  };
  const measured = phases.map((phase) => ({ ...phase, ...figures(phase.name) }));
  const of = (target) => measured.filter((phase) => phase.target === target);
  const overall = (target) => {
    const rows = of(target);
    const requests = rows.reduce((sum, row) => sum + row.requests, 0);
    return {
      rps: requests / (SECONDS * ROUNDS),
      p50: median(rows.map((row) => row.p50)),
      p99: median(rows.map((row) => row.p99)),
    };
  };
  const ratios = of('verify').map((row, i) => row.rps / of('health')[i].rps);
  const row = (name, f) =>
    `${name.padEnd(32)} ${f.rps.toFixed(0).padStart(8)} req/s   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms`;
  const health = overall('health');
  const verify = overall('verify');
  const text = [
    `gRPC benchmark (k6): ${VUS} VUs, one connection each, ${ROUNDS} rounds of ${SECONDS}s per target, ${ADDR}`,
    row('grpc.health.v1.Health/Check', health),
    row('keyrack.v1.KeyService/VerifyKey', verify),
    `ratio VerifyKey/Health throughput: median ${median(ratios).toFixed(3)}, rounds ${ratios.map((v) => v.toFixed(3)).join(' ')}`,
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
