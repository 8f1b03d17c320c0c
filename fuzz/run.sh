#!/usr/bin/env bash
# Checks the seed corpus (cargo test), then fuzzes every target for a bounded time; exits
# non-zero on a crash, a hang, a failed check or a build failure. Without a nightly
# toolchain it says so and exits 0: fuzzing needs nightly.
#
#   fuzz/run.sh                        # every target, 60 s each
#   FUZZ_SECONDS=600 fuzz/run.sh machine
#
# Environment:
#   FUZZ_SECONDS    run time per target (libFuzzer -max_total_time), default 60
#   FUZZ_SANITIZER  cargo-fuzz sanitizer, default none (the code under test is safe Rust;
#                   use `address` to check dependencies' unsafe code too, ~3x slower)
#
# Each target reads its committed seeds (fuzz/corpus/<target>, never written to) and its
# dictionary (fuzz/dict/<target>.dict, if any), and grows a working corpus in
# fuzz/target/corpus/<target>. A crash lands in fuzz/artifacts/<target>/; the log in
# fuzz/target/logs/<target>.log says how to reproduce it.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
all_targets=(machine token_response challenge custom_protocol store_file sim)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain (cargo +nightly --version failed); fuzzing skipped"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    timeout 1800 cargo install cargo-fuzz --locked
fi
if [ -z "${CXX:-}" ] && ! command -v c++ >/dev/null && ! command -v clang++ >/dev/null; then
    echo "fuzz: libfuzzer-sys needs a C++ compiler (set CXX or install g++/clang++)" >&2
    exit 1
fi

echo "fuzz: $(cargo +nightly --version); $(cargo +nightly fuzz --version)"
echo "fuzz: checking the seed corpus and the oracles (cargo test)"
timeout 1800 cargo +nightly test --quiet
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
for t in "${targets[@]}"; do
    timeout 1800 cargo +nightly fuzz build --sanitizer "$sanitizer" "$t"
done

mkdir -p target/logs
failed=()
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t"
    log="target/logs/$t.log"
    echo "fuzz: $t for ${seconds}s"
    # The outer timeout guards against libFuzzer itself never stopping; -timeout turns one
    # slow input (a hang in the code under test) into a reported crash.
    dict=()
    if [ -f "dict/$t.dict" ]; then dict=(-dict="dict/$t.dict"); fi
    status=0
    timeout --kill-after=30 "$((seconds + 300))" \
        cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        >"$log" 2>&1 || status=$?
    # A crash while loading the seeds leaves no stats: report "?" rather than stop here.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1) || true
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1) || true
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2) || true
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2) || true
    corpus=$(find "target/corpus/$t" -type f | wc -l) || true
    echo "fuzz: $t: ${execs:-?} execs (${rate:-?}/s), cov ${cov:-?} edges, ft ${ft:-?}, working corpus $corpus files, exit $status"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        echo "fuzz: $t FAILED; what failed, then the last lines of fuzz/$log:" >&2
        grep -m2 -A4 -E 'panicked at|ERROR: libFuzzer|ALARM:' "$log" >&2 || true
        tail -n 60 "$log" >&2
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes or hangs in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no crash in ${targets[*]}"
