# The two commands of the README, plus the pieces they are made of.
#   make demo   install what is missing, build, run the demo on local sandbox pods
#   make test   install what is missing, build, run every test tier this machine supports
BUILD_DIR ?= build
JOBS ?= $(shell nproc)

.PHONY: all deps build test demo bench format tidy clean

all: build

deps:
	@scripts/install-deps.sh all

CONFIGURE = cmake --preset default >/dev/null
COMPILE = cmake --build $(BUILD_DIR) -j$(JOBS)

build: deps
	@$(CONFIGURE)
	@$(COMPILE)

# The vm tier's kernels download and unpack while the build runs
# (tests/vm/prefetch); the build's status decides.
test: deps
	@$(CONFIGURE)
	@tests/vm/prefetch $(BUILD_DIR) & prefetch=$$!; $(COMPILE); rc=$$?; wait $$prefetch; exit $$rc
	@scripts/run-tests.sh $(BUILD_DIR)

demo: build
	@scripts/demo.sh $(BUILD_DIR)

bench: build
	@scripts/bench.sh $(BUILD_DIR)

format:
	@git ls-files '*.cpp' '*.h' '*.proto' ':!ebpf/*' | xargs clang-format -i  # ebpf/: kernel style, by hand

tidy: build
	@git ls-files 'agent/*.cpp' 'common/*.cpp' 'controller/*.cpp' | xargs clang-tidy -p $(BUILD_DIR) --quiet

clean:
	rm -rf $(BUILD_DIR)
