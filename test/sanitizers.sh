#!/bin/sh
# The suite once more, on a build with AddressSanitizer + UndefinedBehaviorSanitizer,
# made through the Makefile's own CC/CFLAGS/LDFLAGS override (as a user would),
# in a scratch copy of the sources the Makefile lists (`make sources`).
# Exits 77 (skipped) when clang is not installed.
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${CLIP_TEST_OUT:-out}
if ! command -v clang >/dev/null 2>&1; then
    echo "SKIPPED sanitizers: clang not installed (apt-get install clang)"
    exit 77
fi
dir=$OUT/asan
srcs=$(make -s --no-print-directory -C .. sources) || { echo "FAIL sanitizers: make sources"; exit 1; }
rm -rf "$dir" && mkdir -p "$dir/test" || exit 1
# the sources, every header beside them and in generated/, the Makefile, the C test driver
for f in Makefile $srcs test/tok_batch.c; do
    mkdir -p "$dir/$(dirname "$f")" && cp "../$f" "$dir/$f" || exit 1
done
for d in . $(for f in $srcs; do dirname "$f"; done | sort -u) generated; do
    [ -d "../$d" ] || continue
    mkdir -p "$dir/$d"
    for h in "../$d"/*.h; do
        [ -f "$h" ] && { cp "$h" "$dir/$d/" || exit 1; }
    done
done
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
make -s -C "$dir" CC=clang CFLAGS="-O1 -g $SAN -std=c99 -Wall -Wextra -pedantic" LDFLAGS="$SAN" clip test/tok_batch || exit 1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:exitcode=99
failed=0
for t in test_models test_tokenizer test_preprocess test_jpeg test_png test_gif test_bmp test_webp test_cli test_collections \
         test_blob test_dtypes test_hostile; do
    echo "-- $t under ASan+UBSan"
    CLIP=$dir/clip CLIP_TOK_BATCH=$dir/test/tok_batch CLIP_JPEG_COUNT=60 CLIP_PNG_COUNT=40 CLIP_GIF_COUNT=60 \
        CLIP_BMP_COUNT=60 CLIP_WEBP_COUNT=60 "$PYTHON" $t.py > "$dir/$t.log" 2>&1
    rc=$?
    [ $rc -eq 77 ] || tail -n 1 "$dir/$t.log"
    # what was skipped in there (the program, or parts of it) is skipped here too
    grep '^SKIPPED' "$dir/$t.log" | sed 's/^SKIPPED /SKIPPED under ASan+UBSan: /'
    [ $rc -eq 0 ] || [ $rc -eq 77 ] || failed=1
    grep -h -m3 -E "ERROR: AddressSanitizer|runtime error|LeakSanitizer" "$dir/$t.log" && failed=1
done
echo "-- clip selftest under ASan+UBSan"
if "$dir/clip" selftest > "$dir/selftest.log" 2>&1; then
    tail -n 1 "$dir/selftest.log"
else
    echo "FAIL clip selftest under ASan+UBSan"
    tail -n 5 "$dir/selftest.log"
    failed=1
fi
grep -h -m3 -E "ERROR: AddressSanitizer|runtime error|LeakSanitizer" "$dir/selftest.log" && failed=1
exit $failed
