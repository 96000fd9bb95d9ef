#!/bin/sh
# The allocation hook: (1) no library object calls the C library's
# allocator itself when built with -DCLIP_CUSTOM_ALLOC (every allocation
# goes through clip_malloc/clip_realloc/clip_free); (2) test_alloc runs the
# self-check through an arena of its own.
cd "$(dirname "$0")" || exit 1
CC=${CC:-cc}
out=${CLIP_TEST_OUT:-out}/alloc
rm -rf "$out" && mkdir -p "$out" || exit 1
sources=$(make -s -C .. sources | tr ' ' '\n' | sed 's|^|../|')
failed=0
for src in $sources; do
    obj=$out/$(echo "$src" | sed 's|^\.\./||' | tr / _).o
    $CC -O1 -std=c99 -DCLIP_CUSTOM_ALLOC -DCLIP_NO_MAIN -c -o "$obj" "$src" || exit 1
    direct=$(nm -u "$obj" | awk '{print $NF}' | grep -E '^(malloc|calloc|realloc|free|strdup|aligned_alloc|posix_memalign)$')
    if [ -n "$direct" ]; then
        echo "FAIL $src calls the C library's allocator directly:" $direct
        failed=1
    else
        echo "ok   $src allocates only through the hook"
    fi
done
$CC -O1 -std=c99 -Wall -Wextra -pedantic -DCLIP_CUSTOM_ALLOC -DCLIP_NO_MAIN -I.. -o "$out/test_alloc" test_alloc.c \
    $sources -lm || exit 1
"$out/test_alloc" || failed=1
exit $failed
