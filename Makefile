# The two commands the README gives; each installs what is missing first.
#   make selftest   build clpool and cross-check every operation on every backend
#   make test       lint the kernels, build the documentation, run the test suite, and selftest
#                   every OpenCL implementation

SWIFT_BUILD_FLAGS ?= -c release

.PHONY: setup build selftest lint docs test gpu-bundle clean

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

test: lint docs
	swift build $(SWIFT_BUILD_FLAGS) --product clpool
	swift test $(SWIFT_BUILD_FLAGS)
	scripts/check-drivers
	scripts/gpu-bundle --no-pack
	scripts/gpu-check --dry-run

# What scripts/gpu-check runs on a machine with a GPU: dist/gpu-check.tar.xz.
gpu-bundle: setup
	scripts/gpu-bundle

clean:
	rm -rf .build .build-static dist
