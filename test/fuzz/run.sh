#!/bin/sh
# Run one fuzzer for a while:   test/fuzz/run.sh TARGET SECONDS
#   TARGET: image, png, gif, bmp, webp, vp8, tokenizer, blob, labels or index. Builds with `make fuzz` (clang,
#   libFuzzer, ASan, UBSan), seeds from make_seeds.py, keeps its corpus in
#   test/fuzz/corpus/TARGET and writes crashes to test/fuzz/crashes/; a crash
#   that is fixed belongs in test/fuzz/regressions/TARGET (make test replays it).
set -e
cd "$(dirname "$0")/../.."
target=${1:?usage: test/fuzz/run.sh TARGET SECONDS (make fuzz-targets lists them)}
secs=${2:-60}
make -s fuzz
[ -d test/fuzz/seeds/$target ] || ${PYTHON:-python3} test/fuzz/make_seeds.py
mkdir -p test/fuzz/corpus/$target test/fuzz/crashes
if [ "$target" = tokenizer ] && [ -z "$CLIP_FUZZ_MODEL" ]; then
    # the real merges: the generated tiny-quickgelu model (test/common.py)
    CLIP_FUZZ_MODEL=$(${PYTHON:-python3} test/common.py model tiny-quickgelu) && export CLIP_FUZZ_MODEL
fi
./test/fuzz/fuzz_$target -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix=test/fuzz/crashes/$target- test/fuzz/corpus/$target test/fuzz/seeds/$target
