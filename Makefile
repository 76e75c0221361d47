# hush — build, test, fuzz, bench, lint, demo.
GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 5s
BENCHTIME ?= 1s
PKGS      := ./...

.PHONY: all build test fuzz bench lint demo clean mobile-check

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# vet + every test under the race detector (the README's test command).
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 -run 'Burst' ./node   # full-size bursts (scaled down under -race)

# The mobile facade alone: gobind bindings compiled (Go and Java), the
# android/ios dependency fence, cross-builds and their sizes (make test
# runs these too).
mobile-check:
	$(GO) test -count=1 -v -run 'TestBindings|TestMobileDeps|TestMobileBuilds' ./mobile

# Every fuzz target, each for FUZZTIME.
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  dir=$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "== $$dir $$t"; \
	    $(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) $$dir; \
	  done; \
	done

# Benchmarks: crypto per-message path, handshake and baselines in one run.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -count=1 ./internal/archtest

demo: build
	@$(BIN)/hush demo

clean:
	rm -rf $(BIN)
