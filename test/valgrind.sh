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
# a quarter-size file: the weight panels expanded to float32 as they are used
q8=$("$PYTHON" common.py typed tiny-gelu q8) || exit 1
vg 0 "$q8" $img/chelsea_q90_420.jpg "$OUT/vg-labels.txt" --json
vg 0 tokenize "$model" "İSTANBUL <|endoftext|> ok"
vg 0 preprocess "$model" $img/odd_17x9.jpg "$OUT/vg-crop.ppm"
vg 0 decode $img/chelsea_restart.jpg "$OUT/vg-dec.ppm"
vg 1 "$model" $img/missing.jpg "$OUT/vg-labels.txt"
vg 1 "$OUT/vg-labels.txt" $img/chelsea.ppm "$OUT/vg-labels.txt"
vg 0 decode $img/chelsea_arith.jpg "$OUT/vg-dec.ppm"
# collections: several images (one missing) with a prompt ensemble, embed --npy,
# an index made, updated, searched by text and by image, and merged
vg 1 "$model" $img/chelsea_q90_420.jpg $img/missing.jpg $img/page.pgm "$OUT/vg-labels.txt" --template "a {}" \
    --template "the {}."
vg 0 embed "$model" $img/odd_17x9.jpg $img/coffee.ppm --npy "$OUT/vg-features.npy"
rm -rf "$OUT/vg-index" "$OUT/vg-merged"
vg 0 index "$model" "$OUT/vg-index" $img/chelsea_q90_420.jpg $img/odd_17x9.jpg $img/page.pgm "$OUT/vg-labels.txt"
vg 0 index "$model" "$OUT/vg-index" $img/coffee.ppm -q
vg 0 search "$model" "$OUT/vg-index" "a cat" --top 2 --json
vg 0 search "$model" "$OUT/vg-index" --image $img/coffee.ppm
vg 0 index --merge "$OUT/vg-merged" "$OUT/vg-index" -q
vg 1 search "$model" "$OUT/vg-labels.txt" "a cat"
# a JPEG cut short: the error leaves the row pipeline midway
head -c 6000 $img/chelsea_q90_420.jpg > "$OUT/vg-cut.jpg"
vg 1 decode "$OUT/vg-cut.jpg" "$OUT/vg-dec.ppm"
vg 1 preprocess "$model" "$OUT/vg-cut.jpg" "$OUT/vg-crop.ppm"
# a grayscale JPEG with 2x2 sampling: its one-component scan codes fewer
# block rows than the streaming ring's MCU rows hold
vg 0 decode fuzz/regressions/image/jpeg-gray-2x2-16x24.jpg "$OUT/vg-dec.ppm"
vg 0 preprocess "$model" fuzz/regressions/image/jpeg-gray-2x2-16x24.jpg "$OUT/vg-crop.ppm"
# the recovery paths (junk between segments, a corrupt scan) and CMYK, made
# by hostile_jpeg.py
if "$PYTHON" common.py hostile jpeg "$OUT/vg-hostile" >/dev/null 2>&1; then
    for f in "$OUT"/vg-hostile/ok-*.jpg; do
        [ -e "$f" ] && vg 0 decode "$f" "$OUT/vg-dec.ppm"
    done
fi
# PNG (RGB, 16-bit gray, palette with tRNS), GIF, BMP and WebP (lossy with
# alpha, lossless), written here by Pillow
if "$PYTHON" - "$OUT" <<'PY' >/dev/null 2>&1
import sys
from PIL import Image
out = sys.argv[1]
im = Image.open("data/images/chelsea.ppm").crop((0, 0, 67, 41))
im.save(out + "/vg-a.png")
im.convert("P").save(out + "/vg-p.png", transparency=3)
Image.frombytes("I;16", (23, 9), (bytes(range(256)) * 2)[:23 * 9 * 2]).save(out + "/vg-16.png")
im.convert("P").save(out + "/vg.gif", interlace=True)
im.convert("P").save(out + "/vg.bmp")
im.convert("RGBA").save(out + "/vg-lossy.webp", quality=60)
im.save(out + "/vg-lossless.webp", lossless=True)
PY
then
    for f in vg-a.png vg-p.png vg-16.png vg.gif vg.bmp vg-lossy.webp vg-lossless.webp; do
        vg 0 decode "$OUT/$f" "$OUT/vg-dec.ppm"
    done
    vg 0 preprocess "$model" "$OUT/vg-lossy.webp" "$OUT/vg-crop.ppm"
    head -c 300 "$OUT/vg-a.png" > "$OUT/vg-cut.png"
    vg 1 decode "$OUT/vg-cut.png" "$OUT/vg-dec.ppm"
else
    echo "SKIPPED valgrind on PNG, GIF, BMP, WebP: Pillow is not installed (apt-get install python3-pil)"
fi
# the built-in self-check: its model, JPEG and every stage
vg 0 selftest
exit $failed
