"""The server's CPU time per request of each phase of a k6 run, for bench/gateway.sh and
bench/grpc.sh.

  phase-cpu.py sample PID          prints "wall-clock seconds, CPU nanoseconds" of process PID
                                   every 20 ms (the sum over /proc/PID/task/*/schedstat) until
                                   the process is gone or this one is killed
  phase-cpu.py report RUN SAMPLES  reads a k6 summary (RUN: its JSON, with `phases` [{target,
                                   start, requests}], `seconds`, `t0_ms`, and optionally
                                   `labels` and `baseline`) and the samples, prints each target's
                                   server CPU per request over all rounds and per round, and the
                                   ratio of each to the baseline target's; adds the figures to RUN

A phase's CPU is the difference of the (linearly interpolated) samples at its start and end.
"""
import bisect
import glob
import json
import sys
import time


def sample(pid):
    while glob.glob(f"/proc/{pid}"):
        total = 0
        for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
            try:
                total += int(open(path).read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        print(f"{time.time():.4f} {total}", flush=True)
        time.sleep(0.02)


def report(run_path, samples_path):
    run = json.load(open(run_path))
    samples = [tuple(map(float, line.split())) for line in open(samples_path) if line.strip()]
    times = [t for t, _ in samples]

    def cpu_at(t):
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return samples[0][1]
        if i >= len(samples):
            return samples[-1][1]
        (t0, c0), (t1, c1) = samples[i - 1], samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0)

    per_target = {}
    for phase in run["phases"]:
        start = run["t0_ms"] / 1000 + phase["start"]
        cpu = cpu_at(start + run["seconds"]) - cpu_at(start)
        phase["cpu_us_per_request"] = cpu / 1000 / max(1, phase["requests"])
        total = per_target.setdefault(phase["target"], [0.0, 0, []])
        total[0] += cpu
        total[1] += phase["requests"]
        total[2].append(phase["cpu_us_per_request"])
    labels = run.get("labels", {})
    baseline = run.get("baseline", next(iter(per_target)))
    print("server CPU per request (µs), all rounds, and per round:")
    for target, (cpu, requests, rounds) in per_target.items():
        label = labels.get(target, target)
        print(f"{label:<18} {cpu / 1000 / max(1, requests):8.1f}   rounds {' '.join(f'{r:.1f}' for r in rounds)}")
    base = per_target[baseline]
    for target, (cpu, requests, rounds) in per_target.items():
        if target == baseline:
            continue
        ratios = [r / h for r, h in zip(rounds, base[2])]
        overall = (cpu / max(1, requests)) / (base[0] / max(1, base[1]))
        print(f"ratio {target} / {baseline} server CPU per request: {overall:.2f} (rounds {' '.join(f'{r:.2f}' for r in ratios)})")
    run["server_cpu_us_per_request"] = {t: c / 1000 / max(1, n) for t, (c, n, _) in per_target.items()}
    json.dump(run, open(run_path, "w"), indent=2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["sample"] and len(sys.argv) == 3:
        sample(sys.argv[2])
    elif sys.argv[1:2] == ["report"] and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
