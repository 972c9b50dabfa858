// Alternating rounds for k6, shared by bench/gateway.js and bench/grpc.js: one scenario per
// target and round, named `<target>_r<round>`, back to back with a gap between, so drift of the
// machine lands on every target alike; and the figures of each phase and target afterwards.
// `count` and `duration` name the k6 metrics that count a target's requests and time them
// (`http_reqs`/`http_req_duration`, or `iterations`/`grpc_req_duration`).

export function alternatingPhases(targets, rounds, seconds, gap) {
  const phases = [];
  for (let round = 1; round <= rounds; round++) {
    for (const target of targets) {
      phases.push({ name: `${target}_r${round}`, target, round, start: phases.length * (seconds + gap) });
    }
  }
  return phases;
}

// The scenarios of `phases` (each `vus` virtual users for `seconds`, running the function named
// after its target) and the thresholds that make k6 keep per-scenario figures for the summary.
// With `rate`, each phase starts that many calls a second instead (at most `vus` at once), so
// every target is driven at the same pace whatever the client's own cost per call.
export function scenariosOf(phases, { vus, seconds, count, duration, gracefulStop, rate }) {
  const scenarios = {};
  const thresholds = { checks: ['rate==1'] };
  const load = rate
    ? { executor: 'constant-arrival-rate', rate, timeUnit: '1s', preAllocatedVUs: vus, maxVUs: vus }
    : { executor: 'constant-vus', vus };
  for (const phase of phases) {
    scenarios[phase.name] = {
      ...load,
      duration: `${seconds}s`,
      exec: phase.target,
      startTime: `${phase.start}s`,
      gracefulStop,
    };
    thresholds[`${count}{scenario:${phase.name}}`] = ['count>0'];
    thresholds[`${duration}{scenario:${phase.name}}`] = ['p(99)>=0'];
  }
  return { scenarios, thresholds };
}

export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

// Each phase's throughput and latency from k6's summary `data`, and per target over all rounds
// (requests summed, latencies the median of the rounds'); `ratios(target, baseline)` gives the
// rounds' throughput ratios.
export function measure(data, phases, { seconds, rounds, count, duration }) {
  const measured = phases.map((phase) => {
    const requests = data.metrics[`${count}{scenario:${phase.name}}`].values.count;
    const times = data.metrics[`${duration}{scenario:${phase.name}}`].values;
    return { ...phase, rps: requests / seconds, requests, p50: times.med, p99: times['p(99)'] };
  });
  const of = (target) => measured.filter((phase) => phase.target === target);
  const overall = (target) => {
    const rows = of(target);
    const requests = rows.reduce((sum, row) => sum + row.requests, 0);
    return {
      rps: requests / (seconds * rounds),
      p50: median(rows.map((row) => row.p50)),
      p99: median(rows.map((row) => row.p99)),
    };
  };
  const ratios = (target, baseline) => of(target).map((row, i) => row.rps / of(baseline)[i].rps);
  const spread = (values) =>
    `median ${median(values).toFixed(3)}, rounds ${values.map((v) => v.toFixed(3)).join(' ')}`;
  return { measured, overall, ratios, spread };
}
