# clip.c - build and test.
#   make                 ./clip, tuned for this machine's CPU, with OpenMP if the compiler has it
#   make PORTABLE=1      for the generic architecture (no -march=native)
#   make NO_OMP=1        without OpenMP
#   make test            every test (see README.md, "Testing")
#   make demo            export openai/clip-vit-base-patch32 and classify data/cat.jpg
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
      index/index.h

.PHONY: all test clean demo bench fuzz fuzz-targets sources selftest-data unicode-tables

all: clip

clip: $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -o $@ $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# the C unit tests include clip.c itself (to reach its static ops), so it is not linked again
test/test_ops: test/test_ops.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -I. -o $@ test/test_ops.c $(filter-out clip.c,$(SRC)) $(ALL_LDFLAGS) $(LDLIBS)

# the library without the command line, for the C tests

test/tok_batch: test/tok_batch.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ test/tok_batch.c $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

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

bench/clip_bench: bench/clip_bench.c $(SRC) $(HDR)
	$(CC) $(ALL_CFLAGS) -DCLIP_NO_MAIN -I. -o $@ bench/clip_bench.c $(SRC) $(ALL_LDFLAGS) $(LDLIBS)

# speed against PyTorch (when installed) on random full-size checkpoints, and JPEG
# decoding + preprocessing against djpeg and Pillow; see bench/bench_model.py, bench/bench_decode.py
bench: clip bench/clip_bench
	$(PYTHON) bench/bench_model.py
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

test: clip test/test_ops test/tok_batch test/stages $(FUZZ_TARGETS:%=test/fuzz/replay_%)
	PYTHON=$(PYTHON) sh test/run.sh

demo: clip
	@test -f $(WEIGHTS) || $(PYTHON) export_weights.py $(DEMO_MODEL) $(WEIGHTS)
	./clip $(WEIGHTS) data/cat.jpg data/labels.txt --template "a photo of a {}." --top 5

clean:
	rm -f clip test/test_ops test/tok_batch test/stages bench/clip_bench $(FUZZ_TARGETS:%=test/fuzz/fuzz_%) $(FUZZ_TARGETS:%=test/fuzz/replay_%)
	rm -rf test/out
