# Radar Pod build, test and run targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO      ?= go
MODULE  := github.com/radarpod/radarpod
# Versions come from tags (v1.4.0 -> 1.4.0) and must stay semver: the updater
# compares them. Untagged checkouts build 0.0.0-dev+<commit>.
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --exact-match 2>/dev/null); [ -n "$$v" ] && echo $${v\#v} || echo 0.0.0-dev+$(COMMIT))
# The commit time, not the wall clock, keeps builds reproducible.
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null | sed 's/+00:00/Z/' || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(MODULE)/internal/buildinfo.Version=$(VERSION) \
           -X $(MODULE)/internal/buildinfo.Commit=$(COMMIT) \
           -X $(MODULE)/internal/buildinfo.Date=$(DATE)
BINARIES  := radar-agent radar-updater radar-sign
PLATFORMS := linux/amd64 linux/arm64 linux/arm/v7
TEST_TIMEOUT ?= 20m

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the binaries for this machine into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: build-all
build-all: ## cross-compile static binaries into dist/<os>/<arch>[/<variant>]/
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; variant=$$( [ "$$rest" != "$$arch" ] && echo $${rest#*/} ); \
		goarm=$${variant#v}; out=dist/$$p; mkdir -p $$out; \
		echo "build $$p -> $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out/ $(addprefix ./cmd/,$(BINARIES)); \
	done

.PHONY: lint
lint: ## gofmt, go vet, staticcheck
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

.PHONY: test
test: lint ## lint, then every test (race detector, cgo-tagged integration tests included)
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

.PHONY: bench
bench: ## benchmarks (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: clean
clean:
	rm -rf bin dist
