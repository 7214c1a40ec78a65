#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another, and prints the
# executions, speed and corpus size of each. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); not part of .ci/run, whose machine may have no nightly.
#
# The working corpus is fuzz/corpus/<target>/, seeded from the committed fuzz/seeds/<target>/;
# crashes land in fuzz/artifacts/<target>/, each run's output in fuzz/logs/<target>.log. All
# three are ignored by git: minimised crashes go to tests/data/fuzz-regressions/<target>/.
# Builds and runs are niced: the machines this runs on are shared with other builds.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail

seconds=${1:-600}
shift || true
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(prepare dropbox_responses api_arg paths config)
fi

# Every target built at once, before the clock of any starts; then the binaries are run
# directly, so that a source edited meanwhile does not rebuild in the middle of the runs.
nice -n 10 cargo +nightly fuzz build
triple=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin=target/$triple/release

mkdir -p logs
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    cp -n "seeds/$t"/* "corpus/$t/" 2>/dev/null || true
    echo "== $t: ${seconds}s" >&2
    # 2 GiB is the memory budget of one decode plus the process (prepare's decode limit is
    # 512 MiB of pixels); 60 s for one input is far beyond any honest photo of the seed sizes.
    if ! nice -n 10 "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 "corpus/$t" >"logs/$t.log" 2>&1; then
        failed+=("$t")
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
    corpus=$(find "corpus/$t" -type f | wc -l)
    summary+=("$(printf '%-18s %12s execs %8s exec/s %6s corpus files' "$t" "${runs:-?}" "${speed:-?}" "$corpus")")
    echo "${summary[-1]}" >&2
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed or failed: ${failed[*]} (see fuzz/logs/ and fuzz/artifacts/)"
    exit 1
fi
