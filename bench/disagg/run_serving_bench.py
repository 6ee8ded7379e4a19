#!/usr/bin/env python3
"""Serving latency of embedded mode against disaggregated mode (1 prefill + 1 decode instance) on
the same cores, under `strata bench` at several request rates, and writes
bench/results/serving_disagg.json and serving_disagg.svg (TTFT and TPOT p50 against the rate).

What disaggregation buys and costs: decode steps are never held up by a prefill chunk (TPOT and
inter-token latency), while each role gets only its share of the cores (TTFT once prefill is
busy). Embedded runs with --threads = every core; the disaggregated instances split them.

  bench/disagg/run_serving_bench.py --model models/bench_deepseek_v3 [--build build]
      [--rates 0.5,1,1.5] [--num-prompts 30] [--input-len 512] [--output-len 64]
"""
import argparse
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "transport"))
from run_transport_bench import cpu_model, free_port, git_sha  # noqa: E402

sys.path.insert(0, HERE)
from bench_cluster import start, stop  # noqa: E402

MODES = ["embedded", "disaggregated"]
KEYS = ["request_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms",
        "median_itl_ms", "p99_itl_ms", "mean_e2el_ms"]


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def serve(args, mode, port, log_path):
    cmd = [args.strata, "serve", "--model", args.model, "--port", str(port), "--kv-cache-bytes",
           "512Mi"]
    if mode == "embedded":
        cmd += ["--threads", str(os.cpu_count())]
    else:
        cmd += ["--disaggregated", "--prefill", "1", "--decode", "1", "--kvcache", "0",
                "--ucx-tls", "tcp"]
    return start(cmd, log_path, lambda: healthy(port))


def point(args, mode, rate):
    port = free_port()
    proc = serve(args, mode, port, f"/tmp/strata_serving_{mode}_{rate}.log")
    result = f"/tmp/strata_serving_{mode}_{rate}.json"
    try:
        subprocess.run([args.strata, "bench", "--base-url", f"http://127.0.0.1:{port}",
                        "--endpoint", "completions", "--tokenizer", args.model, "--dataset",
                        "random", "--input-len", str(args.input_len), "--output-len",
                        str(args.output_len), "--num-prompts", str(args.num_prompts),
                        "--request-rate", str(rate), "--ignore-eos", "--seed", "3",
                        "--extra-body", '{"temperature":0}', "--result-json", result],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        stop(proc)
    with open(result) as f:
        r = json.load(f)
    return {k: r[k] for k in KEYS}


def svg(rates, points, path):
    """TTFT p50 (left) and TPOT p50 (right) against the request rate, one line per mode."""
    w, h, pad = 720, 300, 50
    colors = {"embedded": "#4c78a8", "disaggregated": "#f58518"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             'font-family="sans-serif" font-size="12">']
    for panel, (key, title) in enumerate([("median_ttft_ms", "TTFT p50 (ms)"),
                                          ("median_tpot_ms", "TPOT p50 (ms)")]):
        x0, pw, ph = pad + panel * (w // 2), w // 2 - pad - 20, h - 2 * pad
        top = max(points[m][i][key] for m in MODES for i in range(len(rates))) * 1.1
        parts.append(f'<text x="{x0}" y="20">{title} against requests/s</text>')
        parts.append(f'<line x1="{x0}" y1="{pad + ph}" x2="{x0 + pw}" y2="{pad + ph}" '
                     'stroke="#888"/>')
        parts.append(f'<line x1="{x0}" y1="{pad}" x2="{x0}" y2="{pad + ph}" stroke="#888"/>')
        parts.append(f'<text x="{x0 - 45}" y="{pad + 4}">{top:.0f}</text>')
        span = max(rates) - min(rates) or 1
        for i, rate in enumerate(rates):
            x = x0 + (rate - min(rates)) / span * pw
            parts.append(f'<text x="{x - 8:.0f}" y="{pad + ph + 16}">{rate:g}</text>')
        for j, mode in enumerate(MODES):
            xy = [(x0 + (rate - min(rates)) / span * pw, pad + ph - points[mode][i][key] / top * ph)
                  for i, rate in enumerate(rates)]
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colors[mode]}" '
                         'stroke-width="2"/>')
            parts.append(f'<text x="{x0 + 10}" y="{pad + 14 + 14 * j}" '
                         f'fill="{colors[mode]}">{mode}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--rates", default="0.5,1,1.5")
    p.add_argument("--num-prompts", type=int, default=30)
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "serving_disagg.json"))
    args = p.parse_args()
    args.strata = os.path.join(args.build, "apps", "strata", "strata")
    rates = [float(r) for r in args.rates.split(",")]
    points = {m: [] for m in MODES}
    for rate in rates:
        for mode in MODES:  # interleaved, so a slow phase of the machine hits both
            print(f"== {mode} at {rate:g} requests/s", file=sys.stderr, flush=True)
            r = point(args, mode, rate)
            print(f"   TTFT p50 {r['median_ttft_ms']:.0f} ms, TPOT p50 {r['median_tpot_ms']:.0f} ms, "
                  f"ITL p99 {r['p99_itl_ms']:.0f} ms, {r['request_throughput']:.2f} requests/s",
                  file=sys.stderr, flush=True)
            points[mode].append(dict(r, request_rate=rate))
    out = {
        "git_sha": git_sha(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "model": os.path.basename(os.path.normpath(args.model)),
        "embedded": {"threads": os.cpu_count()},
        "disaggregated": {"prefill": 1, "decode": 1, "kvcache": 0,
                          "threads_per_instance": max(1, os.cpu_count() // 2), "ucx_tls": "tcp"},
        "workload": {"dataset": "random", "input_len": args.input_len,
                     "output_len": args.output_len, "num_prompts": args.num_prompts,
                     "arrivals": "Poisson", "seed": 3},
        "points": points,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    svg(rates, points, os.path.splitext(args.out)[0] + ".svg")
    print(json.dumps(points, indent=2))


if __name__ == "__main__":
    main()
