# The two commands a newcomer needs. Each installs what it needs first and is safe to run again.
.PHONY: start test install faults bench

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

## make start: the whole local system on embedded defaults (Ctrl-C stops it)
start: install
	npx tsx src/cli/main.ts start

## make test: type-check, lint, then every test tier against real Temporal and PostgreSQL
test: install
	npm test
