#!/bin/sh
# The CLI paths under valgrind's memcheck: no invalid access, no use of
# uninitialized memory, no definite leak.
cd "$(dirname "$0")" || exit 1
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED valgrind: not installed (apt-get install valgrind)"
    exit 0
fi
SHARED=${CLIP_SHARED:-../../shared}
if [ ! -d "$SHARED/fixtures" ]; then
    echo "SKIPPED valgrind: ../shared/fixtures is absent"
    exit 0
fi
# valgrind does not know AVX-512: a generic-architecture build of its own
${CC:-cc} -O1 -g -std=c99 -o out/clip-vg ../clip.c ../tokenizer.c ../image.c -lm || exit 1
model=out/tiny-gelu.bin
[ -f $model ] || ${PYTHON:-/usr/bin/python3} ../export_weights.py -q "$SHARED/fixtures/models/tiny-gelu" $model || exit 1
printf 'cat\r\ndog\n\n bird \n' > out/vg-labels.txt
failed=0
vg() {
    want=$1
    shift
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        out/clip-vg "$@" > out/vg.out 2> out/vg.err
    rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL valgrind: clip $*"
        head -20 out/vg.err
        failed=1
    else
        echo "ok   valgrind: clip $* (exit $rc)"
    fi
}
vg 0 $model "$SHARED/fixtures/images/chelsea_q90_420.jpg" out/vg-labels.txt --json
vg 0 embed $model "$SHARED/fixtures/images/chelsea_prog.jpg" "$SHARED/fixtures/images/page.pgm"
vg 0 embed $model --text "a photo of a cat" "Ελληνικά 中文 🐱"
vg 0 tokenize $model "İSTANBUL <|endoftext|> ok"
vg 0 preprocess $model "$SHARED/fixtures/images/odd_17x9.jpg" out/vg-crop.ppm
vg 0 decode "$SHARED/fixtures/images/chelsea_restart.jpg" out/vg-dec.ppm
vg 1 $model "$SHARED/fixtures/images/missing.jpg" out/vg-labels.txt
vg 1 out/vg-labels.txt "$SHARED/fixtures/images/chelsea.ppm" out/vg-labels.txt
vg 0 decode "$SHARED/fixtures/images/chelsea_arith.jpg" out/vg-dec.ppm
# a JPEG cut short: the error leaves the row pipeline midway
head -c 6000 "$SHARED/fixtures/images/chelsea_q90_420.jpg" > out/vg-cut.jpg
vg 1 decode out/vg-cut.jpg out/vg-dec.ppm
vg 1 preprocess $model out/vg-cut.jpg out/vg-crop.ppm
exit $failed
