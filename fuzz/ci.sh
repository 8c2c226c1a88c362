#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 20) on a
# copy of its seed corpus (fuzz/corpus/<target>/, kept in the repository);
# fails on any crash, leak or timeout libFuzzer reports. See
# docs/reliability.md, "Fuzzing".
#
#   fuzz/ci.sh                     # every target, 20 s each
#   FUZZ_SECONDS=3600 fuzz/ci.sh   # a long run
#   fuzz/ci.sh notification config # some targets only
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-20}"

# cargo-fuzz needs nightly features (-Z sanitizer): the nightly toolchain
# when rustup has one, else stable with RUSTC_BOOTSTRAP=1.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list | grep -vx seed_corpus)
fi

echo "fuzz: building ${#targets[@]} target(s) with $("${cargo[@]}" --version)"
"${cargo[@]}" fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$work/$target/"
    fi
    log="$work/$target.log"
    echo "fuzz: $target for ${seconds} s"
    if "${cargo[@]}" fuzz run "$target" "$work/$target" -- \
        -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units)' "$log" | tail -n 2 || true
    else
        tail -n 60 "$log"
        echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s) ran ${seconds} s each without a crash"
