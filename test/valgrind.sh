#!/bin/sh
# The CLI paths under valgrind's memcheck: no invalid access, no use of
# uninitialized memory, no definite leak. A build of its own from the
# Makefile's source list, the generated tiny-gelu model, the test images.
# Exits 77 (skipped) when valgrind is not installed.
cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=${CLIP_TEST_OUT:-out}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED valgrind: not installed (apt-get install valgrind)"
    exit 77
fi
mkdir -p "$OUT" || exit 1
srcs=$(make -s --no-print-directory -C .. sources) || { echo "FAIL valgrind: make sources"; exit 1; }
# valgrind does not know AVX-512: a generic-architecture build of its own
${CC:-cc} -O1 -g -std=c99 -o "$OUT/clip-vg" $(for f in $srcs; do printf '../%s ' "$f"; done) -lm || exit 1
model=$("$PYTHON" common.py model tiny-gelu) || exit 1
img=data/images
printf 'cat\r\ndog\n\n bird \n' > "$OUT/vg-labels.txt"
failed=0
vg() {
    want=$1
    shift
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        "$OUT/clip-vg" "$@" > "$OUT/vg.out" 2> "$OUT/vg.err"
    rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL valgrind: clip $*"
        head -20 "$OUT/vg.err"
        failed=1
    else
        echo "ok   valgrind: clip $* (exit $rc)"
    fi
}
vg 0 "$model" $img/chelsea_q90_420.jpg "$OUT/vg-labels.txt" --json
vg 0 embed "$model" $img/chelsea_prog.jpg $img/page.pgm
vg 0 embed "$model" --text "a photo of a cat" "Ελληνικά 中文 🐱"
vg 0 tokenize "$model" "İSTANBUL <|endoftext|> ok"
vg 0 preprocess "$model" $img/odd_17x9.jpg "$OUT/vg-crop.ppm"
vg 0 decode $img/chelsea_restart.jpg "$OUT/vg-dec.ppm"
vg 1 "$model" $img/missing.jpg "$OUT/vg-labels.txt"
vg 1 "$OUT/vg-labels.txt" $img/chelsea.ppm "$OUT/vg-labels.txt"
vg 0 decode $img/chelsea_arith.jpg "$OUT/vg-dec.ppm"
# a JPEG cut short: the error leaves the row pipeline midway
head -c 6000 $img/chelsea_q90_420.jpg > "$OUT/vg-cut.jpg"
vg 1 decode "$OUT/vg-cut.jpg" "$OUT/vg-dec.ppm"
vg 1 preprocess "$model" "$OUT/vg-cut.jpg" "$OUT/vg-crop.ppm"
# the built-in self-check: its model, JPEG and every stage
vg 0 selftest
exit $failed
