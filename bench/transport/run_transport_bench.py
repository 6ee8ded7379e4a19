#!/usr/bin/env python3
"""Runs transport_bench and ucx_perftest on the same transports and sizes and writes
bench/results/transport.json: every Strata figure next to the ucx_perftest figures for that
transport and size, and the ratio to the best of them (DESIGN.md §7).

  bench/transport/run_transport_bench.py [--build build] [--tls tcp sm,tcp] [--quick]

Kept short on purpose (the machine is shared): each perftest run moves at most ~128 MiB.
"""
import argparse
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIZES = [1024, 65536, 1 << 20, 4 << 20, 16 << 20, 64 << 20]
PERFTEST_BW = ["ucp_put_bw", "ucp_am_bw", "ucp_get"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def perftest(test, size, tls, iters, warmup):
    """One ucx_perftest server/client pair; returns the client's final figures."""
    env = dict(os.environ, UCX_TLS=tls)
    port = str(free_port())
    common = ["-t", test, "-s", str(size), "-n", str(iters), "-w", str(warmup), "-p", port, "-f"]
    server = subprocess.Popen(["ucx_perftest"] + common, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        out = None
        for _ in range(50):  # the server needs a moment to listen
            time.sleep(0.1)
            try:
                out = subprocess.run(["ucx_perftest", "127.0.0.1"] + common, env=env,
                                     capture_output=True, text=True, timeout=60)
            except subprocess.TimeoutExpired:
                return None
            if out.returncode == 0:
                break
        if out is None or out.returncode != 0:
            return None
        numbers = None
        for line in out.stdout.splitlines():
            fields = line.split()
            if len(fields) >= 8 and all(re.fullmatch(r"[0-9.]+", f) for f in fields[:8]):
                numbers = [float(f) for f in fields[:8]]
        if numbers is None:
            return None
        # iterations, latency 50%ile / average / overall (usec), bandwidth average / overall
        # (MB/s with MB = 2^20 bytes), message rate average / overall.
        return {"iterations": int(numbers[0]), "p50_usec": numbers[1],
                "avg_usec": numbers[2], "mb_per_s": numbers[5] * 1048576 / 1e6}
    finally:
        server.kill()
        server.wait()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def git_sha():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--tls", nargs="+", default=["tcp", "sm,tcp"])
    parser.add_argument("--quick", action="store_true", help="three sizes only")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "transport.json"))
    args = parser.parse_args()
    sizes = [65536, 1 << 20, 16 << 20] if args.quick else SIZES
    bench = os.path.join(args.build, "bench", "transport_bench")
    if not os.path.exists(bench):
        sys.exit(f"{bench} not built: cmake --build {args.build} --target transport_bench")

    report = {
        "benchmark": "transport",
        "git_sha": git_sha(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "cores": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "ucx_version": subprocess.run(["ucx_info", "-v"], capture_output=True,
                                      text=True).stdout.splitlines()[0].strip("# "),
        "notes": "ratio = Strata / best ucx_perftest figure (put_bw, am_bw, get) for the same "
                 "transport and size; Strata completes every transfer end to end (remote "
                 "visibility: flush for RMA, ack for AM), window 8.",
        "transfers": [],
        "latency": [],
    }
    for tls in args.tls:
        print(f"== {tls}: strata", file=sys.stderr)
        run = subprocess.run([bench, "--tls", tls, "--sizes", ",".join(map(str, sizes)),
                              "--seconds", "0.3", "--latency-iters", "2000"],
                             capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            print(run.stderr, file=sys.stderr)
            continue
        ours = json.loads(run.stdout)
        by_key = {(r.get("op"), r.get("bytes")): r for r in ours["results"]}
        reference = {}
        for test in PERFTEST_BW:
            for size in sizes:
                iters = max(3, min(2000, (128 << 20) // size))
                print(f"== {tls}: ucx_perftest {test} {size}", file=sys.stderr)
                reference[(test, size)] = perftest(test, size, tls, iters, max(1, iters // 10))
        for size in sizes:
            perf = {t: (reference[(t, size)] or {}).get("mb_per_s") for t in PERFTEST_BW}
            available = [v for v in perf.values() if v]
            best = max(available) if available else None
            for op in ("put", "get"):
                mine = by_key.get((op, size), {})
                value = mine.get("mb_per_s")
                report["transfers"].append({
                    "tls": tls, "bulk_path": ours.get("bulk_path"), "op": op, "bytes": size,
                    "strata_mb_per_s": value, "perftest_mb_per_s": perf,
                    "perftest_best_mb_per_s": best,
                    "ratio": (value / best) if value and best else None,
                    "error": mine.get("error"),
                })
        lat = perftest("ucp_am_lat", 8, tls, 5000, 500)
        mine = by_key.get(("message_latency", 8), {})
        report["latency"].append({
            "tls": tls, "bytes": 8, "strata_p50_usec": mine.get("p50_usec"),
            "strata_p90_usec": mine.get("p90_usec"),
            "perftest_ucp_am_lat_p50_usec": lat and lat["p50_usec"],
            "ratio_perftest_over_strata": (lat["p50_usec"] / mine["p50_usec"])
            if lat and mine.get("p50_usec") else None,
        })
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    for row in report["transfers"]:
        ratio = f"{row['ratio'] * 100:5.1f}%" if row["ratio"] else "  n/a"
        print(f"{row['tls']:7} {row['bulk_path'] or '?':4} {row['op']:3} {row['bytes']:>9} B "
              f"{row['strata_mb_per_s'] or 0:9.1f} MB/s  perftest best "
              f"{row['perftest_best_mb_per_s'] or 0:9.1f}  {ratio}")
    for row in report["latency"]:
        print(f"{row['tls']:7} latency p50 {row['strata_p50_usec']} us, perftest "
              f"{row['perftest_ucp_am_lat_p50_usec']} us")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
