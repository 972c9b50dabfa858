// k6 script: the cost of usage metering and rate limiting on VerifyKey, over gRPC.
//
// Two servers run side by side: METERED counts every verification (metering on) and the key
// carries a rate limit (one window, high enough never to refuse); BARE runs with
// `--metering off` and its key has no limit. The same client verifies against each, in
// alternating rounds (bare, metered, bare, metered), the same virtual users and durations, in
// one run: the ratio metered/bare of throughput is what metering and limits cost.
//
//   METERED_ADDR=127.0.0.1:50051 METERED_KEY=sk_… BARE_ADDR=127.0.0.1:50052 BARE_KEY=sk_… \
//     k6 run bench/metering.js
//
// Optional: VUS (default 8), SECONDS (per round, default 10), ROUNDS (pairs, default 2).
import grpc from 'k6/net/grpc';
import { check } from 'k6';

const VUS = Number(__ENV.VUS || 8);
const SECONDS = Number(__ENV.SECONDS || 10);
const ROUNDS = Number(__ENV.ROUNDS || 2);
const TARGETS = {
  metered: { addr: __ENV.METERED_ADDR, key: __ENV.METERED_KEY },
  bare: { addr: __ENV.BARE_ADDR, key: __ENV.BARE_KEY },
};
for (const [name, target] of Object.entries(TARGETS)) {
  if (!target.addr || !target.key) {
    throw new Error(`set ${name.toUpperCase()}_ADDR and ${name.toUpperCase()}_KEY`);
  }
}

const scenarios = {};
const thresholds = { checks: ['rate==1'] };
let start = 0;
for (let round = 0; round < ROUNDS; round += 1) {
  for (const name of ['bare', 'metered']) {
    const scenario = `${name}${round}`;
    scenarios[scenario] = {
      executor: 'constant-vus',
      vus: VUS,
      duration: `${SECONDS}s`,
      exec: name,
      startTime: `${start}s`,
      tags: { target: name },
    };
    start += SECONDS + 2;
  }
}
for (const name of ['bare', 'metered']) {
  // Thresholds on tagged metrics make k6 keep per-target figures for the summary below.
  thresholds[`iterations{target:${name}}`] = ['count>0'];
  thresholds[`grpc_req_duration{target:${name}}`] = ['p(99)>=0'];
}

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
};

// One connection per VU and target, opened on first use and kept.
const clients = {};
function client(name) {
  if (!clients[name]) {
    const c = new grpc.Client();
    c.connect(TARGETS[name].addr, { plaintext: true, reflect: true });
    clients[name] = c;
  }
  return clients[name];
}

function verify(name) {
  const response = client(name).invoke('keyrack.v1.KeyService/VerifyKey', {
    key: TARGETS[name].key,
    required_scopes: ['chat'],
    client_ip: '203.0.113.7',
    country: 'DE',
    tag: 'POST /v1/chat',
  });
  check(response, {
    'VALID': (r) => r && r.status === grpc.StatusOK && r.message.valid === true,
  });
}

export function bare() {
  verify('bare');
}

export function metered() {
  verify('metered');
}

export function handleSummary(data) {
  const figures = (name) => {
    const count = data.metrics[`iterations{target:${name}}`].values.count;
    const duration = data.metrics[`grpc_req_duration{target:${name}}`].values;
    return { rps: count / (SECONDS * ROUNDS), p50: duration.med, p99: duration['p(99)'] };
  };
  const bareFigures = figures('bare');
  const meteredFigures = figures('metered');
  const row = (name, f) =>
    `${name.padEnd(34)} ${f.rps.toFixed(0).padStart(8)} req/s   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms`;
  const text = [
    `metering benchmark: ${VUS} VUs, ${ROUNDS} rounds of ${SECONDS}s per target`,
    row('VerifyKey, metering off', bareFigures),
    row('VerifyKey, metering + 1 rate limit', meteredFigures),
    `ratio metered/bare throughput: ${(meteredFigures.rps / bareFigures.rps).toFixed(3)}`,
    `checks passed: ${(data.metrics.checks.values.rate * 100).toFixed(2)}%`,
    '',
  ].join('\n');
  return {
    stdout: text,
    'bench/results/metering-latest.json': JSON.stringify(
      { bare: bareFigures, metered: meteredFigures, vus: VUS, seconds: SECONDS, rounds: ROUNDS },
      null,
      2,
    ),
  };
}
