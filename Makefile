# The two commands the README gives; each installs what is missing first.
#   make selftest   build clpool and cross-check every operation on every backend
#   make test       lint the kernels, build the documentation, run the test suite, and selftest
#                   every OpenCL implementation
#   make python     build libclpool-c.so, after which `PYTHONPATH=python python3 -c "import clpool"` works

SWIFT_BUILD_FLAGS ?= -c release
PYTHON ?= python3

.PHONY: setup build selftest lint docs python python-deps test gpu-bundle clean

setup:
	@scripts/setup

build: setup
	swift build $(SWIFT_BUILD_FLAGS)

selftest: build
	.build/release/clpool selftest

lint: setup
	scripts/lint-kernels

# The DocC catalog (Sources/CLPool/CLPool.docc) and every doc comment; a warning fails the build.
docs: setup
	swift package generate-documentation --target CLPool --warnings-as-errors

# The C ABI's library, which the Python module (python/clpool) and the C ABI tests load.
python: setup
	swift build $(SWIFT_BUILD_FLAGS) --product clpool-c

# numpy and pytest for Tests/python, through pip when python3 lacks them.
python-deps:
	@$(PYTHON) -c "import numpy, pytest" 2>/dev/null || $(PYTHON) -m pip install -q numpy pytest

test: lint docs python python-deps
	swift build $(SWIFT_BUILD_FLAGS) --product clpool
	swift test $(SWIFT_BUILD_FLAGS)
	$(PYTHON) -m pytest -q -rs Tests/python Tests/bench
	scripts/check-drivers
	scripts/gpu-bundle --no-pack
	scripts/gpu-check --dry-run

# What scripts/gpu-check runs on a machine with a GPU: dist/gpu-check.tar.xz.
gpu-bundle: setup
	scripts/gpu-bundle

clean:
	rm -rf .build .build-static dist
