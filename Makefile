# flowctl's build, test and demo entry points. `make test` is what CI runs.

# Go 1.26 on PATH, or at /usr/local/go/bin (added to PATH when go is not
# found, for go and gofmt alike).
export PATH := $(if $(shell command -v go),$(PATH),/usr/local/go/bin:$(PATH))
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
DEMO    ?= examples/quickstart/pipeline.hcl
# The example components (examples/components/NAME), and the name and tag
# of their images: $(IMAGE_PREFIX)NAME:$(IMAGE_TAG).
COMPONENTS   := counter-source transform-processor file-sink
IMAGE_PREFIX ?= flowctl/
IMAGE_TAG    ?= latest

.PHONY: build test demo fmt fuzz proto images

## build: compile flowctl into bin/flowctl, and beside it flowctl-shim (the
## lean supervisor the process executor runs for each component) and the
## example components (bin/counter-source, bin/transform-processor,
## bin/file-sink; static)
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/flowctl ./cmd/flowctl
	CGO_ENABLED=0 $(GO) build -o bin/flowctl-shim ./cmd/flowctl-shim
	CGO_ENABLED=0 $(GO) build -o bin/ $(COMPONENTS:%=./examples/components/%)

## images: build each example component into a FROM scratch image
## $(IMAGE_PREFIX)NAME:$(IMAGE_TAG) (default flowctl/NAME:latest). The static
## Linux binary is built here, outside Docker, and is the whole build
## context: nothing is pulled.
images:
	@set -e; for c in $(COMPONENTS); do \
		CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -o bin/images/$$c/$$c ./examples/components/$$c; \
		docker build -q -f examples/components/$$c/Dockerfile -t $(IMAGE_PREFIX)$$c:$(IMAGE_TAG) bin/images/$$c; \
		echo "built $(IMAGE_PREFIX)$$c:$(IMAGE_TAG)"; \
	done

## test: fail on unformatted Go or vet findings, then run every test with the race detector
test:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would change these files (run make fmt):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

## demo: build everything, then run the quickstart pipeline (examples/quickstart)
## with flowctl run: processes, the control plane flowctl starts, events moving
## into examples/quickstart/out/events.ndjson; Ctrl-C destroys it
demo: build
	./bin/flowctl run $(DEMO)

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

## proto: regenerate proto/gen from proto/**/*.proto (needs protoc, protoc-gen-go and
## protoc-gen-go-grpc, looked up in PATH and $(go env GOPATH)/bin; the generated code
## is committed, so builds and CI need none of them)
PROTO_FILES = $(shell find proto -name '*.proto' -not -path 'proto/gen/*' | sort)
proto:
	@set -e; export PATH="$$PATH:$$($(GO) env GOPATH)/bin"; \
	command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler"; exit 1; }; \
	command -v protoc-gen-go >/dev/null || { echo "protoc-gen-go not found: go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"; exit 1; }; \
	command -v protoc-gen-go-grpc >/dev/null || { echo "protoc-gen-go-grpc not found: go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"; exit 1; }; \
	rm -rf proto/gen; \
	protoc -I proto \
		--go_out=. --go_opt=module=github.com/flowctl/flowctl \
		--go-grpc_out=. --go-grpc_opt=module=github.com/flowctl/flowctl \
		$(PROTO_FILES:proto/%=%); \
	echo "regenerated proto/gen"
