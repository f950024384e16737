GO ?= go
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: test vet staticcheck bench demo jstest fuzz

# test: vet, staticcheck when installed, then every Go test with the race
# detector (browser and JS tests included: they are driven from Go tests).
test: vet
	@if command -v staticcheck >/dev/null 2>&1; then echo staticcheck ./...; staticcheck ./...; \
	elif [ -x "$$($(GO) env GOPATH)/bin/staticcheck" ]; then echo staticcheck ./...; "$$($(GO) env GOPATH)/bin/staticcheck" ./...; fi
	$(GO) test $(GOFLAGS_TEST) ./...

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./...

demo:
	$(GO) run ./cmd/telegraphy demo

# jstest: the node tests of telegraphy.js and the demo's browser tests
# (headless Chromium); run "npm ci" first. Go tests start the hubs they use.
jstest:
	$(GO) test $(GOFLAGS_TEST) -run 'TestNode|TestBrowser' ./jsclient/ ./examples/demo/
