# flowctl's build, test and demo entry points. `make test` is what CI runs.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 30s
DEMO    ?= examples/docker-ttp/pipeline.hcl

.PHONY: build test demo fmt fuzz proto

## build: compile flowctl into bin/flowctl, and beside it flowctl-shim (the
## lean supervisor the process executor runs for each component)
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/flowctl ./cmd/flowctl
	CGO_ENABLED=0 $(GO) build -o bin/flowctl-shim ./cmd/flowctl-shim

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
