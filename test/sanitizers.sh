#!/bin/sh
# The suite once more, on a build with AddressSanitizer + UndefinedBehaviorSanitizer,
# made through the Makefile's own CC/CFLAGS/LDFLAGS override (as a user would).
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
if ! command -v clang >/dev/null 2>&1; then
    echo "SKIPPED sanitizers: clang not installed (apt-get install clang)"
    exit 0
fi
dir=out/asan
rm -rf $dir && mkdir -p $dir/test && cp ../*.c ../*.h ../Makefile $dir/ && cp tok_batch.c $dir/test/
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
make -s -C $dir CC=clang CFLAGS="-O1 -g $SAN -std=c99 -Wall -Wextra -pedantic" LDFLAGS="$SAN" clip test/tok_batch || exit 1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:exitcode=99
failed=0
for t in test_models test_tokenizer test_preprocess test_jpeg test_cli test_blob test_hostile; do
    echo "-- $t under ASan+UBSan"
    CLIP=$dir/clip CLIP_TOK_BATCH=$dir/test/tok_batch CLIP_JPEG_COUNT=60 "$PYTHON" $t.py > $dir/$t.log 2>&1 || failed=1
    tail -n 1 $dir/$t.log
    grep -h -m3 -E "ERROR: AddressSanitizer|runtime error|LeakSanitizer" $dir/$t.log && failed=1
done
exit $failed
