#!/usr/bin/env python3
"""Runs every reauth benchmark and writes BENCHMARKS.md.

    python3 scripts/benchmarks.py            # full run (about 10 minutes on 2 cores)
    python3 scripts/benchmarks.py --quick    # fewer rounds, for a smoke test

Every figure in the report comes from this run: medians measured by the benchmarks
themselves, and ratios against a baseline measured in the same run, in the same process.
Nothing is typed by hand.
"""

import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = "--quick" in sys.argv


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, cwd=ROOT, env=full_env, check=True, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    sys.stdout.write(out)
    return out


def bench_json(out):
    return {j["bench"]: j for j in
            (json.loads(line.split(" ", 1)[1]) for line in out.splitlines()
             if line.startswith("BENCH-JSON "))}


def criterion_median_ns(group, name):
    path = ROOT / "target" / "criterion" / group / name / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def across(samples):
    """One summary of a comparison run in several processes: the process with the median
    ratio (its requests/s, so that they agree with the ratio), the median of the per-round
    ratios, and the range of both over the processes."""
    out = dict(sorted(samples, key=lambda s: s["ratio"])[len(samples) // 2])
    for key in ("ratio_per_round", "raw_ns", "wrapped_ns"):
        if key in out:
            out[key] = median([s[key] for s in samples])
    out["processes"] = len(samples)
    out["ratio_min"] = min(s["ratio"] for s in samples)
    out["ratio_max"] = max(s["ratio"] for s in samples)
    out["per_round_min"] = min(s["ratio_per_round"] for s in samples)
    out["per_round_max"] = max(s["ratio_per_round"] for s in samples)
    return out


def bench_binary(package, bench):
    out = run(["cargo", "bench", "-p", package, "--bench", bench, "--no-run"])
    return ROOT / re.search(r"Executable \S+ \((\S+)\)", out).group(1)


def instructions_per_request(binary, side_env, requests, rounds=3):
    """Instructions per request of one side alone, client and server together, counted by
    callgrind: the same count on every run, whatever the machine's load. The fixed cost
    (server start, login) is a run with no rounds, subtracted."""
    def start(n):
        env = dict(os.environ, **side_env, REAUTH_BENCH_ROUNDS=str(n))
        return subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(binary)],
            cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def collected(proc):
        err = proc.communicate()[1]
        if proc.returncode != 0:
            sys.exit(f"callgrind failed:\n{err}")
        return int(re.search(r"Collected : (\d+)", err).group(1))

    fixed, full = start(0), start(rounds)
    return (collected(full) - collected(fixed)) / (rounds * requests)


def instruction_counts():
    print("+ callgrind: instructions per request of each side alone", flush=True)
    e2e = bench_binary("reauth-reqwest", "e2e")
    thr = bench_binary("reauth-ureq", "throughput")
    one_thread = {"REAUTH_BENCH_THREADS": "1", "REAUTH_BENCH_REQUESTS": "800"}
    counts = {
        "reqwest_raw": instructions_per_request(e2e, {"REAUTH_BENCH_ONLY": "raw"}, 6400),
        "reqwest_ours": instructions_per_request(e2e, {"REAUTH_BENCH_ONLY": "ours"}, 6400),
        "ureq_raw": instructions_per_request(thr, dict(one_thread, REAUTH_BENCH_ONLY="raw"), 800),
        "ureq_ours": instructions_per_request(thr, dict(one_thread, REAUTH_BENCH_ONLY="wrapped"), 800),
    }
    print(counts, flush=True)
    return counts


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    rustc = subprocess.run(["rustc", "--version"], text=True, stdout=subprocess.PIPE).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores{mem}; {platform.system()} {platform.release()}; {rustc}"


def main():
    crit = ["--warm-up-time", "1", "--measurement-time", "2" if QUICK else "5"]
    run(["cargo", "bench", "-p", "reauth-core", "--bench", "machine", "--"] + crit)
    memory = run(["cargo", "bench", "-p", "reauth-core", "--bench", "storm_memory"])
    quick = ["--quick"] if QUICK else []
    e2e = bench_json(run(["cargo", "bench", "-p", "reauth-reqwest", "--bench", "e2e", "--",
                          "--part", "storm"] + quick))
    # The fast paths in several processes: one process's heap layout and thread placement
    # favour one side for its whole life, so a process is one sample.
    processes = 3 if QUICK else 7
    fast = [bench_json(run(["cargo", "bench", "-p", "reauth-reqwest", "--bench", "e2e", "--",
                            "--part", "fast"], env={"REAUTH_BENCH_ROUNDS": "7" if QUICK else "21"}))
            ["reqwest_fast_path"] for _ in range(processes)]
    ureqs = [bench_json(run(["cargo", "bench", "-p", "reauth-ureq", "--bench", "throughput"],
                            env={"REAUTH_BENCH_ROUNDS": "6" if QUICK else "16"}))["ureq_throughput"]
             for _ in range(processes)]

    ins = instruction_counts()

    tut = criterion_median_ns("fast_path", "tutorial_mutex_format_parse")
    ses = criterion_median_ns("fast_path", "session_begin_and_200")
    mtx = criterion_median_ns("fast_path", "session_in_mutex_begin_and_200")
    storm_rows = []
    for n in (1000, 1000000):
        q = criterion_median_ns("storm", f"queue_and_resume_{n}")
        r = criterion_median_ns("storm", f"resume_only_{n}")
        storm_rows.append((n, q / n, r / n))
    mem_rows = [tuple(line.split()) for line in memory.splitlines()
                if re.match(r"^\s*\d+\s+[\d.]+\s+[\d.]+\s*$", line)]
    st = e2e["reqwest_storm"]
    fp, ut = across(fast), across(ureqs)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {now} on {machine()}.",
        "Reproduce with `python3 scripts/benchmarks.py` (this file is its output; "
        + ("a `--quick` run" if QUICK else "a full run") + ").",
        "Every ratio compares two figures measured in the same run; end-to-end comparisons",
        "interleave their rounds so that drift in the machine's load favours neither side.",
        "",
        "## Core: the fast path (criterion, median per request)",
        "",
        "| what | ns | ratio to the tutorials' pattern |",
        "|---|---:|---:|",
        f"| tutorials' pattern: `Mutex<String>` read + `format!(\"Bearer {{t}}\")` + `HeaderValue` parse | {tut:.1f} | 1.00 |",
        f"| `Session::begin_request` + `handle_response(200)` | {ses:.1f} | {ses / tut:.2f} |",
        f"| the same behind a `Mutex` (what an adapter does) | {mtx:.1f} | {mtx / tut:.2f} |",
        "",
        "`cargo bench -p reauth-core --bench machine`",
        "",
        "## Core: a storm of waiters behind one refresh",
        "",
        "| waiters | queue + resume, ns per waiter | resume only, ns per waiter |",
        "|---:|---:|---:|",
    ] + [f"| {n:,} | {q:.1f} | {r:.1f} |" for n, q, r in storm_rows] + [
        "",
        "| waiters | heap held while queued, bytes per waiter | peak, bytes per waiter |",
        "|---:|---:|---:|",
    ] + [f"| {int(n):,} | {h} | {p} |" for n, h, p in mem_rows] + [
        "",
        "`cargo bench -p reauth-core --bench machine` and `--bench storm_memory` (dhat counts every allocation).",
        "",
        "## Async adapter (reqwest) against the testkit server on loopback",
        "",
        f"Fast path, {fp['concurrency']} concurrent workers on one shared HTTP/2 connection, "
        f"{fp['processes']} processes of {fp['rounds']} interleaved rounds of "
        f"{fp['requests_per_round']:,} requests, each response body read (the process with the median ratio):",
        "",
        "| client | requests/s |",
        "|---|---:|",
        f"| raw reqwest with a static bearer header | {fp['raw_rps']:,.0f} |",
        f"| reauth-reqwest | {fp['reauth_rps']:,.0f} |",
        f"| ratio (goal >= 0.98) | {fp['ratio']:.3f} (processes {fp['ratio_min']:.3f} to {fp['ratio_max']:.3f}) |",
        f"| median of per-round ratios | {fp['ratio_per_round']:.3f} (processes {fp['per_round_min']:.3f} to "
        f"{fp['per_round_max']:.3f}) |",
        "",
        f"Storm recovery: {st['n']:,} concurrent requests, {st['rounds']} rounds (median):",
        "",
        "| scenario | wall time | token-endpoint calls |",
        "|---|---:|---:|",
        f"| valid token, plus one refresh round trip (baseline) | {st['baseline_ms']:.1f} ms | 1 |",
        f"| reauth after the token expired on the server | {st['recovery_ms']:.1f} ms | {st['reauth_token_calls']:.0f} |",
        f"| the tutorials' pattern (mutex + token compare) on plain reqwest | {st['tutorial_ms']:.1f} ms | {st['tutorial_token_calls']:.0f} |",
        f"| ratio reauth / baseline (goal <= 1.2) | {st['ratio']:.3f} | |",
        "",
        "`cargo bench -p reauth-reqwest --bench e2e`",
        "",
        "## Blocking adapter (ureq) against the testkit server on loopback",
        "",
        f"{ut['threads']} threads sharing one agent's connection pool, {ut['processes']} processes of "
        f"{ut['rounds']} interleaved rounds per side (the process with the median ratio):",
        "",
        "| client | requests/s |",
        "|---|---:|",
        f"| raw ureq with a static bearer header | {ut['raw_rps']:,.0f} |",
        f"| reauth-ureq | {ut['reauth_rps']:,.0f} |",
        f"| ratio (goal >= 0.98) | {ut['ratio']:.3f} (processes {ut['ratio_min']:.3f} to {ut['ratio_max']:.3f}) |",
        f"| median of per-round ratios | {ut['ratio_per_round']:.3f} (processes {ut['per_round_min']:.3f} to "
        f"{ut['per_round_max']:.3f}) |",
        "",
        f"Client-side cost per request without a network (1 thread): raw {ut['raw_ns']:.0f} ns, "
        f"reauth {ut['wrapped_ns']:.0f} ns.",
        "",
        "`cargo bench -p reauth-ureq --bench throughput`",
        "",
        "## Instructions per request (deterministic)",
        "",
        "Each side of the two fast paths alone under callgrind, client and server together",
        "(the server's share is the same for both sides), the fixed start-up cost subtracted.",
        "Unlike requests/s, these counts do not move with the machine's load.",
        "",
        "| adapter | raw client | reauth | ratio | extra per request |",
        "|---|---:|---:|---:|---:|",
        f"| reqwest, 64 concurrent, HTTP/2 | {ins['reqwest_raw']:,.0f} | {ins['reqwest_ours']:,.0f} | "
        f"{ins['reqwest_ours'] / ins['reqwest_raw']:.3f} | {ins['reqwest_ours'] - ins['reqwest_raw']:,.0f} |",
        f"| ureq, 1 thread, HTTP/1.1 | {ins['ureq_raw']:,.0f} | {ins['ureq_ours']:,.0f} | "
        f"{ins['ureq_ours'] / ins['ureq_raw']:.3f} | {ins['ureq_ours'] - ins['ureq_raw']:,.0f} |",
        "",
        "`REAUTH_BENCH_ONLY=raw|ours` (e2e) and `REAUTH_BENCH_ONLY=raw|wrapped` (throughput) run one side;",
        "`valgrind --tool=callgrind` counts.",
        "",
        "## Reading these figures",
        "",
        "The machine is small (see above) and the server runs on the same cores as the client,",
        "so absolute requests/s are low and noisy; the ratios are the figures to compare.",
        "Rounds a few percent either way are common, and a whole process can favour one side",
        "(its heap layout and thread placement hold for its life): hence several processes and",
        "their range. The instruction counts above say how much of a gap is work the adapter adds.",
        "",
    ]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
