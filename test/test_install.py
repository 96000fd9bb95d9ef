#!/usr/bin/env python3
"""The library installed the usual way: `make install` into a scratch prefix
(and staged with DESTDIR), every file where it belongs, a C program built
against the installed copy with `cc prog.c $(pkg-config --cflags --libs
clip)` (shared, and static from libclip.a) giving the CLI's numbers, the
shared library exporting exactly clip.h's functions under a versioned
soname, the man page well-formed and naming every command and option of
`clip --help`, the versions consistent, and `make uninstall` removing it
all."""
import json
import os
import re
import shutil
import subprocess

from common import CLIP, OUT, ROOT, arrays, check, crop, finish, image, skipped, tiny_model

D = os.path.join(OUT, "install")
PREFIX = os.path.join(D, "prefix")
shutil.rmtree(D, ignore_errors=True)
os.makedirs(D)


def sh(args, env=None, cwd=None):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, timeout=1800)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def make(*args):
    return sh(["make", "-s", "--no-print-directory", "-C", ROOT] + list(args))


makefile = open(os.path.join(ROOT, "Makefile")).read()
header = open(os.path.join(ROOT, "clip.h")).read()
version = re.search(r"^VERSION = (\S+)", makefile, re.M).group(1)
soversion = re.search(r"^SOVERSION = (\S+)", makefile, re.M).group(1)
check(f'#define CLIP_VERSION "{version}"' in header and f"#define CLIP_VERSION_MAJOR {soversion}" in header,
      f"Makefile VERSION {version} / SOVERSION {soversion} match clip.h")
rc, out, _ = sh([CLIP, "--version"])
check(rc == 0 and out.startswith(f"clip {version} "), f"clip --version: {out.strip()}")

# ---- make install into a prefix ----
rc, out, err = make("install", f"PREFIX={PREFIX}")
check(rc == 0, f"make install PREFIX=... {err.strip()[-500:]}")
files = {"bin/clip": 0o755, "bin/clip-export": 0o755, "lib/libclip.a": 0o644, f"lib/libclip.so.{version}": 0o755,
         "include/clip.h": 0o644, "lib/pkgconfig/clip.pc": 0o644, "share/man/man1/clip.1": 0o644}
for f, mode in files.items():
    p = os.path.join(PREFIX, f)
    check(os.path.isfile(p) and (os.stat(p).st_mode & 0o777) == mode, f"installed {f} (mode {oct(mode)})")
for link, target in ((f"lib/libclip.so.{soversion}", f"libclip.so.{version}"),
                     ("lib/libclip.so", f"libclip.so.{soversion}")):
    p = os.path.join(PREFIX, link)
    check(os.path.islink(p) and os.readlink(p) == target, f"{link} -> {target}")

# the soname and the exported symbols: exactly the functions clip.h declares
so = os.path.join(PREFIX, "lib", f"libclip.so.{version}")
rc, out, _ = sh(["readelf", "-d", so])
check(f"[libclip.so.{soversion}]" in out, f"soname libclip.so.{soversion}")
declared = set(re.findall(r"^CLIP_API [^(]*?\b(clip_\w+)\(", header, re.M))
rc, out, _ = sh(["nm", "-D", "--defined-only", so])
exported = {ln.split()[-1] for ln in out.splitlines() if ln.split() and ln.split()[1] in "TWBDRV"}
check(declared and exported == declared,
      f"libclip.so exports exactly clip.h's {len(declared)} functions "
      f"(extra {sorted(exported - declared)[:5]}, missing {sorted(declared - exported)[:5]})")

# ---- a program built against the installed copy ----
PROG = r'''#include <clip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* features of an image and a text, printed as clip embed prints them */
int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    clip_model *m = clip_model_load(argv[1], err);
    clip_image crop;
    int32_t ids[77];
    float *f;
    int E, n, i;
    if (argc != 4 || !m) { fprintf(stderr, "%s\n", m ? "usage" : err); return 1; }
    E = clip_model_config(m)->projection_dim;
    f = malloc((size_t)E * sizeof(float));
    if (clip_preprocess_file(m, argv[2], &crop, err) || clip_encode_image(m, &crop, f, err)) {
        fprintf(stderr, "%s\n", err); return 1;
    }
    for (i = 0; i < E; i++) printf("%s%.9g", i ? ", " : "[", (double)f[i]);
    printf("]\n");
    n = clip_tokenize(m, argv[3], strlen(argv[3]), ids, 77, err);
    if (n < 0 || clip_encode_text(m, ids, &n, 1, 77, f, err)) { fprintf(stderr, "%s\n", err); return 1; }
    for (i = 0; i < E; i++) printf("%s%.9g", i ? ", " : "[", (double)f[i]);
    printf("]\n");
    clip_image_free(&crop);
    free(f);
    clip_model_free(m);
    return 0;
}
'''
prog_c = os.path.join(D, "prog.c")
with open(prog_c, "w") as fh:
    fh.write(PROG)
env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(PREFIX, "lib", "pkgconfig"))
model = tiny_model("tiny-quickgelu")[1]
jpeg = image("chelsea_q90_420.jpg")
rc, ref, err = sh([CLIP, "embed", model, jpeg])
rc2, ref_t, err2 = sh([CLIP, "embed", model, "--text", "a photo of a cat"])
want = list(arrays(ref.encode())) + list(arrays(ref_t.encode()))
if not shutil.which("pkg-config"):
    skipped("pkg-config builds", "pkg-config is not installed (apt-get install pkg-config)")
else:
    rc, flags, err = sh(["pkg-config", "--cflags", "--libs", "clip"], env=env)
    check(rc == 0 and f"-I{PREFIX}/include" in flags and "-lclip" in flags, f"pkg-config --cflags --libs clip: "
          f"{flags.strip()} {err.strip()}")
    rc, cflags, _ = sh(["pkg-config", "--cflags", "clip"], env=env)
    rc, static_flags, err = sh(["pkg-config", "--static", "--libs", "clip"], env=env)
    builds = {"shared": flags.split(),
              "static": cflags.split() + [a if a != "-lclip" else os.path.join(PREFIX, "lib", "libclip.a")
                                          for a in static_flags.split() if not a.startswith("-L")]}
    for kind, fl in builds.items():
        exe = os.path.join(D, "prog_" + kind)
        rc, out, err = sh(["cc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-o", exe, prog_c] + fl, env=env)
        check(rc == 0 and not err.strip(), f"cc prog.c {' '.join(fl)} ({kind}) {err.strip()[:300]}")
        if rc:
            continue
        rc, out, _ = sh(["readelf", "-d", exe])
        needs = "libclip.so" in out
        check(needs == (kind == "shared"), f"the {kind} program {'needs' if needs else 'does not need'} libclip.so")
        # the installed library, not the tree's: only the prefix on the search path
        run_env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(PREFIX, "lib"))
        rc, out, err = sh([exe, model, jpeg, "a photo of a cat"], env=run_env)
        got = list(arrays(out.encode())) if rc == 0 else []
        same = rc == 0 and len(got) == 2 and all((a == b).all() for a, b in zip(got, want))
        check(same, f"the {kind} program's image and text features equal clip embed's exactly {err.strip()[:200]}")

# the exporter as a command (run with a Python that has numpy, as a user's PATH would give)
rc, out, err = sh(["/usr/bin/python3", os.path.join(PREFIX, "bin", "clip-export"), "--help"])
check(rc == 0 and "usage" in out.lower(), "clip-export --help")
with open(os.path.join(PREFIX, "bin", "clip-export")) as fh:
    check(fh.readline().startswith("#!/usr/bin/env python3"), "clip-export starts with #!/usr/bin/env python3")
rc, out, err = sh([os.path.join(PREFIX, "bin", "clip"), "selftest"])
check(rc == 0, "the installed clip passes its selftest")

# ---- the man page ----
man = os.path.join(PREFIX, "share", "man", "man1", "clip.1")
if shutil.which("groff"):
    rc, out, err = sh(["groff", "-man", "-Tutf8", "-ww", "-z", man])
    check(rc == 0 and not err.strip(), f"groff -man -ww: no warnings {err.strip()[:300]}")
    rc, text, err = sh(["groff", "-man", "-Tutf8", "-P", "-cbou", man])
    text = text.replace("\u2010", "-").replace("\u2212", "-")
    rc, usage, _ = sh([CLIP, "--help"])
    words = set(re.findall(r"^\s+clip (\w+)", usage, re.M)) | set(re.findall(r"(--?[a-z][a-z-]*)", usage))
    missing = sorted(w for w in words if w not in text)
    check(words and not missing, f"the man page names every command and option of clip --help ({len(words)}); "
          f"missing {missing}")
else:
    skipped("man page", "groff is not installed (apt-get install groff-base)")

# ---- DESTDIR staging: the files go under DESTDIR, the paths inside name PREFIX ----
stage = os.path.join(D, "stage")
rc, out, err = make("install", f"DESTDIR={stage}", "PREFIX=/usr")
pc = os.path.join(stage, "usr", "lib", "pkgconfig", "clip.pc")
ok = rc == 0 and os.path.isfile(pc) and "prefix=/usr\n" in open(pc).read() and stage not in open(pc).read()
check(ok and os.path.isfile(os.path.join(stage, "usr", "include", "clip.h")),
      "make install DESTDIR=stage PREFIX=/usr: files under stage, clip.pc says /usr")

# ---- uninstall ----
for args, root in (([f"PREFIX={PREFIX}"], PREFIX), ([f"DESTDIR={stage}", "PREFIX=/usr"], stage)):
    rc, out, err = make("uninstall", *args)
    left = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs]
    check(rc == 0 and not left, f"make uninstall {' '.join(args)}: nothing left {left[:3]}")
finish("test_install")
