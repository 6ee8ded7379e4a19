#!/usr/bin/env python3
"""Compares the router's policies (--routing-policy load, round-robin, random) on a
`strata serve --disaggregated` cluster under `strata bench`, and writes
bench/results/routing.json and routing.svg: TTFT and E2E latency, prefix-cache hits and how the
requests spread over the instances (strata_router_requests_total) per policy.

The workload is the bench driver's `prefix` data set (groups of prompts sharing a long prefix,
shuffled), so a prefill instance's own prefix cache pays off when requests of a group meet on
it. The cluster has no KV pool (a pool would share every prefix with every instance). Policies
run interleaved, --rounds times each; the JSON keeps every run and the medians.

  bench/disagg/run_routing_bench.py --model models/bench_deepseek_v3 [--build build]
      [--prefill 2] [--decode 1] [--rounds 3] [--groups 8] [--per-group 6] [--prefix-len 384]
      [--concurrency 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench", "transport"))
from run_transport_bench import cpu_model, free_port, git_sha  # noqa: E402

sys.path.insert(0, HERE)
from bench_cluster import start, stop  # noqa: E402

POLICIES = ["load", "round-robin", "random"]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def start_cluster(args, policy, port, log_path):
    cmd = [args.strata, "serve", "--disaggregated", "--prefill", str(args.prefill), "--decode",
           str(args.decode), "--kvcache", "0", "--model", args.model, "--port", str(port),
           "--kv-cache-bytes", "256Mi", "--ucx-tls", "tcp", "--routing-policy", policy]
    ids = [f"prefill-{i}" for i in range(args.prefill)] + [f"decode-{i}" for i in range(args.decode)]

    def registered():  # all of them, not only one of each role as /health asks
        with open(log_path) as f:
            text = f.read()
        return all(f"instance {i} at" in text for i in ids)

    return start(cmd, log_path, registered)


def routed(port):
    out = {}
    for line in get(f"http://127.0.0.1:{port}/metrics").splitlines():
        m = re.match(r'strata_router_requests_total\{instance="([^"]+)"\} (\S+)', line)
        if m:
            out[m.group(1)] = int(float(m.group(2)))
    return dict(sorted(out.items()))


def run_once(args, policy, tag):
    port = free_port()
    log_path = f"/tmp/strata_routing_{tag}.log"
    proc = start_cluster(args, policy, port, log_path)
    result = f"/tmp/strata_routing_{tag}.json"
    try:
        bench = [args.strata, "bench", "--base-url", f"http://127.0.0.1:{port}", "--endpoint",
                 "completions", "--tokenizer", args.model, "--dataset", "prefix",
                 "--prefix-groups", str(args.groups), "--prefix-requests", str(args.per_group),
                 "--prefix-len", str(args.prefix_len), "--input-len", "32", "--output-len", "8",
                 "--ignore-eos", "--max-concurrency", str(args.concurrency), "--seed",
                 str(args.seed), "--extra-body", '{"temperature":0}', "--result-json", result]
        subprocess.run(bench, check=True, stdout=subprocess.DEVNULL)
        counts = routed(port)
    finally:
        stop(proc)
    with open(result) as f:
        r = json.load(f)
    return {
        "duration_s": r["duration"],
        "ttft_ms_p50": r["median_ttft_ms"],
        "ttft_ms_p90": r["p90_ttft_ms"],
        "e2el_ms_mean": r["mean_e2el_ms"],
        "cached_prompt_tokens": r["strata"]["total_cached_tokens"],
        "input_tokens": r["total_input_tokens"],
        "requests_routed": counts,
    }


def svg(summary, path):
    """Two bar groups per policy: TTFT p50 / p90 (ms) and the share of prompt tokens cached."""
    w, h, left, top, bar = 640, 300, 60, 30, 22
    top_ms = max(max(s["ttft_ms_p90"] for s in summary.values()), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             'font-family="sans-serif" font-size="12">',
             '<text x="10" y="18">TTFT p50 / p90 (ms, left bars) and prompt tokens cached '
             '(%, right bar), medians of the rounds</text>']
    plot_h = h - top - 50
    for i, (policy, s) in enumerate(summary.items()):
        x0 = left + i * 190
        bars = [(s["ttft_ms_p50"] / top_ms, "#4c78a8", f'{s["ttft_ms_p50"]:.0f}'),
                (s["ttft_ms_p90"] / top_ms, "#9ecae9", f'{s["ttft_ms_p90"]:.0f}'),
                (s["cached_fraction"], "#f58518", f'{100 * s["cached_fraction"]:.0f}%')]
        for j, (frac, color, label) in enumerate(bars):
            bh = max(1, frac * plot_h)
            x = x0 + j * (bar + 6)
            y = top + plot_h - bh
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{bar}" height="{bh:.1f}" fill="{color}"/>')
            parts.append(f'<text x="{x}" y="{y - 3:.1f}">{label}</text>')
        parts.append(f'<text x="{x0}" y="{top + plot_h + 18}">{policy}</text>')
        spread = " / ".join(str(v) for k, v in s["requests_routed"].items() if k.startswith("prefill"))
        parts.append(f'<text x="{x0}" y="{top + plot_h + 34}">prefill: {spread}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--prefill", type=int, default=2)
    p.add_argument("--decode", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--groups", type=int, default=8)
    p.add_argument("--per-group", type=int, default=6)
    p.add_argument("--prefix-len", type=int, default=384)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "routing.json"))
    args = p.parse_args()
    args.strata = os.path.join(args.build, "apps", "strata", "strata")
    runs = {policy: [] for policy in POLICIES}
    for rnd in range(args.rounds):
        for policy in POLICIES:
            print(f"== round {rnd + 1}/{args.rounds}: {policy}", file=sys.stderr, flush=True)
            r = run_once(args, policy, f"{policy}_{rnd}")
            print(f"   TTFT p50 {r['ttft_ms_p50']:.0f} ms, p90 {r['ttft_ms_p90']:.0f} ms, "
                  f"cached {r['cached_prompt_tokens']} of {r['input_tokens']} prompt tokens, "
                  f"routed {r['requests_routed']}", file=sys.stderr, flush=True)
            runs[policy].append(r)
    summary = {}
    for policy, rs in runs.items():
        med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
        summary[policy] = {
            "ttft_ms_p50": med("ttft_ms_p50"),
            "ttft_ms_p90": med("ttft_ms_p90"),
            "e2el_ms_mean": med("e2el_ms_mean"),
            "duration_s": med("duration_s"),
            "cached_fraction": med("cached_prompt_tokens") / rs[0]["input_tokens"],
            "requests_routed": rs[-1]["requests_routed"],
        }
    best_cached = args.groups * (args.per_group - 1) * args.prefix_len
    out = {
        "git_sha": git_sha(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "model": os.path.basename(os.path.normpath(args.model)),
        "cluster": {"prefill": args.prefill, "decode": args.decode, "kvcache": 0},
        "workload": {"dataset": "prefix", "groups": args.groups, "per_group": args.per_group,
                     "prefix_len": args.prefix_len, "suffix_len": 32, "output_len": 8,
                     "max_concurrency": args.concurrency, "seed": args.seed},
        "limit_cached_prompt_tokens": best_cached,
        "summary": summary,
        "runs": runs,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    svg(summary, os.path.splitext(args.out)[0] + ".svg")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
