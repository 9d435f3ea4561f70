# Eddy's build. `make` (or `make help`) lists the targets.
#
# Tools are pinned below and installed into .tools/bin by `make tools`, never
# taken from the user's GOPATH, so every machine and CI generate and lint with
# the same versions. protoc comes from Debian (scripts/install-protoc.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO ?= go

# Pinned tool versions. Changing one reinstalls that tool on the next build.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GOLANGCI_LINT_VERSION      := v2.15.0
# golang.org/x/perf has no tags: this is its newest pseudo-version.
BENCHSTAT_VERSION          := v0.0.0-20260908200009-22c9c6c9d4da
VERSITYGW_VERSION          := v1.8.0
# protoc is not pinned by us but by Debian's protobuf-compiler; the committed
# generated code was made with this one and records it in its header.
PROTOC_VERSION             := 3.21.12

TOOLS_DIR   := $(CURDIR)/.tools
TOOLS_BIN   := $(TOOLS_DIR)/bin
TOOLS_STAMP := $(TOOLS_DIR)/stamps
export GOBIN := $(TOOLS_BIN)

PROTOC_GEN_GO      := $(TOOLS_BIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS_BIN)/protoc-gen-go-grpc
GOLANGCI_LINT      := $(TOOLS_BIN)/golangci-lint
BENCHSTAT          := $(TOOLS_BIN)/benchstat
VERSITYGW          := $(TOOLS_BIN)/versitygw

# Each .proto file sits in the folder of the Go package generated from it
# (proto/eddypb/controlplane.proto -> proto/eddypb/controlplane.pb.go).
PROTO_DIR   := proto
PROTO_OUT   := proto
PROTO_FILES := $(wildcard $(PROTO_DIR)/*/*.proto)

BIN := bin/eddy

# protoc_gen runs protoc on every .proto file with the pinned plugins, writing
# into the directory $(1).
define protoc_gen
PATH="$(TOOLS_BIN):$$PATH" protoc -I $(PROTO_DIR) \
	--go_out=$(1) --go_opt=paths=source_relative \
	--go-grpc_out=$(1) --go-grpc_opt=paths=source_relative \
	$(PROTO_FILES)
endef

# go_tool declares how to install one Go tool: $(1) the binary's name,
# $(2) its package, $(3) its version. The binary depends on a stamp named
# after the version, so a missing binary or a new pin reinstalls it and
# nothing else does.
define go_tool
$(TOOLS_STAMP)/$(1)@$(3):
	@mkdir -p $(TOOLS_STAMP)
	@rm -f $(TOOLS_STAMP)/$(1)@*
	@touch $$@

$(TOOLS_BIN)/$(1): $(TOOLS_STAMP)/$(1)@$(3)
	@echo "installing $(2)@$(3)"
	@$(GO) install $(2)@$(3)
	@touch $$@
endef

$(eval $(call go_tool,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION)))
$(eval $(call go_tool,protoc-gen-go-grpc,google.golang.org/grpc/cmd/protoc-gen-go-grpc,$(PROTOC_GEN_GO_GRPC_VERSION)))
$(eval $(call go_tool,golangci-lint,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION)))
$(eval $(call go_tool,benchstat,golang.org/x/perf/cmd/benchstat,$(BENCHSTAT_VERSION)))
$(eval $(call go_tool,versitygw,github.com/versity/versitygw/cmd/versitygw,$(VERSITYGW_VERSION)))

##@ General

.PHONY: help
help: ## Show this help.
	@echo "Usage: make TARGET [ARGS=...]"
	@awk 'BEGIN {FS = ":.*## "} \
		/^##@ / {printf "\n%s:\n", substr($$0, 5)} \
		/^[a-zA-Z0-9_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Tools

.PHONY: tools
tools: protoc $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) $(GOLANGCI_LINT) $(BENCHSTAT) $(VERSITYGW) ## Install protoc and the pinned tools into .tools/bin (a no-op when up to date).
	@:

.PHONY: protoc
protoc: ## Install protoc from Debian's protobuf-compiler if it is not on PATH.
	@./scripts/install-protoc.sh

.PHONY: tools-clean
tools-clean: ## Remove .tools, so the next `make tools` reinstalls everything.
	rm -rf $(TOOLS_DIR)

##@ Build

.PHONY: build
build: ## Build bin/eddy.
	$(GO) build -o $(BIN) ./cmd/eddy

.PHONY: examples
examples: ## Build the example jobs into bin/.
	$(GO) build -o bin/wordcount ./examples/wordcount
	$(GO) build -o bin/keyedcount ./examples/keyedcount

.PHONY: run
run: build examples ## Start a local cluster (a control plane node, two workers) and run the wordcount job on it; job flags in ARGS.
	rm -rf data/run
	./$(BIN) local --data-dir data/run --log-level warn --run bin/wordcount -p 2 -- -lines 20 $(ARGS)

.PHONY: fmt
fmt: ## Format the Go code.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (config in .golangci.yml).
	$(GOLANGCI_LINT) run ./...

.PHONY: clean
clean: ## Remove build outputs (bin/) and cached test results; keeps .tools.
	rm -rf bin
	$(GO) clean -testcache

##@ Protobuf

.PHONY: proto
proto: protoc $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Regenerate the Go code in proto/*/ from the .proto files beside it.
	rm -f $(PROTO_OUT)/*/*.pb.go
	$(call protoc_gen,$(PROTO_OUT))

# proto-check compares a fresh generation with the committed files: every
# generated file must match byte for byte, and no committed *.pb.go may lack
# a source (left over from a deleted .proto).
.PHONY: proto-check
proto-check: protoc $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Fail if the generated code in proto/ is not what `make proto` generates.
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(call protoc_gen,$$tmp); \
	stale=0; \
	for f in $$(cd "$$tmp" && find . -type f -printf '%P\n' | sort); do \
		if ! cmp -s "$$tmp/$$f" "$(PROTO_OUT)/$$f"; then \
			echo "proto-check: $(PROTO_OUT)/$$f differs from the generated code"; \
			diff -u "$(PROTO_OUT)/$$f" "$$tmp/$$f" 2>&1 | head -40 || true; \
			stale=1; \
		fi; \
	done; \
	for f in $$(cd "$(PROTO_OUT)" && find . -type f -name '*.pb.go' -printf '%P\n' | sort); do \
		if [ ! -e "$$tmp/$$f" ]; then \
			echo "proto-check: $(PROTO_OUT)/$$f has no .proto source"; \
			stale=1; \
		fi; \
	done; \
	if [ "$$stale" -ne 0 ]; then \
		have=$$(protoc --version | awk '{print $$2}'); \
		if [ "$$have" != "$(PROTOC_VERSION)" ]; then \
			echo "proto-check: note: protoc is $$have but the code was generated with $(PROTOC_VERSION)"; \
		fi; \
		echo "generated code is stale: run make proto"; \
		exit 1; \
	fi

##@ Test

.PHONY: test
test: proto-check vet $(VERSITYGW) ## Check generated code, vet, and run all tests with the race detector.
	EDDY_VERSITYGW=$(VERSITYGW) $(GO) test -race -count=1 -timeout 15m ./...

.PHONY: bench
bench: ## Run the benchmarks (compare runs with .tools/bin/benchstat).
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: chaos
chaos: ## Run the chaos suite (build tag chaos) under test/.
	$(GO) test -tags chaos -count=1 ./test/...
