# The README's first two commands. Both work on a fresh clone: they install what is missing,
# configure and build, then do their job.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CMAKE_FLAGS ?=
CTEST_JOBS ?= 2
# ccache keys on paths relative to the checkout, so clones share cache entries.
export CCACHE_BASEDIR := $(CURDIR)
STRATA := $(BUILD_DIR)/apps/strata/strata

.PHONY: setup build test serve clean format

setup:
	@scripts/setup
	@scripts/fetch-test-assets

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

build: setup $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR)

# Every ctest label but gpu (GPU tests run on a GPU machine: ctest -L gpu).
test: build
	ctest --test-dir $(BUILD_DIR) -LE gpu --output-on-failure -j$(CTEST_JOBS)

DEMO_MODEL ?= models/demo-deepseek-v3-tiny
PORT ?= 8000

# Builds, creates the tiny demo checkpoint once, and serves it on 127.0.0.1:$(PORT).
serve: build
	@test -f $(DEMO_MODEL)/config.json || $(STRATA) gen-model --arch deepseek_v3 --preset tiny \
	  --tokenizer .cache/test-assets/tokenizers/deepseek_v3 --out $(DEMO_MODEL) --seed 0
	$(STRATA) serve --model $(DEMO_MODEL) --host 127.0.0.1 --port $(PORT)

format:
	git ls-files '*.h' '*.cc' '*.cu' '*.cuh' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR)
