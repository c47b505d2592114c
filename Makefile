# The two commands a newcomer needs. Each installs what it needs first and is safe to run again.
.PHONY: start test install browser broker

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

# The Temporal UI screenshot test drives headless Chromium. Installed from
# Debian's packages when we are root on Debian/Ubuntu; elsewhere that test says
# how to get it and skips (in CI, where CI=true, it fails instead).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ; } || \
	  echo "note: chromium not installed; the Temporal UI screenshot test will skip"

# make start and the queue tests start their own RabbitMQ from Debian's
# rabbitmq-server package (dev/local-rabbitmq.ts); installed here when we are
# root on Debian/Ubuntu and it is missing (make start runs without the queue
# door when it cannot be).
broker:
	@test -x /usr/lib/rabbitmq/bin/rabbitmq-server || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; } ; } || \
	  echo "note: rabbitmq-server not installed; the queue tests need it (apt-get install rabbitmq-server)"

## make start: the whole local system on embedded defaults (Ctrl-C stops it),
## the RabbitMQ of the queue door included (installed by `broker` when missing)
start: install broker
	node --import tsx src/cli/main.ts start

## make test: type-check, lint, every jest tier against real Temporal and PostgreSQL,
## then the short fault suite (real SIGKILLs and restarts; faults/README.md), then
## a subset of the integration tests and the cluster fault scenarios against a
## real Temporal cluster (PostgreSQL, 4 shards, four service processes; built once)
test: install browser broker
	@mkdir -p .onceflow/test-results && rm -f .onceflow/test-results/jest.json .onceflow/test-results/jest-cluster.json faults/results/latest.json faults/results/cluster-latest.json
	@status=0; \
	  npm test -- --json --outputFile=.onceflow/test-results/jest.json || status=$$?; \
	  npm run faults:ci || status=$$?; \
	  npm run test:cluster -- --json --outputFile=.onceflow/test-results/jest-cluster.json || status=$$?; \
	  npm run faults:cluster || status=$$?; \
	  node test/tools/summary.mjs --jest .onceflow/test-results/jest.json --jest .onceflow/test-results/jest-cluster.json \
	    --faults faults/results/latest.json --faults faults/results/cluster-latest.json || status=$$?; \
	  exit $$status
