# Makefile for libengine, its tools, benchmarks and tests.
#
#   make            build/libengine.a, build/convert, build/engine, build/*-bench
#   make shared     build/libengine.so, exporting only the ENG_API functions
#   make test       build and run every test (Check); models from $(ENGINE_SHARED)
#   make asan       the same tests built with AddressSanitizer + UBSan, in build-asan/
#   make tsan       the scheduler tests under ThreadSanitizer, in build-tsan/
#   make check      what CI runs: deps, test with WERROR=1, then asan, then tsan,
#                   then (when clang is there) make clang and 5 s of each fuzzer
#   make clang      the tests built with clang and UBSan, in build-clang/
#   make fuzz       the libFuzzer harnesses (clang), FUZZ_SECONDS each, in build/fuzz/
#   make deps       the include graph, checked against the layering rule (no cycles)
#   make demo       the main job: infer-bench on a synthetic model (no download)
#   make clean
#
# Everything is built out of tree under $(BUILD). Kernel files carry their own
# instruction-set flags (kernels/*_avx2.c, *_avx512.c, ...); nothing else is
# compiled with them, so the library runs on any x86-64 and picks kernels at
# run time. CI sets WERROR=1.

BUILD ?= build
CC ?= cc
ENGINE_SHARED ?= ../shared

WARNINGS := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wformat=2 -Wundef -Wcast-align \
            -Wno-unused-parameter
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

OPT ?= -O2 -g
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(OPT) $(WARNINGS) -fno-strict-aliasing \
               -MMD -MP
SAN_FLAGS ?=
CFLAGS_ALL = $(CFLAGS_BASE) $(INC) $(SAN_FLAGS) $(CFLAGS)

# Include paths per folder, so the build enforces what may include what
# (README "Architecture", checked by make deps): the kernels see only
# kernels/; src/core sees no model kind; a kind (src/text, src/vision) sees
# core and itself; src/cuda sees the text kind it runs; src/serve and
# tools/cli are clients of include/engine.h alone (a folder's own headers are
# found beside its sources). The library never sees tools/convert. The
# converter, benchmarks and tests see everything.
LIB_INC := -Iinclude -Isrc/core -Ikernels
INC = $(LIB_INC) -Isrc/text -Isrc/vision -Isrc/vit -Isrc/cuda -Isrc/serve -Itools/convert
$(BUILD)/obj/kernels/%.o:    INC = -Ikernels
$(BUILD)/obj/src/core/%.o:   INC = $(LIB_INC)
$(BUILD)/obj/src/text/%.o:   INC = $(LIB_INC) -Isrc/text
$(BUILD)/obj/src/vision/%.o: INC = $(LIB_INC) -Isrc/vision
# The vision transformers reuse the text kind's linear layers and the CNN
# kind's image decoding.
$(BUILD)/obj/src/vit/%.o:    INC = $(LIB_INC) -Isrc/vit -Isrc/text -Isrc/vision
$(BUILD)/obj/src/cuda/%.o:   INC = $(LIB_INC) -Isrc/text
$(BUILD)/obj/src/serve/%.o:  INC = -Iinclude
$(BUILD)/obj/tools/cli/%.o:  INC = -Iinclude

# Third-party libraries, all Debian packages (see README). OpenBLAS is not
# linked: src/core/blas.c loads it at run time (see there for why).
LIBS := -lcjson -lutf8proc -lhwloc -ljpeg -lpng -lpthread -ldl -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt)

# CUDA backend (src/cuda/*.cu, see src/cuda/cuda_backend.h): its own library,
# $(BUILD)/libengine-cuda.so, the only binary that links cuBLAS and the CUDA
# runtime; libengine loads it with dlopen() when a CUDA context is asked for,
# so every program starts without mapping CUDA and runs where it is absent.
# Built when nvcc is found (on PATH, else /usr/local/cuda/bin), cuBLAS and
# the CUDA runtime are found beside it, and CUDA is not 0; without it CUDA
# contexts fail with ENG_ERR_NO_DEVICE and say why. nvcc on PATH may be a
# wrapper script or a symbolic link far from the toolkit (Debian hosts put one
# in /usr/local/bin), so the libraries are looked for in $(CUDA_HOME), in the
# toolkit nvcc really lives in, and in /usr/local/cuda; CUDA_LIB=DIR names
# them outright. Code for sm_90 (H100) plus compute_90 PTX, which newer GPUs
# JIT-compile. The asan and tsan targets pass CUDA=0: the sanitizers and the
# CUDA runtime do not mix (the runtime's driver mappings and threads trip
# them).
CUDA ?= 1
ifeq ($(origin NVCC),undefined)
NVCC := $(shell command -v nvcc 2>/dev/null || \
          { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
endif
ifeq ($(origin CUDA_LIB),undefined)
NVCC_TOP := $(if $(NVCC),$(shell $(NVCC) --dryrun -x cu -c /dev/null -o /dev/null \
              2>&1 | sed -n 's/^#\$$ TOP=//p' | head -n 1))
CUDA_LIB := $(patsubst %/,%,$(firstword $(foreach d,$(CUDA_HOME) $(NVCC_TOP) \
              $(dir $(realpath $(NVCC)))/.. /usr/local/cuda, \
              $(if $(wildcard $(d)/lib64/libcudart.so),$(dir $(wildcard $(d)/lib64/libcublas.so))))))
endif
CUDA_SRC :=
CUDA_BACKEND :=
ifneq ($(CUDA),0)
ifneq ($(NVCC),)
ifeq ($(CUDA_LIB),)
$(info nvcc found at $(NVCC) but no libcublas.so and libcudart.so beside it: building without CUDA (set CUDA_LIB=DIR))
else
CUDA_SRC := $(wildcard src/cuda/*.cu)
NVCC_WARNINGS := -Wall,-Wextra,-Wshadow,-Wpointer-arith,-Wformat=2,-Wno-unused-parameter
ifeq ($(WERROR),1)
NVCC_WARNINGS := $(NVCC_WARNINGS),-Werror
endif
NVCC_FLAGS := -std=c++17 -O2 -g -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90 -Xcompiler $(NVCC_WARNINGS) \
              -Xcompiler -fPIC,-fvisibility=hidden $(LIB_INC) -MMD -MP
CUDA_LIBS := -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB) -lcublas -lcudart -lstdc++
CUDA_BACKEND := $(BUILD)/libengine-cuda.so
endif
endif
endif

# Per-ISA flags, applied only to the kernel files named for that ISA.
ISA_avx2       := -mavx2 -mfma -mf16c
ISA_avx512     := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
ISA_avxvnni    := -mavx2 -mfma -mavxvnni
ISA_avx512vnni := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma
# The AMX files: tiles (int8 and bf16) plus AVX-512 for what runs around them.
ISA_amx        := $(ISA_avx512vnni) -mavx512bf16 -mamx-tile -mamx-int8 -mamx-bf16
# bf16 GEMM without AMX (kernels/bgemm_avx512bf16.c, --precision bf16).
ISA_avx512bf16 := $(ISA_avx512) -mavx512bf16

LIB_SRC     := $(wildcard src/*/*.c) $(wildcard kernels/*.c)
CONVERT_SRC := $(wildcard tools/convert/*.c)
CLI_SRC     := $(wildcard tools/cli/*.c)
BENCH_SRC   := $(wildcard bench/*_bench.c)
TEST_SRC    := $(wildcard tests/test_*.c)
TEST_COMMON := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB := $(BUILD)/libengine.a
SHARED_LIB := $(BUILD)/libengine.so
# The converter's readers, writer and quantizer are tested (and the int8
# benchmark quantizes) directly, so they live in their own archive.
CONVERT_LIB := $(BUILD)/libconvert.a
TESTS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCHES := $(patsubst bench/%_bench.c,$(BUILD)/%-bench,$(BENCH_SRC))

.PHONY: all test asan tsan check demo clean models libs shared deps
all: $(LIB) $(BUILD)/convert $(BUILD)/engine $(BENCHES) $(CUDA_BACKEND)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(ISA_FLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

# The backend links src/core/error.c (eng__errf) and nothing else of the
# engine; its copy exports nothing (ENG_API empty), so the one symbol the
# backend exports is its entry table.
$(BUILD)/obj/cuda-backend/error.o: src/core/error.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -fvisibility=hidden -DENG_API= -c $< -o $@

$(CUDA_BACKEND): $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC)) $(BUILD)/obj/cuda-backend/error.o
	$(CC) $(CFLAGS_ALL) -shared $^ -o $@ $(CUDA_LIBS)

$(BUILD)/obj/kernels/%_avx2.o:       ISA_FLAGS = $(ISA_avx2)
$(BUILD)/obj/kernels/%_avx512.o:     ISA_FLAGS = $(ISA_avx512)
$(BUILD)/obj/kernels/%_avxvnni.o:    ISA_FLAGS = $(ISA_avxvnni)
$(BUILD)/obj/kernels/%_avx512vnni.o: ISA_FLAGS = $(ISA_avx512vnni)
$(BUILD)/obj/kernels/%_avx512bf16.o: ISA_FLAGS = $(ISA_avx512bf16)
$(BUILD)/obj/kernels/%_amx.o:        ISA_FLAGS = $(ISA_amx)

# The library's objects serve both archives: position-independent, and with
# every symbol hidden unless include/engine.h marks it ENG_API, so
# libengine.so exports the public API only (tests/test_exports.sh checks).
# Hidden symbols still link statically, which the tests of internals rely on.
$(call obj,$(LIB_SRC)): CFLAGS_ALL += -fPIC -fvisibility=hidden

$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

shared: $(SHARED_LIB)
$(SHARED_LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared $^ -o $@ $(LIBS)

$(CONVERT_LIB): $(call obj,$(filter-out tools/convert/main.c,$(CONVERT_SRC)))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/convert: $(call obj,tools/convert/main.c) $(CONVERT_LIB) $(LIB)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) -lz

# engine serve (tools/serve/): the HTTP server, linked into the CLI with
# libmicrohttpd (Debian libmicrohttpd-dev), and the Redis worker and client
# (engine worker|submit, tools/serve/redis_*.c, docs/REDIS.md) with hiredis
# 0.14 (RESP2; libhiredis-dev). Like tools/cli, a client of include/engine.h
# alone (its own headers are found beside its sources).
SERVE_SRC := $(wildcard tools/serve/*.c)
SERVE_LIBS := -lmicrohttpd -lhiredis
$(BUILD)/obj/tools/serve/%.o: INC = -Iinclude

$(BUILD)/engine: $(call obj,$(CLI_SRC)) $(call obj,$(SERVE_SRC)) $(LIB)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) $(SERVE_LIBS)

# bench/<name>_bench.c becomes $(BUILD)/<name>-bench.
$(BUILD)/%-bench: $(BUILD)/obj/bench/%_bench.o $(BUILD)/obj/bench/benchutil.o $(CONVERT_LIB) $(LIB)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS)
# infer-bench --url: its HTTP client.
$(BUILD)/infer-bench: $(BUILD)/obj/bench/infer_http.o
# infer-bench --redis: its Redis client, on the server's Redis helpers.
$(BUILD)/infer-bench: $(BUILD)/obj/bench/infer_redis.o \
  $(call obj,tools/serve/redis_common.c tools/serve/redis_wire.c tools/serve/buf.c)
$(BUILD)/infer-bench: LIBS += -lhiredis
$(BUILD)/obj/bench/infer_redis.o: CFLAGS_ALL += -Itools/serve

$(BUILD)/tests/%: $(call obj,tests/%.c) $(call obj,$(TEST_COMMON)) $(CONVERT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $^ -o $@ $(LIBS) -lz $(CHECK_LIBS)

# test_cli checks the command line's JSON writer and line reader directly too.
$(BUILD)/tests/test_cli: $(call obj,tools/cli/json_out.c tools/cli/input.c)
$(BUILD)/obj/tests/test_cli.o: CFLAGS_ALL += -Itools/cli

# Models converted from $(ENGINE_SHARED) for the end-to-end tests.
SHARED_MODELS := sst2-bert-mini sst2-distilbert-mini
$(BUILD)/models/%.eng: $(BUILD)/convert
	@mkdir -p $(dir $@)
	@if [ -d "$(ENGINE_SHARED)/models/$*" ]; then $(BUILD)/convert $(ENGINE_SHARED)/models/$* $@; \
	 else echo "note: $(ENGINE_SHARED)/models/$* not found; tests that need it will say so"; fi
models: $(patsubst %,$(BUILD)/models/%.eng,$(SHARED_MODELS))

test: all $(TESTS) $(SHARED_LIB) models
	@ENGINE_SHARED=$(ENGINE_SHARED) ENGINE_BUILD=$(BUILD) CC="$(CC)" ENGINE_SAN_FLAGS="$(SAN_FLAGS)" \
	  $(if $(CUDA_BACKEND),ENG_CUDA_BACKEND=$(abspath $(CUDA_BACKEND))) PYTHON=$(PYTHON) \
	  tests/run-tests.sh $(TESTS) tests/test_exports.sh tests/test_cuda_backend.sh \
	  tests/test_redis.sh tests/test_gateway.sh tests/test_zero_shot_serve.sh tests/python/run.sh

asan:
	$(MAKE) BUILD=build-asan CUDA=0 OPT="-O1 -g" \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" test

# ThreadSanitizer runs the scheduler's tests, a short model test whose
# contexts use their thread teams, the result cache, the zero-shot label-set
# cache shared by threads (test_vit), and the HTTP server
# (test_http runs build-tsan/engine serve; test_gateway its Redis gateway and
# workers, and test_zero_shot_serve the zero-shot threads of both; they fail
# on any sanitizer report in their logs).
TSAN_TESTS := $(foreach t,$(TESTS),$(if $(or $(findstring sched,$(t)),$(findstring golden_tiny,$(t)),$(findstring cache,$(t)),$(findstring http,$(t)),$(findstring vit,$(t))),$(t)))
tsan:
	$(MAKE) BUILD=build-tsan CUDA=0 OPT="-O1 -g" SAN_FLAGS="-fsanitize=thread" \
	  $(patsubst $(BUILD)/%,build-tsan/%,$(TSAN_TESTS)) build-tsan/engine models
	@ENGINE_SHARED=$(ENGINE_SHARED) ENGINE_BUILD=build-tsan ENGINE_SAN_FLAGS=-fsanitize=thread \
	  tests/run-tests.sh $(patsubst $(BUILD)/%,build-tsan/%,$(TSAN_TESTS)) tests/test_gateway.sh \
	  tests/test_zero_shot_serve.sh

# The main job on a fresh machine: a synthetic MiniLM-L6-shaped model (seeded
# random weights, generated vocabulary), written to weights/ where converted
# models live (weights/README.md), through single, batch and stream modes, on
# the SST-2 dev sentences when $(ENGINE_SHARED) has them, else on
# bench/sample-texts.txt.
DEMO_INPUT := $(firstword $(wildcard $(ENGINE_SHARED)/data/sst2/dev.tsv) bench/sample-texts.txt)
demo: all
	$(BUILD)/convert --synthetic minilm-l6 weights/minilm-l6.eng
	$(BUILD)/infer-bench --model weights/minilm-l6.eng --input $(DEMO_INPUT) --mode all

# The link flags a program using $(LIB) needs (CUDA is never among them: the
# backend is loaded at run time): cc app.c build/libengine.a $$(make -s libs)
libs:
	@echo $(LIBS)

# ---- Python package (issue 14) -------------------------------------------
# python/libengine, a ctypes package over $(BUILD)/libengine.so. `make python`
# builds its wheel (libengine.so inside) into $(BUILD)/python, offline with
# Debian's pip and setuptools: pip install $(BUILD)/python/libengine-*.whl.
# Its tests (tests/python, pytest) run from `make test` via tests/python/run.sh.
PYTHON ?= /usr/bin/python3
.PHONY: python
python: $(SHARED_LIB)
	LIBENGINE_PATH=$(abspath $<) $(PYTHON) -m pip wheel --no-build-isolation --no-deps \
	  --no-index -w $(BUILD)/python ./python

# ---- Fuzzing (issue 10) ----------------------------------------------------
# libFuzzer harnesses (fuzz/fuzz_*.c) for every parser that takes outside
# bytes, built with clang, ASan and UBSan out of tree in build/fuzz (the
# library instrumented for coverage with fuzzer-no-link). `make fuzz` runs
# each for FUZZ_SECONDS on a working copy of its seeds (fuzz/corpus/NAME, kept
# small and committed; what a run adds stays in build/fuzz/corpus/NAME).
# A crash stops the run with the input in build/fuzz/crash-NAME-*. A harness
# may have a libFuzzer dictionary, fuzz/fuzz_NAME.dict.
FUZZ_SECONDS ?= 10
FUZZ_CC ?= clang
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
.PHONY: fuzz fuzz-build fuzz-run
fuzz:
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) CUDA=0 OPT="-O1 -g" SAN_FLAGS="$(FUZZ_SAN)" fuzz-run
fuzz-build: $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_NAMES))
$(BUILD)/fuzz_%: fuzz/fuzz_%.c $(CONVERT_LIB) $(LIB)
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer $(filter %.c,$^) $(filter %.a,$^) -o $@ $(LIBS) -lz
# fuzz_http links engine serve's request handling (no libmicrohttpd calls).
$(BUILD)/fuzz_http: $(addprefix tools/serve/,request.c routes_tei.c routes_kserve.c routes_zeroshot.c buf.c)
# The Redis wire parser (tools/serve): its two files beside the harness.
$(BUILD)/fuzz_redis_wire: tools/serve/redis_wire.c tools/serve/buf.c
$(BUILD)/fuzz_redis_wire: CFLAGS_ALL += -Itools/serve
fuzz-run: fuzz-build
	@set -e; for n in $(FUZZ_NAMES); do \
	  mkdir -p $(BUILD)/corpus/$$n; cp fuzz/corpus/$$n/* $(BUILD)/corpus/$$n/ 2>/dev/null || true; \
	  echo "fuzz $$n: $(FUZZ_SECONDS) s"; \
	  $(BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 -print_final_stats=1 \
	    $$(test -f fuzz/fuzz_$$n.dict && echo -dict=fuzz/fuzz_$$n.dict) \
	    -artifact_prefix=$(BUILD)/crash-$$n- $(BUILD)/corpus/$$n 2>$(BUILD)/fuzz_$$n.log \
	    || { tail -n 60 $(BUILD)/fuzz_$$n.log; exit 1; }; \
	  grep -E '^stat::(number_of_executed_units|new_units_added)' $(BUILD)/fuzz_$$n.log | tr -s ' \n' '  '; \
	  echo "corpus: $$(ls $(BUILD)/corpus/$$n | wc -l) files"; \
	done

# A long campaign: every harness FUZZ_MINUTES, FUZZ_JOBS at a time, at nice
# 19, growing FUZZ_OUT/corpus/NAME; FUZZ_OUT/summary.md is its table
# (scripts/fuzz-campaign.sh says more).
FUZZ_MINUTES ?= 30
FUZZ_JOBS ?= 2
FUZZ_OUT ?= build/fuzz-campaign
.PHONY: fuzz-campaign
fuzz-campaign:
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) CUDA=0 OPT="-O1 -g" SAN_FLAGS="$(FUZZ_SAN)" fuzz-build
	scripts/fuzz-campaign.sh -m $(FUZZ_MINUTES) -j $(FUZZ_JOBS) -b build/fuzz -o $(FUZZ_OUT) $(FUZZ_NAMES)

# The tests built with clang and its UBSan, in build-clang/: clang warns and
# checks where gcc does not (-Wcast-align, offsets applied to NULL).
.PHONY: clang
clang:
	$(MAKE) BUILD=build-clang CC=$(FUZZ_CC) CUDA=0 OPT="-O1 -g" \
	  SAN_FLAGS="-fsanitize=undefined -fno-sanitize-recover=all" test

# The include graph per folder, checked against README "Architecture".
deps:
	@python3 scripts/deps.py

check: deps
	$(MAKE) WERROR=1 test
	$(MAKE) WERROR=1 asan
	$(MAKE) WERROR=1 tsan
	@if command -v $(FUZZ_CC) >/dev/null; then $(MAKE) WERROR=1 clang && $(MAKE) fuzz FUZZ_SECONDS=5; \
	 else echo "clang, fuzz: skipped ($(FUZZ_CC) not found)"; fi

clean:
	rm -rf build build-asan build-tsan build-clang

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
