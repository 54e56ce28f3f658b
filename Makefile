# Radar Pod build, test and run targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO      ?= go
MODULE  := github.com/radarpod/radarpod
# Versions come from tags (v1.4.0 -> 1.4.0). They must stay semver (the
# updater compares them) and be valid image tags (no "+"): untagged checkouts
# build 0.0.0-dev.g<commit>.
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --exact-match 2>/dev/null); [ -n "$$v" ] && echo $${v\#v} || echo 0.0.0-dev.g$(COMMIT))
# The commit time in UTC, not the wall clock, keeps builds reproducible; a
# tree without git history (a source archive) falls back to the wall clock,
# so the image's created label is never empty. (A `git log | sed` pipeline
# with `|| date` never fell back: the pipeline's status is sed's.)
DATE    ?= $(shell d=$$(TZ=UTC0 git log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null); echo $${d:-$$(date -u +%Y-%m-%dT%H:%M:%SZ)})
LDFLAGS := -s -w -X $(MODULE)/internal/buildinfo.Version=$(VERSION) \
           -X $(MODULE)/internal/buildinfo.Commit=$(COMMIT) \
           -X $(MODULE)/internal/buildinfo.Date=$(DATE)
BINARIES  := radar-agent radar-updater radar-sign
PLATFORMS := linux/amd64 linux/arm64 linux/arm/v7
TEST_TIMEOUT ?= 20m

# Images. HOST_PLATFORM is what `make images` builds offline for this machine.
# DOCKER is the docker CLI the image targets run (DOCKER=/usr/bin/docker picks
# Debian's 20.10 CLI, whose built-in BuildKit `make images-multiarch` can use).
DOCKER        ?= docker
IMAGE_REPO    ?= ghcr.io/radarpod
AGENT_IMAGE   ?= $(IMAGE_REPO)/radar-agent
UPDATER_IMAGE ?= $(IMAGE_REPO)/radar-updater
GOARCH_HOST   := $(shell $(GO) env GOARCH)
HOST_PLATFORM := linux/$(GOARCH_HOST)$(if $(filter arm,$(GOARCH_HOST)),/v7)
# The development root CA `make images` pins in the updater; release builds
# pass the release root instead (ROOT_CA=path/to/root-ca.pem).
DEV_PKI       := .pki/dev
ROOT_CA       ?= $(DEV_PKI)/root-ca.pem
IMAGE_ARGS     = --build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) --build-arg CREATED=$(DATE)
COMPOSE       ?= $(shell $(DOCKER) compose version >/dev/null 2>&1 && echo "$(DOCKER) compose" || echo docker-compose)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build the binaries for this machine into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: build-all
build-all: ## cross-compile static binaries into dist/<os>/<arch>[/<variant>]/
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; variant=; \
		if [ "$$rest" != "$$arch" ]; then variant=$${rest#*/}; fi; \
		goarm=$${variant#v}; out=dist/$$p; mkdir -p $$out; \
		echo "build $$p -> $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out/ $(addprefix ./cmd/,$(BINARIES)); \
	done

.PHONY: build-host
build-host: ## cross-compile the static binaries for this machine's platform only
	@$(MAKE) --no-print-directory build-all PLATFORMS=$(HOST_PLATFORM)

$(DEV_PKI)/root-ca.pem:
	$(GO) run ./cmd/radar-sign init-ca --dir $(DEV_PKI) --name "Radar Pod development root (not for release)"

.PHONY: pki-dev
pki-dev: $(DEV_PKI)/root-ca.pem ## create the development release PKI (root CA) in .pki/dev

# The build context is staged build outputs only: .dockerignore admits dist/
# and deploy/docker/ and nothing else, so .pki/ (private keys) is never sent.
# The updater's pinned root is copied into dist/ rather than admitted where it
# lies: the legacy builder (Debian's docker.io 20.10) skips an excluded
# directory unless an exception pattern starts with its path, so a
# `!.pki/*/root-ca.pem` exception never reached the file there. A ROOT_CA
# holding a private key, or no certificate, is refused. It is staged on
# every build (cmp keeps an unchanged root's timestamp), so a different
# ROOT_CA always wins.
STAGED_ROOT_CA := dist/pki/root-ca.pem
.PHONY: stage-root-ca
stage-root-ca: $(ROOT_CA)
	@if grep -q 'PRIVATE KEY' $(ROOT_CA) || ! grep -q 'BEGIN CERTIFICATE' $(ROOT_CA); then \
		echo "ROOT_CA=$(ROOT_CA) must be a PEM certificate and hold no private key" >&2; exit 1; fi
	@mkdir -p $(dir $(STAGED_ROOT_CA))
	@cmp -s $(ROOT_CA) $(STAGED_ROOT_CA) || { cp $(ROOT_CA) $(STAGED_ROOT_CA) && echo "staged $(ROOT_CA) as $(STAGED_ROOT_CA)"; }

# The images hold the agent and the updater; radar-sign is a release tool.
IMAGE_BINARIES := radar-agent radar-updater
.PHONY: image-binaries image-binaries-host
image-binaries:
	@$(MAKE) --no-print-directory build-all BINARIES="$(IMAGE_BINARIES)"
image-binaries-host:
	@$(MAKE) --no-print-directory build-all PLATFORMS=$(HOST_PLATFORM) BINARIES="$(IMAGE_BINARIES)"

# These work with every builder: the legacy one (Debian's docker.io 20.10,
# or any CLI without buildx), BuildKit through buildx, and the BuildKit
# built into a 20.10 CLI (DOCKER_BUILDKIT=1).
.PHONY: images image-agent image-updater
images: image-agent image-updater ## build the agent and updater images for this machine, offline

image-agent: image-binaries-host ## build the agent image only
	$(DOCKER) build --build-arg TARGETPLATFORM=$(HOST_PLATFORM) $(IMAGE_ARGS) --target agent \
		-t $(AGENT_IMAGE):$(VERSION) -t $(AGENT_IMAGE):latest .

image-updater: image-binaries-host stage-root-ca ## build the updater image only
	$(DOCKER) build --build-arg TARGETPLATFORM=$(HOST_PLATFORM) $(IMAGE_ARGS) --target updater \
		-t $(UPDATER_IMAGE):$(VERSION) -t $(UPDATER_IMAGE):latest .

comma := ,
empty :=
space := $(empty) $(empty)
MULTIARCH_ARGS = $(IMAGE_ARGS) $(if $(OOKLA_DIR),--build-arg OOKLA_DIR=$(OOKLA_DIR))

# Foreign platforms need BuildKit: the legacy builder refuses a FROM scratch
# image for another platform ("does not match the specified platform").
# With PUSH=1 (CI: a docker-container buildx builder, logged in to the
# registry) one multi-arch index per image is pushed, with SBOM and
# provenance attestations; LATEST=1 (release CI, for the newest stable
# release only) tags the same index `latest` too, the tag
# docker-compose.yml runs by default. Without PUSH each platform is built
# and loaded into the local engine as <image>:<version>-<os>-<arch>[-<variant>]
# (the engine's image store cannot hold a multi-arch index), which is what
# `make image-sizes` reports; that build uses buildx where the plugin is
# installed, and otherwise the BuildKit built into a docker CLI older than 23
# (Debian's docker.io 20.10: DOCKER_BUILDKIT=1 docker build --platform).
PUSH_TAGS = -t $(1):$(VERSION)$(if $(filter 1,$(LATEST)), -t $(1):latest)
# The local per-platform build command: buildx, else the BuildKit built into
# a docker CLI before 23; empty when this machine has neither.
LOCAL_BUILDKIT = $(shell if $(DOCKER) buildx version >/dev/null 2>&1; then echo "$(DOCKER) buildx build --load"; \
	else case "$$($(DOCKER) version --format '{{.Client.Version}}' 2>/dev/null)" in \
	([0-9].*|1[0-9].*|2[0-2].*) echo "env DOCKER_BUILDKIT=1 $(DOCKER) build";; esac; fi)

# Checked before the binaries are cross-compiled, not after.
.PHONY: buildkit
buildkit:
ifeq ($(PUSH),1)
	@$(DOCKER) buildx version >/dev/null 2>&1 || { echo "make images-multiarch PUSH=1 needs the docker buildx plugin (https://docs.docker.com/go/buildx/)" >&2; exit 1; }
else
	@[ -n '$(LOCAL_BUILDKIT)' ] || { v=$$($(DOCKER) version --format '{{.Client.Version}}' 2>/dev/null); \
		echo "make images-multiarch needs BuildKit: the docker buildx plugin (https://docs.docker.com/go/buildx/)," \
		"or a docker CLI older than 23, which has BuildKit built in (Debian's docker.io 20.10: DOCKER=/usr/bin/docker);" \
		"'$(DOCKER)' is CLI $${v:-of unknown version} without buildx" >&2; exit 1; }
endif

.PHONY: images-multiarch
images-multiarch: buildkit image-binaries stage-root-ca ## build linux/amd64, linux/arm64, linux/arm/v7 images with BuildKit (PUSH=1: push multi-arch indexes with buildx)
ifeq ($(PUSH),1)
	$(DOCKER) buildx build --platform $(subst $(space),$(comma),$(PLATFORMS)) $(MULTIARCH_ARGS) --target agent \
		--sbom=true --provenance=mode=max $(call PUSH_TAGS,$(AGENT_IMAGE)) --push .
	$(DOCKER) buildx build --platform $(subst $(space),$(comma),$(PLATFORMS)) $(MULTIARCH_ARGS) --target updater \
		--sbom=true --provenance=mode=max $(call PUSH_TAGS,$(UPDATER_IMAGE)) --push .
else
	@set -e; build='$(LOCAL_BUILDKIT)'; \
	for p in $(PLATFORMS); do suffix=$$(echo $$p | tr / -); \
		for target in agent updater; do \
			if [ $$target = agent ]; then image=$(AGENT_IMAGE); else image=$(UPDATER_IMAGE); fi; \
			echo "$$build --platform $$p $(MULTIARCH_ARGS) --target $$target -t $$image:$(VERSION)-$$suffix ."; \
			$$build --platform $$p $(MULTIARCH_ARGS) --target $$target -t $$image:$(VERSION)-$$suffix . ; \
		done; \
	done
endif

.PHONY: image-sizes
image-sizes: ## print the sizes of the images built for this version (target: 15 MB each)
	@$(DOCKER) image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | grep -E '^($(AGENT_IMAGE)|$(UPDATER_IMAGE)):$(subst .,\.,$(VERSION))(-|$$)' \
		| while read ref id; do $(DOCKER) image inspect --format "$$ref {{.Os}}/{{.Architecture}}{{if .Variant}}/{{.Variant}}{{end}} {{.Size}}" $$id; done \
		| awk '{printf "%-70s %-14s %6.2f MB\n", $$1, $$2, $$3/1e6}'

# First run: the documented example becomes the pod's settings. An existing
# .env is never overwritten (no prerequisite: a newer example does not
# clobber your edits).
.env:
	cp .env.example .env

# The updater reaches the Docker socket through the socket's group, whose id
# differs between hosts. `make up` records this host's in .env (replacing an
# earlier DOCKER_GID= line, keeping every other line and comment), so a later
# plain `docker compose up` gets it too instead of the compose file's
# fallback.
DOCKER_SOCKET := /var/run/docker.sock
.PHONY: env-docker-gid
env-docker-gid: .env
	@gid=$$(stat -c %g $(DOCKER_SOCKET)) || { echo "$(DOCKER_SOCKET) is missing: the updater needs the local Docker engine's socket"; exit 1; }; \
	if grep -qx "DOCKER_GID=$$gid" .env; then :; \
	elif grep -q '^DOCKER_GID=' .env; then sed -i --follow-symlinks "s/^DOCKER_GID=.*/DOCKER_GID=$$gid/" .env; echo "DOCKER_GID=$$gid in .env"; \
	else { if [ -n "$$(tail -c 1 .env)" ]; then echo; fi; \
		echo "# The group of $(DOCKER_SOCKET) on this host (make up keeps it current)."; echo "DOCKER_GID=$$gid"; } >> .env; \
		echo "DOCKER_GID=$$gid added to .env"; \
	fi

# Compose hands each container only the variables its service lists in
# docker-compose.yml, so a name set in .env that no service lists reaches
# nothing. Say so: a typo (RADAR_TEST=ookla) would otherwise be ignored in
# silence, and the programs can report only the unknown names they receive.
.PHONY: env-check
env-check: .env ## warn about settings in .env that docker-compose.yml gives to no container
	@for name in $$(sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*=.*/\1/p' .env); do \
		grep -Eq '^[[:space:]]+'"$$name"':|[$$][{]'"$$name"'([:?-]|[}])' docker-compose.yml || \
			echo "warning: $$name is set in .env, but docker-compose.yml gives it to no container (a typo?): it is ignored" >&2; \
	done

.PHONY: up
up: images env-docker-gid env-check ## build everything and start the pod (agent + updater) with compose
	AGENT_TAG=$(VERSION) UPDATER_TAG=$(VERSION) RADAR_AGENT_IMAGE=$(AGENT_IMAGE) UPDATER_IMAGE=$(UPDATER_IMAGE) $(COMPOSE) up -d
	$(COMPOSE) ps

.PHONY: down
down: ## stop the pod (the data volume is kept)
	AGENT_TAG=$(VERSION) UPDATER_TAG=$(VERSION) $(COMPOSE) down

.PHONY: lint lint-static
lint: lint-static ## gofmt, go vet, staticcheck, the CI workflows (actionlint) and the compose files
	$(GO) vet ./...

# Everything lint checks but go vet, which `make test` runs inside go test
# (VET_CHECKS): there it reuses the test build's compiled packages, where a
# separate `go vet` compiled the whole dependency graph a second time
# (without -race), minutes of CPU on a cold 2-core CI machine.
lint-static:
	@unformatted=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) tool actionlint .github/workflows/*.yml
	@# The compose file reads .env; check it with the documented example.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp .env.example "$$tmp/.env" && \
		$(COMPOSE) --project-directory "$$tmp" -f $(CURDIR)/docker-compose.yml config -q && \
		$(COMPOSE) -f deploy/balena/docker-compose.yml config -q && echo "compose files ok"
	@# staticcheck type-checks from the export data `go list -export`
	@# compiles. With -race that is the build the tests compile anyway
	@# (about 150 s of CPU saved on a cold 2-core machine, where a plain
	@# run compiled the whole graph once more). The tool itself is built
	@# without it: -n builds it and prints its path.
	@sc=$$($(GO) tool -n staticcheck) && echo "GOFLAGS=-race staticcheck ./..." && GOFLAGS="$$GOFLAGS -race" "$$sc" ./...

# Every analyzer `go vet` runs by default, as this toolchain lists them, so
# that go test's vet pass (which otherwise runs a handful) checks as much as
# `go vet ./...` does, packages without tests included.
VET_CHECKS = $(shell $(GO) tool vet help 2>&1 | sed -n '/^Registered analyzers/,/^By default/s/^    \([a-z][a-z0-9]*\) .*/\1/p' | paste -sd, -)

# Lint runs beside the tests, not before them: staticcheck reads the race
# build the tests compile, and on a cold 2-core CI machine the whole run is
# CPU-bound, so what counts is compiling and running each thing once (see
# docs/benchmarks.md, "CI"). Either failing fails `make test`.
.PHONY: test
test: ## lint and every test, side by side (go vet inside go test; race detector, cgo-tagged integration tests included)
	@$(MAKE) --no-print-directory -j2 lint-static test-go

# TEST_P test binaries run at once (go test's default is one per core):
# the engine, compose and fault-drill packages wait on Docker healthchecks
# and restarts for much of their time, and four at a time keep a CPU-bound
# package from queueing behind two waiting ones. Nothing asserts on how
# long anything took.
TEST_P ?= 4

.PHONY: test-go
test-go: ## every test and go vet's full set of analyzers, without the rest of lint
	@checks='$(VET_CHECKS)'; [ -n "$$checks" ] || { echo "could not list go vet's analyzers (go tool vet help)" >&2; exit 1; }; \
	echo "$(GO) test -race -p $(TEST_P) -vet=<go vet's $$(echo $$checks | tr , '\n' | wc -l) analyzers> -timeout $(TEST_TIMEOUT) ./..."; \
	$(GO) test -race -p $(TEST_P) -vet="$$checks" -timeout $(TEST_TIMEOUT) ./...

# Benchmarks and drills run radar-bench, a development tool (cgo allowed: it
# embeds the real ndt-server); it is never shipped.
RADAR_BENCH := bin/radar-bench
.PHONY: $(RADAR_BENCH)
$(RADAR_BENCH):
	$(GO) build -o $@ ./cmd/radar-bench

.PHONY: bench
bench: bench-go bench-ndt7 bench-ndt7-qemu bench-footprint bench-outbox bench-update bench-sentry bench-fleet ## every benchmark; figures in bench/results.json (see docs/benchmarks.md)
	@$(MAKE) --no-print-directory bench-report

.PHONY: e2e
e2e: ## the pod end to end on this machine: images, compose stack, devserver, registry, updates, quick start
	$(GO) test -count=1 -v -timeout 20m ./internal/e2e/

# A pod on a compose bridge network cannot reach the host's loopback: give
# the devserver an address of this host the containers reach, e.g.
#   make devserver DEVSERVER_FLAGS='--listen 172.17.0.1:3000 --ndt7 172.17.0.1:3001'
# (README, "A local pods service").
DEVSERVER_FLAGS ?=
.PHONY: devserver
devserver: ## run a local pods service (radar-devserver) to point a pod at (DEVSERVER_FLAGS=...)
	$(GO) run ./cmd/radar-devserver $(DEVSERVER_FLAGS)

.PHONY: bench-report
bench-report: $(RADAR_BENCH) ## print the table of the last figures
	$(RADAR_BENCH) report

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of the hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./...

# NDT7 fidelity (docs/benchmarks/ndt7.md): as root, about 13 minutes. A quick
# run: make bench-ndt7 BENCH_NDT7_FLAGS='-rates 100 -runs 1'.
BENCH_NDT7_FLAGS ?=
.PHONY: bench-ndt7
bench-ndt7: $(RADAR_BENCH) ## NDT7 fidelity: agent vs M-Lab ndt7-client on an emulated 20/100/500 Mbit/s, 20 ms link (root)
	$(RADAR_BENCH) ndt7 -root . $(BENCH_NDT7_FLAGS)

# What an NDT7 test at 500 Mbit/s costs a 32-bit Pi in memory: the agent's
# runner for linux/arm/v7 under qemu-arm (Cortex-A7) against the amd64 build
# under qemu-x86_64, on the same emulated link (root, qemu-user; ~3 minutes).
.PHONY: bench-ndt7-qemu
bench-ndt7-qemu: $(RADAR_BENCH) ## peak RSS of a 500 Mbit/s NDT7 test on armv7 under qemu, as a ratio to amd64 (root)
	$(RADAR_BENCH) ndt7 -root . -qemu -rates 500 -runs 3 -ceiling=false

# bench-footprint, bench-outbox, bench-update: see docs/benchmarks/footprint.md,
# outbox.md and updates.md. Each runs the binaries `make build` makes.
.PHONY: bench-footprint
bench-footprint: build build-all images $(RADAR_BENCH) ## idle RSS of agent and updater after 60 s, binary sizes per platform, image sizes
	$(RADAR_BENCH) footprint -agent bin/radar-agent -updater bin/radar-updater -dist dist \
		-agent-image $(AGENT_IMAGE):$(VERSION) -updater-image $(UPDATER_IMAGE):$(VERSION)

.PHONY: bench-outbox
bench-outbox: build $(RADAR_BENCH) ## delivery of 10,000 results buffered during an outage; bytes on disk per result
	$(RADAR_BENCH) outbox -agent bin/radar-agent

# The agent against the service double through a 24 h outage on a clock
# 3600x real (about a minute): Sentry events sent (internal/telemetry's
# per-pod limits).
# 10,000 pods on a virtual clock (internal/bench/fleet, docs/fleet.md): a
# service restart, a 1 h outage with a backlog, and the same against a
# service answering 503 + Retry-After above its capacity. Seconds, not
# minutes; try other fleets with BENCH_FLEET_FLAGS='-pods 100000'.
BENCH_FLEET_FLAGS ?=
.PHONY: bench-fleet
bench-fleet: $(RADAR_BENCH) ## fleet of 10,000 pods after a service restart and a 1 h outage (simulated, production pacing code)
	$(RADAR_BENCH) fleet -root . $(BENCH_FLEET_FLAGS)

.PHONY: bench-sentry
bench-sentry: ## Sentry events of a pod whose service is gone 24 h and comes back
	$(GO) test -count=1 -v -run '^TestSentryOutage24h$$' ./internal/agent -args -sentry.record

.PHONY: bench-update
bench-update: build $(RADAR_BENCH) ## agent update and rollback on the real Docker engine, loopback registry (about 5 minutes)
	$(RADAR_BENCH) update -updater bin/radar-updater

# Fault drills (internal/faults): the real agent binary against the
# pods-service double, killed, starved, out of disk and fed garbage. `make
# test` runs them shortened; this runs them at full size (about 10 minutes)
# and records their figures in bench/out/faults.json. The disk drill mounts a
# tmpfs: run as root.
.PHONY: faults
faults: ## fault drills at full size: 100 kill -9s, a long outage, a full disk, garbage from the service, a hostile agent (root, Docker)
	$(GO) test -race -count=1 -timeout 30m -v ./internal/faults -run . -args -faults.full

# Every fuzz target, as package:target (go test -fuzz takes one of each per run).
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	internal/radar:FuzzCableFrame internal/radar:FuzzServiceAnswer internal/radar:FuzzIdentityFile \
	internal/speedtest/ookla:FuzzParse internal/speedtest/ookla:FuzzParseServerList \
	internal/handoff:FuzzRequestFile internal/handoff:FuzzStatusFile internal/handoff:FuzzTestLock internal/handoff:FuzzHostileSharedFile \
	internal/update/verify:FuzzCRL internal/outbox:FuzzDecode

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 30s); a crasher is saved in its package's testdata/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

.PHONY: clean
clean: ## remove build outputs (not the development PKI)
	rm -rf bin dist
