# The two commands a new user needs (see README.md):
#   make run    install what is missing, start the Docker engine, start the
#               runner images' build in the background (core languages
#               first), build the service beside it, then run it (API +
#               workers) on :3000, serving each language once its image exists
#   make test   the same set-up plus a test Redis, then the whole test suite
#               (integration tests and the hostile-program suite, under runc,
#               on the default CODE_RUNNER_RECYCLE=per-caller; the hostile
#               suite again with a fresh container per job)
# Both are quick when everything is already in place.

CARGO ?= cargo

.PHONY: run test test-gvisor fuzz screenshot bench setup setup-test images lint engine clean-containers

run: setup
	$(CARGO) run --bin code-runner -- serve

test: setup-test
	scripts/check-no-containers.sh --remove-stale
	CARGO="$(CARGO)" scripts/test-suites.sh
	CODE_RUNNER_RECYCLE=off CARGO="$(CARGO)" scripts/test-suites.sh hostile
	scripts/check-no-containers.sh

# Refresh the README's screenshots (docs/dashboard.png, docs/playground.png).
screenshot: setup-test
	mkdir -p docs
	CODE_RUNNER_SCREENSHOT=$(CURDIR)/docs/dashboard.png \
	CODE_RUNNER_PLAYGROUND_SCREENSHOT=$(CURDIR)/docs/playground.png $(CARGO) test --test dashboard

# Fuzz the API from its OpenAPI document (schemathesis, bounded examples).
fuzz: setup-test
	scripts/fuzz.sh
	scripts/check-no-containers.sh

# Every figure of BENCHMARKS.md, measured in one run (about 25 minutes).
bench:
	loadtest/bench.sh

# The hostile-program suite again, with every job under gVisor (runsc) and
# containers recycled between any jobs (make test runs it under runc recycled
# per caller, the default, and with a fresh container per job).
test-gvisor: setup-test
	scripts/setup.sh --gvisor
	CODE_RUNNER_TEST_RUNTIME=runsc CODE_RUNNER_RECYCLE=all CARGO="$(CARGO)" scripts/test-suites.sh hostile fairness
	scripts/check-no-containers.sh

setup:
	scripts/setup.sh --background-images

setup-test:
	scripts/setup.sh --redis
	cd tests/interop && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }
	[ target/interop-venv/.installed -nt tests/interop/requirements.txt ] || { python3 -m venv target/interop-venv && target/interop-venv/bin/pip install --quiet -r tests/interop/requirements.txt && touch target/interop-venv/.installed; }

# Docker engine only.
engine:
	scripts/setup.sh

images:
	docker/build-images.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Remove every container the service created (all workers on this engine).
clean-containers:
	docker ps -aq --filter label=code-runner.managed=1 | xargs -r docker rm -f
