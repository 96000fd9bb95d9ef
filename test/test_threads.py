#!/usr/bin/env python3
"""One model, many threads: test_threads.c (threads on one clip_model, each
with its own clip_context) must give every thread the bytes one thread
computes, in the normal build (OpenMP inside each call) and under clang's
ThreadSanitizer (without OpenMP), on both generated tiny models. A
negative control shares one context between the threads: ThreadSanitizer
must report that race, or the sanitizer run proves nothing."""
import os
import shutil
import subprocess

from common import OUT, ROOT, check, finish, image, skipped, sources, tiny_model, typed_model

EXE = os.path.join(ROOT, "test", "test_threads")
IMAGES = [image(n) for n in ("chelsea_q90_420.jpg", "rocket.jpg", "coffee.ppm", "chelsea_prog.jpg")]
models = [tiny_model(m)[1] for m in ("tiny-quickgelu", "tiny-gelu")]
# a q8 file: each context expands weight panels into buffers of its own
models.append(typed_model("tiny-gelu", "q8"))


def run(exe, model, threads, rounds, env=None):
    p = subprocess.run([exe, model, str(threads), str(rounds)] + IMAGES, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=1800, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace").strip(), p.stderr.decode("utf-8", "replace")


# the normal build (make test builds test/test_threads)
if not os.path.exists(EXE):
    subprocess.run(["make", "-s", "-C", ROOT, "test/test_threads"], check=False)
for model in models:
    for threads in (2, 4, 8):
        rc, out, err = run(EXE, model, threads, 30)
        check(rc == 0, f"{os.path.basename(model)}: {out or err.strip()[:300]}")
        if rc:
            print(err.strip()[:2000])

# ThreadSanitizer
if shutil.which("clang"):
    d = os.path.join(OUT, "threads")
    os.makedirs(d, exist_ok=True)
    src = [os.path.join(ROOT, f) for f in sources()]
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    built = {}
    for name, extra in (("tsan", []), ("tsan_shared", ["-DSHARE_ONE_CONTEXT"])):
        exe = os.path.join(d, name)
        p = subprocess.run(["clang", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-O1", "-g", "-fsanitize=thread",
                            "-DCLIP_NO_MAIN", "-I", ROOT] + extra +
                           ["-o", exe, os.path.join(ROOT, "test", "test_threads.c")] + src + ["-pthread", "-lm"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        msg = p.stdout.decode("utf-8", "replace").strip()
        check(p.returncode == 0 and not msg, f"ThreadSanitizer build ({name}) compiles without warnings {msg[:300]}")
        built[name] = p.returncode == 0
    if built["tsan"]:
        for model in models:
            rc, out, err = run(os.path.join(d, "tsan"), model, 4, 12, env)
            races = err.count("WARNING: ThreadSanitizer")
            check(rc == 0 and races == 0,
                  f"ThreadSanitizer, {os.path.basename(model)}: {out or 'exit %d' % rc}; {races} reports")
            if rc:
                print(err.strip()[:3000])
    if built["tsan_shared"]:
        rc, out, err = run(os.path.join(d, "tsan_shared"), models[0], 4, 12, env)
        check(rc == 66 and "data race" in err,
              f"negative control: threads sharing one context are reported as a data race (exit {rc})")
else:
    skipped("ThreadSanitizer", "clang is not installed (apt-get install clang)")
finish("test_threads")
