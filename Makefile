# ruche — see README.md. `make demo` and `make test` install what they need.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/ruche-platform/ruche/internal/cli.Version=$(VERSION)

.PHONY: all build prereqs demo test test-unit vet bench clean testbed

all: build

# The containers' init (cmd/ruche-init) first: ruche embeds it.
build:
	$(GO) generate ./internal/initbin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ruche ./cmd/ruche

prereqs:
	@scripts/prereqs.sh

demo: prereqs build
	@scripts/demo.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# The whole suite: unit tests, then Docker-backed integration and end-to-end
# tests (they need root and a dockerd, which prereqs provides).
test: prereqs vet build
	$(GO) test -count=1 -timeout 45m -p 2 ./...

test-unit:
	$(GO) test -count=1 -short ./...

bench: prereqs build
	@bench/run.sh
	@bench/ingress/run.sh
	@bench/failover/run.sh
	@bench/scheduler/run.sh
	@bench/managers/run.sh

# A ruche cluster of 3 nodes on this machine (network namespaces, a dockerd
# each; needs root), until ^C. See internal/testbed/README.md.
testbed: build
	$(GO) build -o bin/ruche-testbed ./cmd/ruche-testbed
	bin/ruche-testbed -bin bin/ruche $(TESTBED_FLAGS)

clean:
	rm -rf bin .demo
