#!/usr/bin/env python3
"""Runs ep_bench and writes bench/results/ep.json (DESIGN.md §7):

  - dispatch + combine time per MoE layer (bench deepseek_v3 shapes) at EP 2 and 4 over UCX sm
    and tcp, INT8 and BF16 dispatch, next to the bytes each rank sends and the transport's
    measured bandwidth (bench/results/transport.json, the same machine);
  - decode tokens/s of the bench deepseek_v3 preset at EP 1, 2, 4 with and without microbatching,
    and the overlap fraction achieved.

  bench/ep/run_ep_bench.py [--build build] [--model DIR] [--quick]

Without --model it makes the bench checkpoint with `strata gen-model` in a temp dir (~2.5 GB).
Kept short: the machine is shared and has 2 cores.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(cmd, env=None, timeout=600):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        return {"error": p.stderr.strip()[-500:], "cmd": " ".join(cmd)}
    return json.loads(p.stdout.strip().splitlines()[-1])


def transport_reference():
    """Best Strata-measured bulk bandwidth per transport from bench/results/transport.json."""
    path = os.path.join(ROOT, "bench", "results", "transport.json")
    if not os.path.exists(path):
        return {}
    best = {}
    for t in json.load(open(path)).get("transfers", []):
        if t.get("error"):
            continue
        key = t["tls"]
        best[key] = max(best.get(key, 0), t.get("perftest_best_mb_per_s", 0))
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model", default="")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "ep_bench")
    strata = os.path.join(a.build, "apps", "strata", "strata")
    iters = "10" if a.quick else "30"
    ref = transport_reference()
    comm = []
    for tls in ["sm", "tcp"]:
        env = dict(os.environ, UCX_TLS=tls + ",tcp" if tls == "sm" else "tcp")
        for ep in [2, 4]:
            for tokens in [32, 256]:
                for dtype in ["int8", "bf16"]:
                    r = run([bench, "comm", "--ep", str(ep), "--transport", "ucx", "--tls",
                             env["UCX_TLS"], "--dtype", dtype, "--tokens", str(tokens),
                             "--iters", iters], env=env)
                    ref_key = "sm,tcp" if tls == "sm" else "tcp"
                    r["transport_best_perftest_mb_per_s"] = ref.get(ref_key)
                    comm.append(r)
                    print(json.dumps(r), flush=True)
    for ep in [2, 4]:  # the in-process transport (embedded mode's), for comparison
        r = run([bench, "comm", "--ep", str(ep), "--transport", "inproc", "--dtype", "int8",
                 "--tokens", "256", "--iters", iters])
        comm.append(r)
        print(json.dumps(r), flush=True)
    savings = []
    for c in comm:
        if c.get("dtype") != "int8" or "error" in c:
            continue
        for d in comm:
            if (d.get("dtype") == "bf16" and d.get("ep") == c["ep"] and
                    d.get("transport") == c["transport"] and
                    d.get("tokens_per_rank") == c["tokens_per_rank"] and "error" not in d):
                savings.append({
                    "ep": c["ep"], "transport": c["transport"], "tokens_per_rank": c["tokens_per_rank"],
                    "dispatch_bytes_int8_over_bf16":
                        c["dispatch_bytes_per_rank"] / max(1, d["dispatch_bytes_per_rank"]),
                    "dispatch_us_int8": c["dispatch_us"], "dispatch_us_bf16": d["dispatch_us"],
                    "layer_us_int8": c["layer_us"], "layer_us_bf16": d["layer_us"]})

    model = a.model
    tmp = None
    if not model:
        tmp = tempfile.TemporaryDirectory(prefix="strata_ep_bench_")
        model = os.path.join(tmp.name, "deepseek_v3_bench")
        tok = os.path.join(ROOT, ".cache", "test-assets", "tokenizers", "deepseek_v3")
        p = subprocess.run([strata, "gen-model", "--arch", "deepseek_v3", "--preset", "bench",
                            "--tokenizer", tok, "--out", model, "--seed", "1"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return 1
    decode = []
    steps = "3" if a.quick else "6"
    for ep in [1, 2, 4]:
        for mb in [False, True]:
            cmd = [bench, "decode", "--model", model, "--ep", str(ep), "--batch", "8", "--steps",
                   steps, "--dtype", "int8"]
            if not mb:
                cmd.append("--no-microbatch")
            r = run(cmd, timeout=900)
            decode.append(r)
            print(json.dumps(r), flush=True)

    sha = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    out = {
        "benchmark": "ep",
        "git_sha": sha,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg()},
        "notes": ("comm: one MoE layer's dispatch + combine with identity experts, bench "
                  "deepseek_v3 shapes (hidden 1024, 64 experts, top-6), ranks as threads each "
                  "with its own UCX endpoint; bytes_per_rank = what rank 0 sends to peers per "
                  "layer (its own share stays local); transport_best_perftest_mb_per_s = best "
                  "ucx_perftest bulk figure on this machine (bench/results/transport.json). "
                  "decode: bench deepseek_v3 preset, EP ranks as threads over the in-process "
                  "transport, 8 sequences per rank, INT8 dispatch; tokens_per_s over the group. "
                  "The machine has 2 cores shared with other jobs: EP 4 runs 4 ranks on 2 cores."),
        "comm": comm,
        "int8_vs_bf16": savings,
        "decode": decode,
    }
    path = os.path.join(ROOT, "bench", "results", "ep.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print("wrote", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
