# clip.c - build and test.
#   make                 ./clip, tuned for this machine's CPU, with OpenMP if the compiler has it
#   make PORTABLE=1      for the generic architecture (no -march=native)
#   make NO_OMP=1        without OpenMP
#   make test            every test (see README.md, "Testing")
#   make demo            export openai/clip-vit-base-patch32 and classify data/cat.jpg
#   make wasm            web/clip.wasm, the library for the web page in web/ (clang, lld, wasi-libc)
#   make baremetal-selftest  clip selftest on an emulated Cortex-M4 board (arm-none-eabi-gcc, qemu-system-arm)
#   make lib             libclip.a and libclip.so (the library alone, API in clip.h)
#   make install         clip, the libraries, clip.h, clip.pc, clip.1, clip-export under PREFIX
#                        (default /usr/local; DESTDIR stages it); make uninstall removes them
# CC, CFLAGS, LDFLAGS given on the command line replace the defaults; LDLIBS keeps -lm.

CC ?= cc
# Python with numpy: Debian's when it has numpy, else the first on PATH
PYTHON ?= $(shell /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 && echo /usr/bin/python3 || echo python3)
# make demo: the checkpoint it exports, and where to
DEMO_MODEL ?= openai/clip-vit-base-patch32
WEIGHTS ?= weights.bin
ifeq ($(origin CC),default)
CC = cc
endif

OPT = -O3 -ffp-contract=fast
ifndef PORTABLE
# tune for the build machine, when the compiler understands it
ARCH := $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
endif
WARN = -std=c99 -Wall -Wextra -pedantic
CFLAGS = $(OPT) $(ARCH) $(WARN)

ifndef NO_OMP
OMP_FLAG := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null >/dev/null 2>&1 && echo -fopenmp)
endif
# OpenMP goes on the compile and the link line even when CFLAGS/LDFLAGS are overridden
ALL_CFLAGS = $(CFLAGS) $(OMP_FLAG)
ALL_LDFLAGS = $(LDFLAGS) $(OMP_FLAG)
LDLIBS += -lm

# the library and the command line: a porter's build is one compiler command over these
SRC = clip.c tokenizer.c image.c platform/platform.c decoders/jpeg.c decoders/png.c decoders/inflate.c decoders/gif.c decoders/bmp.c \
      decoders/webp.c decoders/vp8.c decoders/pnm.c selftest/selftest.c index/index.c
HDR = clip.h platform/platform.h decoders/decoders.h decoders/inflate.h generated/unicode_tables.h generated/selftest_data.h \
      selftest/selftest.h index/index.h

.PHONY: all test clean demo bench fuzz fuzz-targets sources selftest-data unicode-tables lib install uninstall wasm baremetal-selftest FORCE

all: clip

clip: $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -o $@ $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# ---- the library: libclip.a and libclip.so ----
# Only what clip.h declares is exported (-fvisibility=hidden, CLIP_API). The soname
# carries the major version, which changes only when the API does (clip.h, "Stability").
VERSION = 1.1.0
SOVERSION = 1
LIB_OBJ = $(SRC:%.c=build/lib/%.o)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden -DCLIP_BUILD_SHARED -DCLIP_NO_MAIN

lib: libclip.a libclip.so

# the objects are rebuilt when the compiler or its flags change (build/lib/flags records them)
build/lib/flags: FORCE
	@mkdir -p build/lib
	@echo '$(CC) $(LIB_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(LIB_CFLAGS)' > $@

build/lib/%.o: %.c $(HDR) build/lib/flags
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c -o $@ $<

libclip.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

libclip.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libclip.so.$(SOVERSION) -o $@ $(LIB_OBJ) $(ALL_LDFLAGS) $(LDLIBS)

# ---- install ----
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
MANDIR = $(PREFIX)/share/man/man1
INSTALL ?= install

install: clip lib
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(MANDIR)
	$(INSTALL) -m 755 clip $(DESTDIR)$(BINDIR)/clip
	$(INSTALL) -m 755 export_weights.py $(DESTDIR)$(BINDIR)/clip-export
	$(INSTALL) -m 644 libclip.a $(DESTDIR)$(LIBDIR)/libclip.a
	$(INSTALL) -m 755 libclip.so $(DESTDIR)$(LIBDIR)/libclip.so.$(VERSION)
	ln -sf libclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libclip.so.$(SOVERSION)
	ln -sf libclip.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libclip.so
	$(INSTALL) -m 644 clip.h $(DESTDIR)$(INCLUDEDIR)/clip.h
	$(INSTALL) -m 644 man/clip.1 $(DESTDIR)$(MANDIR)/clip.1
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@PRIVATE@|-lm $(OMP_FLAG)|' man/clip.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/clip.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/clip.pc

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/clip $(DESTDIR)$(BINDIR)/clip-export $(DESTDIR)$(LIBDIR)/libclip.a \
	    $(DESTDIR)$(LIBDIR)/libclip.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libclip.so.$(SOVERSION) \
	    $(DESTDIR)$(LIBDIR)/libclip.so $(DESTDIR)$(INCLUDEDIR)/clip.h $(DESTDIR)$(MANDIR)/clip.1 \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/clip.pc

# the C unit tests include clip.c itself (to reach its static ops), so it is not linked again
test/test_ops: test/test_ops.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -I. -o $@ test/test_ops.c $(filter-out clip.c,$(SRC)) $(ALL_LDFLAGS) $(LDLIBS)
# the same with the matmul's panels walked in 8-column slices (MM_NC; narrower targets' tiles)
test/test_ops_nc8: test/test_ops.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DMM_NC=8 -I. -o $@ test/test_ops.c $(filter-out clip.c,$(SRC)) $(ALL_LDFLAGS) $(LDLIBS)

# the library without the command line, for the C tests

test/tok_batch: test/tok_batch.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ test/tok_batch.c $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

test/test_threads: test/test_threads.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ test/test_threads.c $(SRC) $(ALL_LDFLAGS) -pthread $(LDLIBS)

test/stages: test/stages.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ test/stages.c $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# the generated files, rewritten whole by their tools (developers only: they need the
# Unicode data files, cjpeg and Pillow); make test checks the tables are current
unicode-tables:
	$(PYTHON) tools/gen_unicode.py
selftest-data:
	$(PYTHON) tools/gen_selftest.py

# the fuzz harnesses' names, for test/run.sh
fuzz-targets:
	@echo $(FUZZ_TARGETS)

# the source list, for scripts that build the project their own way (test_cross, valgrind)
sources:
	@echo $(SRC)

# the library for the browser (web/): the same sources plus web/clip_wasm.c, the
# functions the page's worker calls, for wasm32-wasi (Debian: clang, lld, wasi-libc,
# libclang-rt-14-dev-wasm32). A reactor (no main); memory starts small and grows to
# 4 GiB, room for ViT-B/32's 578 MB weights and its activations; the stack comes
# first, so an overflow traps instead of overwriting data. WASI_SYSROOT: where
# wasi-libc is when clang does not find it by itself (e.g. /usr/share/wasi-sysroot).
WASM_CC ?= clang
WASM_FLAGS = --target=wasm32-wasi $(if $(WASI_SYSROOT),--sysroot=$(WASI_SYSROOT)) -O3 -msimd128 $(WARN) \
             -DCLIP_NO_MAIN -DCLIP_NO_MMAP -D_WASI_EMULATED_PROCESS_CLOCKS -mexec-model=reactor \
             -Wl,--max-memory=4294967296 -Wl,-z,stack-size=8388608 -Wl,--stack-first
wasm: web/clip.wasm
web/clip.wasm: web/clip_wasm.c $(SRC) $(HDR)
	$(WASM_CC) $(WASM_FLAGS) -o $@ web/clip_wasm.c $(SRC) -lwasi-emulated-process-clocks

bench/clip_bench: bench/clip_bench.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ bench/clip_bench.c $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# the matmul on each shape of a ViT-B/32 pass, as a fraction of this machine's float32 peak
bench/matmul_bench: bench/matmul_bench.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -I. -o $@ bench/matmul_bench.c $(filter-out clip.c,$(SRC)) $(ALL_LDFLAGS) $(LDLIBS)

# speed against PyTorch (when installed) on random full-size checkpoints, the matmul
# against the machine's peak, the half- and quarter-size files against float32, and JPEG
# decoding + preprocessing against djpeg and Pillow; see bench/README.md
bench: clip bench/clip_bench bench/matmul_bench
	$(PYTHON) bench/bench_model.py
	./bench/matmul_bench
	$(PYTHON) bench/bench_precision.py
	$(PYTHON) bench/bench_decode.py

# fuzzers (clang's libFuzzer + ASan + UBSan); run one with test/fuzz/run.sh TARGET SECONDS
FUZZ_TARGETS = image png gif bmp webp vp8 tokenizer blob labels index
FUZZ_CC ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DCLIP_NO_MAIN -DCLIP_MAX_PIXELS=4000000LL
fuzz: $(FUZZ_TARGETS:%=test/fuzz/fuzz_%)
test/fuzz/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz_common.h $(SRC) $(HDR)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(SRC) -lm

# the fuzz harnesses as plain programs that replay files (make test runs the regressions)
test/fuzz/replay_%: test/fuzz/fuzz_%.c test/fuzz/fuzz_common.h $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DFUZZ_STANDALONE -DCLIP_NO_MAIN -DCLIP_MAX_PIXELS=4000000LL -o $@ $< $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# bare metal: clip selftest on Arm's MPS2 AN386 board (Cortex-M4) emulated by QEMU, with
# semihosting for its console and exit status (baremetal/main.c; README.md, "Portability").
# BM_ARENA=N caps the allocation arena at N bytes (test_baremetal builds one too small).
BM_CC ?= arm-none-eabi-gcc
BM_ELF ?= baremetal/clip-selftest.elf
BM_ARENA ?=
BM_FLAGS = -O2 -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 $(WARN) -ffunction-sections -fdata-sections \
           -DCLIP_NO_MAIN -DCLIP_NO_MMAP -DCLIP_CUSTOM_ALLOC -DCLIP_SELFTEST_NO_TEXT $(if $(BM_ARENA),-DARENA_BYTES=$(BM_ARENA))
# every library source builds without mmap or files (platform.c refuses them); --gc-sections drops what is not called
# CLIP_SELFTEST_NO_TEXT leaves out the self-check's text-encoded data: the board runs the checks on selftest_data.S
BM_SRC = baremetal/board.c baremetal/main.c baremetal/selftest_data.S $(SRC)
BM_QEMU = timeout 120 qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native -kernel
# the self-check's data decoded on the host (CC), for the board's flash (selftest_data.S includes the file)
BM_DATA = baremetal/selftest_data.bin
BM_TOOL = build/baremetal/selftest_bin

$(BM_TOOL): baremetal/selftest_bin.c selftest/selftest.h $(SRC) $(HDR)
	@mkdir -p $(dir $@)
	$(CC) -O1 $(WARN) -DCLIP_NO_MAIN -o $@ baremetal/selftest_bin.c $(SRC) $(LDLIBS)

$(BM_DATA): $(BM_TOOL)
	$(BM_TOOL) $@

$(BM_ELF): $(BM_SRC) $(BM_DATA) baremetal/board.h baremetal/mps2-an386.ld selftest/selftest.h $(HDR)
	$(BM_CC) $(BM_FLAGS) -nostartfiles -T baremetal/mps2-an386.ld -Wl,--gc-sections -o $@ $(BM_SRC) -lm

baremetal-selftest: $(BM_ELF)
	$(BM_QEMU) $(BM_ELF)

test: clip test/test_ops test/test_ops_nc8 test/tok_batch test/stages test/test_threads $(FUZZ_TARGETS:%=test/fuzz/replay_%)
	PYTHON=$(PYTHON) sh test/run.sh

demo: clip
	@test -f $(WEIGHTS) || $(PYTHON) export_weights.py $(DEMO_MODEL) $(WEIGHTS)
	./clip $(WEIGHTS) data/cat.jpg data/labels.txt --template "a photo of a {}." --top 5

clean:
	rm -f libclip.a libclip.so
	rm -rf build
	rm -f clip web/clip.wasm baremetal/clip-selftest.elf baremetal/selftest_data.bin test/test_ops test/test_ops_nc8 test/tok_batch test/stages test/test_threads bench/clip_bench bench/matmul_bench $(FUZZ_TARGETS:%=test/fuzz/fuzz_%) $(FUZZ_TARGETS:%=test/fuzz/replay_%)
	rm -rf test/out
