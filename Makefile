# Aisha: the two commands a newcomer needs are `make demo` and `make test`.
.PHONY: demo test reliability build deps services-start services-stop services-status migrate clean-local

deps:
	@deploy/local/install-deps.sh

build: deps
	swift build

test: deps
	@deploy/local/run-tests.sh

demo: deps
	@deploy/local/demo.sh

# The reliability suite: kills, outages, FAL faults, hostile input (docs/reliability.md).
reliability: deps
	@deploy/local/reliability.sh $(CASES)

services-start: deps
	@deploy/local/services.sh start

services-stop:
	@deploy/local/services.sh stop

services-status:
	@deploy/local/services.sh status

migrate: build
	@. ./.local/env && swift run aisha migrate

# Stops the local services and deletes their data (.local/ and the root-owned cluster folders).
clean-local: services-stop
	@for n in .local/pg-*; do [ -d "$$n" ] && deploy/local/postgres.sh destroy "$${n##*/pg-}"; done; rm -rf .local
