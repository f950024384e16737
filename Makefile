GO ?= go
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

# go test through internal/testsummary: go test's usual output (failed
# tests, each package's ok/FAIL line), then the skipped tests and why.
GOTEST = $(GO) run ./internal/testsummary $(GO) test -json

STATICCHECK = $(shell command -v staticcheck 2>/dev/null || \
	{ p="$$($(GO) env GOPATH)/bin/staticcheck"; [ -x "$$p" ] && echo "$$p"; })

# The GORM releases the plugin's tests run against: the oldest supported
# (what go.mod requires) and the current one, each with the drivers and
# dbresolver of its time. Raising the oldest means changing go.mod, this
# and the README's "Supported versions" together.
GORM_OLDEST ?= gorm.io/gorm@v1.25.11 gorm.io/driver/mysql@v1.5.0 \
	gorm.io/driver/postgres@v1.5.6 gorm.io/driver/sqlite@v1.5.0 gorm.io/plugin/dbresolver@v1.5.0
GORM_CURRENT ?= gorm.io/gorm@v1.31.2 gorm.io/driver/mysql@v1.6.0 \
	gorm.io/driver/postgres@v1.6.3 gorm.io/driver/sqlite@v1.6.0 gorm.io/plugin/dbresolver@v1.6.2
# The packages that use GORM.
GORM_PACKAGES ?= . ./internal/model/ ./internal/outbox/

.PHONY: test test-fast test-gorm test-gorm-oldest test-gorm-current vet staticcheck bench demo jstest fuzz

# test: vet, staticcheck, then every Go test with the race detector
# (browser and JS tests included: they are driven from Go tests). It ends
# with the list of skipped tests; CI sets TELEGRAPHY_TEST_REQUIRE_SERVICES=1
# so that a missing service fails instead.
test: vet staticcheck
	@echo $(GO) test $(GOFLAGS_TEST) ./...
	@$(GOTEST) $(GOFLAGS_TEST) ./...; rc=$$?; \
	[ -n "$(STATICCHECK)" ] || echo "staticcheck: not installed, so it did not run"; exit $$rc

# test-fast: the fast tier, for every change. Short mode leaves out every
# test that needs PostgreSQL, MariaDB, Redis or Chromium, the fault-process
# tests and the long runs; no race detector.
test-fast:
	@echo $(GO) test -short -count=1 ./...
	@$(GOTEST) -short -count=1 ./...

vet:
	$(GO) vet ./...

staticcheck:
	@if [ -n "$(STATICCHECK)" ]; then echo staticcheck ./...; "$(STATICCHECK)" ./...; \
	else echo "staticcheck: not installed, so it does not run" \
		"(go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)"; fi

# test-gorm: the tests of GORM_PACKAGES against the oldest and the current
# GORM. Each run resolves its versions in a copy of go.mod (go test
# -modfile); go.mod and go.sum stay as they are.
test-gorm: test-gorm-oldest test-gorm-current

test-gorm-oldest:
	$(call gorm_test,$(GORM_OLDEST))

# The generics API (GORM v1.30 and later) is tested with the current GORM
# only (generics_test.go).
test-gorm-current:
	$(call gorm_test,$(GORM_CURRENT),-tags gorm_generics)

define gorm_test
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	cp go.mod go.sum "$$d/" && \
	$(GO) get -modfile="$$d/go.mod" $(1) && \
	$(GO) mod tidy -modfile="$$d/go.mod" && \
	echo "$(GO) test $(GOFLAGS_TEST) $(GORM_PACKAGES) with" \
		$$($(GO) list -modfile="$$d/go.mod" -m -f '{{.Path}}@{{.Version}}' \
			gorm.io/gorm gorm.io/driver/mysql gorm.io/driver/postgres gorm.io/driver/sqlite gorm.io/plugin/dbresolver) && \
	$(GOTEST) -modfile="$$d/go.mod" $(GOFLAGS_TEST) $(2) $(GORM_PACKAGES)
endef

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

demo:
	$(GO) run ./cmd/telegraphy demo

# jstest: the node tests of telegraphy.js and the demo's browser tests
# (headless Chromium); run "npm ci" first. Go tests start the hubs they use.
jstest:
	$(GOTEST) $(GOFLAGS_TEST) -run 'TestNode|TestBrowser' ./jsclient/ ./examples/demo/
