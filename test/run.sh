#!/bin/sh
# make test: every test, in order; ends with a summary line
#   N passed, N failed, N skipped (and K parts skipped inside programs; see the SKIPPED lines)
# and exits non-zero if any failed. A program that exits 77 was skipped as a
# whole (it printed why); a line starting with SKIPPED from a program that
# ran is a part of it that was skipped. See test/README.md.
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${CLIP_TEST_OUT:-out}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT" || exit 1
log=$OUT/run-program.log
passed=0
failed=0
skipped=0
parts=0
failures=""
skips=""
run() {
    name=$1
    shift
    echo "== $name"
    # to the terminal as it comes, and to $log for the SKIPPED lines
    { "$@" 2>&1; echo $? > "$log.rc"; } | tee "$log"
    rc=$(cat "$log.rc")
    case $rc in
    0) passed=$((passed + 1)) ;;
    77) skipped=$((skipped + 1)); skips="$skips $name" ;;
    *) failed=$((failed + 1)); failures="$failures $name" ;;
    esac
    if [ "$rc" -ne 77 ]; then
        parts=$((parts + $(grep -c '^SKIPPED' "$log")))
    fi
}
skip() {
    echo "== $1"
    echo "SKIPPED $1: $2"
    skipped=$((skipped + 1))
    skips="$skips $1"
}
run test_ops ./test_ops
run test_ops_nc8 ./test_ops_nc8
run test_selftest "$PYTHON" test_selftest.py
run test_stages "$PYTHON" test_stages.py
run test_alloc sh alloc.sh
if [ -f /usr/share/unicode/UnicodeData.txt ]; then
    run gen_unicode "$PYTHON" ../tools/gen_unicode.py --check
else
    skip gen_unicode "/usr/share/unicode is absent (apt-get install unicode-data)"
fi
run test_reference "$PYTHON" test_reference.py
run test_models "$PYTHON" test_models.py
run test_tokenizer "$PYTHON" test_tokenizer.py
run test_preprocess "$PYTHON" test_preprocess.py
run test_jpeg "$PYTHON" test_jpeg.py
run test_png "$PYTHON" test_png.py
run test_gif "$PYTHON" test_gif.py
run test_bmp "$PYTHON" test_bmp.py
run test_webp "$PYTHON" test_webp.py
run test_external "$PYTHON" test_external.py
run test_cli "$PYTHON" test_cli.py
run test_collections "$PYTHON" test_collections.py
run test_python "$PYTHON" test_python.py
run test_threads "$PYTHON" test_threads.py
run test_install "$PYTHON" test_install.py
run test_blob "$PYTHON" test_blob.py
run test_hostile "$PYTHON" test_hostile.py
run test_export "$PYTHON" test_export.py
run test_dtypes "$PYTHON" test_dtypes.py
run test_hub "$PYTHON" test_hub.py
# every input that once crashed a fuzzer, and the seed corpora
[ -d fuzz/seeds ] || "$PYTHON" fuzz/make_seeds.py > /dev/null 2>&1
for t in $(make -s --no-print-directory -C .. fuzz-targets); do
    if [ -d fuzz/regressions/$t ] || [ -d fuzz/seeds/$t ]; then
        run "fuzz_replay_$t" sh -c "./fuzz/replay_$t \$(ls -d fuzz/regressions/$t/* fuzz/seeds/$t/* 2>/dev/null)"
    fi
done
run test_sanitizers sh sanitizers.sh
run test_valgrind sh valgrind.sh
run test_cross "$PYTHON" test_cross.py
run test_baremetal "$PYTHON" test_baremetal.py
run test_web "$PYTHON" test_web.py
run test_fullsize "$PYTHON" test_fullsize.py ${CLIP_FULLSIZE:-ViT-B-32 ViT-L-14-336}
rm -f "$log" "$log.rc"
echo "== summary"
[ -n "$failures" ] && echo "failed:$failures"
[ -n "$skips" ] && echo "skipped:$skips"
summary="$passed passed, $failed failed, $skipped skipped"
[ "$parts" -eq 1 ] && summary="$summary (and 1 part skipped inside a program; see the SKIPPED line)"
[ "$parts" -gt 1 ] && summary="$summary (and $parts parts skipped inside programs; see the SKIPPED lines)"
echo "$summary"
[ "$failed" -eq 0 ]
