#!/usr/bin/env python3
"""Runs every reauth benchmark and writes BENCHMARKS.md.

    python3 scripts/benchmarks.py            # full run (about 25 minutes on 2 cores)
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


def run(cmd, env=None, check=True):
    print("+", " ".join(cmd), flush=True)
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, cwd=ROOT, env=full_env, check=check, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
    sys.stdout.write(out)
    return out


def bench_json(out):
    return {j["bench"]: j for j in
            (json.loads(line.split(" ", 1)[1]) for line in out.splitlines()
             if line.startswith("BENCH-JSON "))}


TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def criterion_median_ns(group, name):
    path = TARGET / "criterion" / group / name / "new" / "estimates.json"
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


def instructions_per_request(binary, side_env, requests, rounds=3, args=()):
    """Instructions per request of one side alone, client and server together, counted by
    callgrind: the same count on every run, whatever the machine's load. The fixed cost
    (server start, login) is a run with no rounds, subtracted."""
    def start(n):
        env = dict(os.environ, **side_env, REAUTH_BENCH_ROUNDS=str(n))
        return subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(binary),
             *args],
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
    redis = bench_binary("reauth-redis", "fast_path")
    tower = bench_binary("reauth-tower", "fast_path")
    one_thread = {"REAUTH_BENCH_THREADS": "1", "REAUTH_BENCH_REQUESTS": "800"}
    hyper, grpc = ["--part", "hyper"], ["--part", "grpc"]
    counts = {
        "redis_memory": instructions_per_request(redis, {"REAUTH_BENCH_ONLY": "memory"}, 6400),
        "redis_redis": instructions_per_request(redis, {"REAUTH_BENCH_ONLY": "redis"}, 6400),
        "hyper_raw": instructions_per_request(tower, {"REAUTH_BENCH_ONLY": "raw"}, 6400, args=hyper),
        "hyper_ours": instructions_per_request(tower, {"REAUTH_BENCH_ONLY": "ours"}, 6400, args=hyper),
        "grpc_raw": instructions_per_request(tower, {"REAUTH_BENCH_ONLY": "raw"}, 6400, args=grpc),
        "grpc_ours": instructions_per_request(tower, {"REAUTH_BENCH_ONLY": "ours"}, 6400, args=grpc),
        "reqwest_raw": instructions_per_request(e2e, {"REAUTH_BENCH_ONLY": "raw"}, 6400),
        "reqwest_ours": instructions_per_request(e2e, {"REAUTH_BENCH_ONLY": "ours"}, 6400),
        "ureq_raw": instructions_per_request(thr, dict(one_thread, REAUTH_BENCH_ONLY="raw"), 800),
        "ureq_ours": instructions_per_request(thr, dict(one_thread, REAUTH_BENCH_ONLY="wrapped"), 800),
    }
    print(counts, flush=True)
    return counts


def fleet_storm():
    """The fleet example in interleaved rounds: K = 4 replica processes x 1,000 requests
    over one RedisStore against one process x 4,000 with a memory store, both after the
    access token expired on the server; wall time from the go signal to the last reply."""
    run(["cargo", "build", "--release", "--features", "reqwest", "--example", "fleet"])
    exe = TARGET / "release" / "examples" / "fleet"
    sides = {"memory": ["--store", "memory", "--k", "1", "--n", "4000"],
             "redis": ["--store", "redis", "--k", "4", "--n", "1000"]}
    rounds = 3 if QUICK else 9
    walls = {"memory": [], "redis": []}
    calls = {"memory": [], "redis": []}
    ratios = []
    for r in range(rounds + 1):
        order = ["memory", "redis"] if r % 2 == 0 else ["redis", "memory"]
        got = {}
        for side in order:
            # Not checked: a storm with more than one token call exits 1, and is reported.
            out = run([str(exe), "--json"] + sides[side], check=False)
            j = json.loads(out.strip().splitlines()[-1])
            assert j["succeeded"] == 4000 and j["reuse_detections"] == 0, j
            got[side] = j
        if r == 0:
            continue  # warms the binary, page cache and redis-server's start
        for side in sides:
            walls[side].append(got[side]["wall_us"] / 1000)
            calls[side].append(got[side]["token_endpoint_calls"])
        ratios.append(got["redis"]["wall_us"] / got["memory"]["wall_us"])
    out = {"rounds": rounds, "memory_ms": median(walls["memory"]),
           "redis_ms": median(walls["redis"]), "ratio_per_round": median(ratios),
           "ratio_min": min(ratios), "ratio_max": max(ratios),
           "memory_calls": sorted(set(calls["memory"])), "redis_calls": sorted(set(calls["redis"]))}
    out["ratio"] = out["redis_ms"] / out["memory_ms"]
    print(out, flush=True)
    return out


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

    others = 3 if QUICK else 5
    redis_fast = [bench_json(run(["cargo", "bench", "-p", "reauth-redis", "--bench", "fast_path",
                                  "--"] + quick))["redis_fast_path"] for _ in range(others)]
    hyper_fast, grpc_fast = [], []
    for _ in range(others):
        j = bench_json(run(["cargo", "bench", "-p", "reauth-tower", "--bench", "fast_path",
                            "--"] + quick))
        hyper_fast.append(j["tower_hyper_fast_path"])
        grpc_fast.append(j["tower_grpc_fast_path"])
    fleet = fleet_storm()

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
    rf, hf, gf = across(redis_fast), across(hyper_fast), across(grpc_fast)

    def calls(values):
        return " or ".join(str(v) for v in values)

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
        "## Tower adapter (hyper-util, tonic) on loopback",
        "",
        f"Fast path, {hf['concurrency']} concurrent workers; each side shares one h2c connection with the other "
        f"(the raw side calls the very service the layer wraps), {hf['processes']} processes of {hf['rounds']} "
        f"interleaved rounds of {hf['requests_per_round']:,} requests (the process with the median ratio). "
        "hyper-util's client against the testkit's API (its request body type is the layer's `ReplayBody`, "
        "the raw side sending an empty one); "
        "tonic's generated client over one `Channel` against a tonic server in the same process that checks "
        "the bearer header, the raw side adding it with a tonic interceptor:",
        "",
        "| client | requests/s |",
        "|---|---:|",
        f"| raw hyper-util client with a static bearer header | {hf['raw_rps']:,.0f} |",
        f"| `AuthLayer` over the same client | {hf['reauth_rps']:,.0f} |",
        f"| ratio (goal >= 0.98) | {hf['ratio']:.3f} (processes {hf['ratio_min']:.3f} to {hf['ratio_max']:.3f}) |",
        f"| median of per-round ratios | {hf['ratio_per_round']:.3f} (processes {hf['per_round_min']:.3f} to "
        f"{hf['per_round_max']:.3f}) |",
        f"| raw tonic `Channel`, static header by an interceptor | {gf['raw_rps']:,.0f} |",
        f"| `AuthLayer` over the same channel | {gf['reauth_rps']:,.0f} |",
        f"| ratio (goal >= 0.98) | {gf['ratio']:.3f} (processes {gf['ratio_min']:.3f} to {gf['ratio_max']:.3f}) |",
        f"| median of per-round ratios | {gf['ratio_per_round']:.3f} (processes {gf['per_round_min']:.3f} to "
        f"{gf['per_round_max']:.3f}) |",
        "",
        "`cargo bench -p reauth-tower --bench fast_path` (`--part hyper` or `--part grpc` for one)",
        "",
        "## Redis store",
        "",
        f"Fast path of the async adapter with a `RedisStore` against the memory store, "
        f"{rf['concurrency']} concurrent workers, each client on its own h2c connection (the adapter builds its "
        f"own reqwest client), {rf['processes']} processes of "
        f"{rf['rounds']} interleaved rounds of {rf['requests_per_round']:,} requests (the process with the median ratio):",
        "",
        "| store | requests/s |",
        "|---|---:|",
        f"| memory store | {rf['memory_rps']:,.0f} |",
        f"| `RedisStore` (a real redis-server on loopback) | {rf['redis_rps']:,.0f} |",
        f"| ratio (goal >= 0.99) | {rf['ratio']:.3f} (processes {rf['ratio_min']:.3f} to {rf['ratio_max']:.3f}) |",
        f"| median of per-round ratios | {rf['ratio_per_round']:.3f} (processes {rf['per_round_min']:.3f} to "
        f"{rf['per_round_max']:.3f}) |",
        "",
        "`cargo bench -p reauth-redis --bench fast_path`",
        "",
        f"Fleet storm after expiry, {fleet['rounds']} interleaved rounds (median wall time from the go signal "
        "to the last process's answer and exit; every request succeeded, 0 reuse detections):",
        "",
        "| scenario | wall time | token-endpoint calls |",
        "|---|---:|---:|",
        f"| 1 process x 4,000 concurrent, memory store (baseline) | {fleet['memory_ms']:.1f} ms | {calls(fleet['memory_calls'])} |",
        f"| 4 replica processes x 1,000 concurrent, one `RedisStore` | {fleet['redis_ms']:.1f} ms | {calls(fleet['redis_calls'])} |",
        f"| ratio fleet / baseline (goal <= 1.5) | {fleet['ratio']:.3f} (per round: median {fleet['ratio_per_round']:.3f}, "
        f"{fleet['ratio_min']:.3f} to {fleet['ratio_max']:.3f}) | |",
        "",
        "`cargo run --release --example fleet -- --json --k 4 --n 1000` and "
        "`-- --json --store memory --k 1 --n 4000`",
        "",
        "## Instructions per request (deterministic)",
        "",
        "Each side of the fast paths alone under callgrind, client and server together",
        "(the server's share is the same for both sides), the fixed start-up cost subtracted.",
        "Unlike requests/s, these counts do not move with the machine's load.",
        "",
        "| adapter | raw client | reauth | ratio | extra per request |",
        "|---|---:|---:|---:|---:|",
        f"| reqwest, 64 concurrent, HTTP/2 | {ins['reqwest_raw']:,.0f} | {ins['reqwest_ours']:,.0f} | "
        f"{ins['reqwest_ours'] / ins['reqwest_raw']:.3f} | {ins['reqwest_ours'] - ins['reqwest_raw']:,.0f} |",
        f"| ureq, 1 thread, HTTP/1.1 | {ins['ureq_raw']:,.0f} | {ins['ureq_ours']:,.0f} | "
        f"{ins['ureq_ours'] / ins['ureq_raw']:.3f} | {ins['ureq_ours'] - ins['ureq_raw']:,.0f} |",
    ] + [
        f"| {label} | {ins[a]:,.0f} | {ins[b]:,.0f} | {ins[b] / ins[a]:.3f} (goal <= 1.01) | {ins[b] - ins[a]:,.0f} |"
        for label, a, b in (("tower over hyper-util, 64 concurrent, h2c", "hyper_raw", "hyper_ours"),
                            ("tower over a tonic `Channel`, 64 concurrent", "grpc_raw", "grpc_ours"))
    ] + [
        f"| reqwest, `RedisStore` against the memory store (as raw) | {ins['redis_memory']:,.0f} | "
        f"{ins['redis_redis']:,.0f} | {ins['redis_redis'] / ins['redis_memory']:.3f} | "
        f"{ins['redis_redis'] - ins['redis_memory']:,.0f} |",
        "",
        "`REAUTH_BENCH_ONLY=raw|ours` (e2e, tower's fast_path), `REAUTH_BENCH_ONLY=raw|wrapped` (throughput) and",
        "`REAUTH_BENCH_ONLY=memory|redis` (the Redis fast_path) run one side;",
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
