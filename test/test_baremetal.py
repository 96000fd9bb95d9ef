#!/usr/bin/env python3
"""clip selftest on bare metal: baremetal/ built for a Cortex-M4 (Arm's
MPS2 AN386 board) with arm-none-eabi-gcc and newlib, and run on QEMU's
emulation of the board (`make baremetal-selftest`), the self-check's data
decoded on the host into its flash (code memory) and the weights used
there in place, the activations in an arena over its RAM, the console and
the exit status over semihosting. Checks: it builds without warnings; the
arena's own random malloc/realloc/free check passes; the weights lie in
the flash region (0x00000000-0x003fffff); every stage the native `clip
selftest` reports is reported as passing, then the final pass line, and
QEMU exits 0; the arena's peak is below the weights' size (they were not
copied into RAM). Then the arena's reported peak is exact: an arena of exactly
that many bytes passes, and one 8 bytes smaller (the allocation unit) fails
cleanly: the library's out-of-memory message, every block freed, exit 1,
not a fault. Skipped as a whole when the cross compiler, newlib or
qemu-system-arm is missing."""
import os
import re
import shutil
import subprocess
import time

from common import CLIP, OUT, ROOT, check, finish, skip, skipped

NAME = "test_baremetal"
HINT = "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
FLASH = (0x00000000, 0x003FFFFF)  # the board's code memory, standing for flash (baremetal/mps2-an386.ld)
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config", "enable=on,target=native",
        "-kernel"]

for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "make"):
    if not shutil.which(tool):
        skip(NAME, f"{tool} is not installed {HINT}")
p = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                    "-print-file-name=libc.a"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if not os.path.isabs(p.stdout.decode().strip()):
    skip(NAME, f"newlib for arm-none-eabi is not installed {HINT}")


def build(elf, arena=None):
    """The Makefile's bare-metal build into elf; returns (ok, warning lines, error text)."""
    if os.path.exists(elf):
        os.unlink(elf)
    args = ["make", "-s", "--no-print-directory", "-C", ROOT, "BM_ELF=" + elf, elf]
    if arena is not None:
        args.insert(-1, f"BM_ARENA={arena}")
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    return p.returncode == 0 and os.path.exists(elf), [l for l in err.splitlines() if "warning" in l], err


def run(elf):
    """The board, until it stops itself; returns (exit status, console lines, seconds)."""
    t = time.time()
    try:
        p = subprocess.run(QEMU + [elf], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
    except subprocess.TimeoutExpired:
        return None, ["(no exit within 300 s)"], time.time() - t
    return p.returncode, p.stdout.decode("utf-8", "replace").splitlines(), time.time() - t


def stage_names(lines):
    """The stages of report lines ("ok   vision layer 0: ..." -> "vision layer 0")."""
    return [l[5:].split(":")[0] for l in lines if l.startswith(("ok   ", "FAIL "))]


def arena_line(lines):
    """(peak, live at most, blocks still allocated line present) from the final arena line, or None."""
    for l in lines:
        m = re.match(r"arena: peak (\d+) bytes \(high-water mark\), (\d+) bytes live at most", l)
        if m:
            return int(m.group(1)), int(m.group(2)), any("still allocated" in x for x in lines)
    return None


def weights_line(lines):
    """(size, first address, last address) of the weights from the board's line, or None."""
    for l in lines:
        m = re.match(r"weights: (\d+) bytes at 0x([0-9a-f]+)-0x([0-9a-f]+), in the flash region", l)
        if m:
            return int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16)
    return None


# ---- the board runs the self-check ----

elf = os.path.join(OUT, "baremetal-selftest.elf")
ok, warnings, err = build(elf)
check(ok and not warnings, f"make baremetal-selftest's build (arm-none-eabi-gcc, Cortex-M4, hard float) without "
                           f"warnings {warnings[:2]} {err.strip()[-300:] if not ok else ''}")
if not ok:
    finish(NAME)
rc, lines, secs = run(elf)
for l in lines:
    print("     " + l)
arena = arena_line(lines)
check(rc == 0, f"QEMU mps2-an386 exits {rc} (0: every stage passed) after {secs:.1f} s")
check(any(l.startswith("ok   arena: ") for l in lines),
      "the arena's own random malloc/realloc/free check passes (every block keeps its bytes, empty at the end)")
weights = weights_line(lines)
check(weights is not None and FLASH[0] <= weights[1] <= weights[2] <= FLASH[1] and
      weights[2] - weights[1] + 1 == weights[0],
      "the weights are in flash: " + (f"{weights[0]} bytes at 0x{weights[1]:08x}-0x{weights[2]:08x}, within "
                                      f"0x{FLASH[0]:08x}-0x{FLASH[1]:08x}" if weights else "no weights line"))
board = [s for s in stage_names(lines) if s != "arena"]
fails = [l for l in lines if l.startswith("FAIL")]
if os.path.exists(CLIP):
    p = subprocess.run([CLIP, "selftest"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    native = stage_names(p.stdout.decode("utf-8", "replace").splitlines())
    check(p.returncode == 0 and board == native and not fails,
          f"every stage of the native clip selftest ({len(native)}) reported as passing on the board "
          f"({len(board)} reported, {len(fails)} FAIL) {fails[:2]}")
else:
    skipped("the board's stages against the native clip selftest's", f"{CLIP} is not built (make clip)")
check(len(board) >= 15 and not fails and "selftest passed: every stage agrees with the reference" in lines,
      f"{len(board)} stage lines, none FAIL, and the final pass line")
check(arena is not None and 0 < arena[0] and not arena[2],
      f"the arena's peak is reported: {arena[0] if arena else '?'} bytes high-water mark, "
      f"{arena[1] if arena else '?'} live at most, every block freed at the end")
check(arena is not None and weights is not None and arena[0] < weights[0],
      f"the arena's peak ({arena[0] if arena else '?'} bytes) is below the weights' size "
      f"({weights[0] if weights else '?'} bytes): used in place in flash, not copied into RAM")

# ---- the reported peak is exact: an arena that size passes, one allocation unit less fails cleanly ----

if arena is not None and arena[0] > 0:
    peak = arena[0]
    exact = os.path.join(OUT, "baremetal-exact.elf")
    ok, warnings, err = build(exact, peak)
    rc, lines, _ = run(exact) if ok else (None, [err], 0)
    check(rc == 0 and "selftest passed: every stage agrees with the reference" in lines,
          f"an arena of exactly the peak ({peak} bytes) passes: exit {rc}")
    small = os.path.join(OUT, "baremetal-small.elf")
    ok, warnings, err = build(small, peak - 8)
    rc, lines, _ = run(small) if ok else (None, [err], 0)
    oom = [l for l in lines if l.startswith("clip: selftest: ")]
    a = arena_line(lines)
    check(rc == 1 and oom and "out of memory" in oom[0] and a is not None and not a[2] and
          not any("fault" in l for l in lines),
          f"an arena 8 bytes smaller ({peak - 8}) fails cleanly: exit {rc}, {oom[0] if oom else lines[-3:]}, "
          f"{'every block freed' if a and not a[2] else 'blocks left or no arena line'}")
    for f in (exact, small):
        if os.path.exists(f):
            os.unlink(f)
finish(NAME)
