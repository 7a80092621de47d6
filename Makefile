# flowctl's build, test and demo entry points. `make test` is what CI runs.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
DEMO    ?= examples/docker-ttp/pipeline.hcl

.PHONY: build test demo fmt fuzz

## build: compile flowctl into bin/flowctl
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/flowctl ./cmd/flowctl

## test: fail on unformatted Go or vet findings, then run every test with the race detector
test:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would change these files (run make fmt):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## demo: build flowctl, then validate the Docker TTP example and show its graph
demo: build
	./bin/flowctl validate $(DEMO)
	./bin/flowctl graph $(DEMO)

## fmt: format the Go code and the HCL examples
fmt:
	gofmt -w .
	$(GO) run ./cmd/flowctl fmt -recursive examples

## fuzz: run each fuzz target for FUZZTIME (30s)
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
