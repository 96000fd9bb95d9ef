#!/usr/bin/env python3
"""The decoders on real-world files nobody on the project made: the two
checkers of ../shared/external (1,045 JPEGs against djpeg and Pillow, with
--strict: no allow-list; 554 PNG, GIF, BMP and WebP files against the
sha256 of Pillow's convert("RGB") bytes and of its 224 px crop). Each runs
./clip decode and ./clip preprocess on every file and exits 1 on any
difference, crash, hang, or refusal of a file the reference reads. The
corpora live only in ../shared (CI has it); they are never copied here."""
import os
import subprocess
import sys

from common import CLIP, SHARED, blob_for, check, finish, skip

EXT = os.path.join(SHARED, "external")
if not os.path.isdir(EXT):
    skip("test_external", "../shared/external is absent (it ships with CI, not with the repository)")
weights = blob_for(224)


def checker(script, *args):
    cmd = [sys.executable, os.path.join(EXT, script), "--clip", CLIP, "--weights", weights, *args]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    # the tables and the failures; the progress lines are noise
    print("\n".join(line for line in out.splitlines() if not line.startswith("... ")))
    check(p.returncode == 0, f"{script} {' '.join(args)}: exit {p.returncode}")


checker("external_images.py", "--strict")
checker("external_formats.py", "--preprocess")
finish("test_external")
