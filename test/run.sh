#!/bin/sh
# make test: every test, in order; prints a summary line and exits non-zero
# if any failed. Tests that need ../shared print SKIPPED when it is absent.
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
passed=0
failed=0
failures=""
run() {
    name=$1
    shift
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures $name"
    fi
}
run test_ops ./test_ops
if [ -f /usr/share/unicode/UnicodeData.txt ]; then
    run gen_unicode "$PYTHON" gen_unicode.py --check
else
    echo "SKIPPED gen_unicode --check: /usr/share/unicode is absent (apt-get install unicode-data)"
fi
run test_reference "$PYTHON" test_reference.py
run test_models "$PYTHON" test_models.py
run test_tokenizer "$PYTHON" test_tokenizer.py
run test_preprocess "$PYTHON" test_preprocess.py
run test_jpeg "$PYTHON" test_jpeg.py
run test_cli "$PYTHON" test_cli.py
run test_blob "$PYTHON" test_blob.py
run test_hostile "$PYTHON" test_hostile.py
run test_export "$PYTHON" test_export.py
run test_hub "$PYTHON" test_hub.py
# every input that once crashed a fuzzer, and the seed corpora
[ -d fuzz/seeds ] || "$PYTHON" fuzz/make_seeds.py > /dev/null 2>&1
for t in image tokenizer blob labels; do
    if [ -d fuzz/regressions/$t ] || [ -d fuzz/seeds/$t ]; then
        run "fuzz_replay_$t" sh -c "./fuzz/replay_$t \$(ls -d fuzz/regressions/$t/* fuzz/seeds/$t/* 2>/dev/null)"
    fi
done
run test_sanitizers sh sanitizers.sh
run test_valgrind sh valgrind.sh
run test_cross "$PYTHON" test_cross.py
run test_fullsize "$PYTHON" test_fullsize.py ${CLIP_FULLSIZE:-ViT-B-32 ViT-L-14-336}
echo "== summary"
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
