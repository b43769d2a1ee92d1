# Two commands do everything: `make run` serves the assistant, `make test` checks it all.
# Every target installs what it needs first; `make help` lists them.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

PY := .venv/bin/python
STACK := $(PY) scripts/stack.py
PHONE ?= +525512345678
export PYTHONPATH := $(CURDIR)
# The Makefile is the developer's tool: development unless the caller says otherwise. Without
# BOT_ENV every process of the assistant starts in production (README, "Security").
export BOT_ENV ?= development
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export RASA_TELEMETRY_ENABLED := false

.PHONY: help install run test shell train validate lint format unit integration security test-stories services demo evaluate bench chaos lock clean crm-server migrate migration agent agent-unlock demo-agent browser inbox accept kb-check kb-evaluate kb-bench deploy-check scale-test notify-demo analytics report kpi-demo kpi-bench consents soak

help: ## List the targets
	@echo "Usage: make <target>   (first run builds .venv with Python 3.10: a few minutes)"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

install: ## Build .venv from requirements.lock (cached by content hash; Python 3.10 found by itself)
	@bash scripts/bootstrap.sh

run: install ## Train if data changed, migrate, load the demo data, serve Rasa, actions, outbox worker and console, restarting any that dies (Ctrl-C stops)
	@$(STACK) run

test: install lint deploy-check validate unit integration security test-stories evaluate ## Everything CI checks: the fast checks first, then the slow ones
	@echo "==> make test: all checks passed."

shell: install ## Talk to the bot in the terminal as PHONE (default: +525512345678)
	@$(STACK) shell --phone "$(PHONE)"

train: install ## Train the model if config, domain or data changed (FORCE=1 always trains)
	@$(STACK) model $(if $(FORCE),--force)

validate: install ## Check domain, training data and stories (rasa data validate), the knowledge base and the case catalogue
	@$(STACK) validate
	@$(PY) scripts/kb_check.py
	@$(PY) scripts/case_types_check.py

kb-check: install ## Check every kb/ article (fails on an invalid one) and list those past their review date (TODAY=2026-12-01)
	@$(PY) scripts/kb_check.py $(if $(TODAY),--today "$(TODAY)")

kb-evaluate: install ## Knowledge-base search on tests/kb_eval/questions.yml: recall@3, MRR, FAQ topics; report in results/kb/, fails below the gate
	@$(PY) scripts/kb_evaluate.py $(if $(QUESTIONS),--questions "$(QUESTIONS)")

kb-bench: install ## Knowledge-base search over 1,000 articles on one core: p50/p95/p99 (results/kb/bench.json; not a test)
	@$(PY) scripts/kb_bench.py

lint: install ## ruff check and format check
	@echo "==> Linting (ruff)..."
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

deploy-check: install ## Static checks of deploy/ (Dockerfiles, compose file, Kubernetes manifests, Helm values), offline
	@$(PY) scripts/deploy_check.py

format: install ## Reformat the Python code with ruff
	@.venv/bin/ruff format . && .venv/bin/ruff check --fix .

unit: install ## pytest tests/unit: the fast loop, no services and no model (under a minute)
	@echo "==> Running the unit tests..."
	@.venv/bin/pytest tests/unit

integration: install services browser ## pytest tests/integration: databases, Redis, the real stack (trains first if needed)
	@$(STACK) model
	@echo "==> Running the integration tests..."
	@bash scripts/integration_tests.sh

security: install services ## pytest tests/security: one test per finding of the trust audit (README, "Security")
	@$(STACK) model
	@echo "==> Running the security tests..."
	@.venv/bin/pytest tests/security

test-stories: install ## Conversation tests in tests/stories/*.yml (rasa test core)
	@$(STACK) test-stories

evaluate: install ## NLU on the held-out set, then per external source (tests/nlu_external/), then the knowledge-base search: reports in results/, fails below any gate
	@$(STACK) evaluate
	@$(PY) scripts/kb_evaluate.py

inbox: install ## Designers: export misunderstood customer messages, masked, to label (SINCE=2026-11-01 OUT=inbox/<day>.yml)
	@$(PY) scripts/inbox.py $(if $(SINCE),--since "$(SINCE)") $(if $(OUT),--out "$(OUT)")

accept: install ## Designers: add the labelled messages of FILE=inbox/<day>.yml to data/nlu/inbox_accepted.yml
	@test -n "$(FILE)" || { echo "usage: make accept FILE=inbox/<day>.yml (written by make inbox)"; exit 1; }
	@$(PY) scripts/accept.py "$(FILE)" $(if $(TARGET),--target "$(TARGET)")

services: ## Make sure PostgreSQL, Redis and RabbitMQ answer (start them or fail loudly)
	@bash scripts/ensure_services.sh

bench: install ## Our Twilio channel vs Rasa's built-in one, closed loop (CUSTOMERS=20 SECONDS=60 RAMP_UP=1; ~4 min). MODE=capacity: open-loop search for the highest rate with p95 ≤ 300 ms of ours ×1, ours ×2 replicas and Rasa's REST channel, CPU per message vs Agent.handle_message, peak RSS (STEP_SECONDS=15 VARIANTS=ours-1,ours-2,rest; ~12 min; PostgreSQL + Redis, HAProxy installed if missing)
ifeq ($(MODE),capacity)
	@$(MAKE) --no-print-directory services
	@$(PY) scripts/capacity.py $(if $(STEP_SECONDS),--step-seconds $(STEP_SECONDS)) $(if $(VARIANTS),--variants $(VARIANTS))
else
	@$(PY) scripts/bench.py $(if $(CUSTOMERS),--customers $(CUSTOMERS)) $(if $(SECONDS),--seconds $(SECONDS)) $(if $(RAMP_UP),--ramp-up $(RAMP_UP))
endif

soak: install services ## One Rasa replica (REPLICAS=2: two) at RATE msg/s for MINUTES (15, 30), every process's RSS sampled; prints the slope in MB/min and fails on growth (results/soak.json)
	@$(PY) scripts/soak.py $(if $(MINUTES),--minutes $(MINUTES)) $(if $(RATE),--rate $(RATE)) $(if $(REPLICAS),--replicas $(REPLICAS))

chaos: install ## Kill -9 Rasa, then the action server, then restart Redis while 30 customers write: 0 lost, doubled, out of order (~3 min, loopback)
	@$(STACK) model
	@$(PY) scripts/chaos.py $(if $(CUSTOMERS),--customers $(CUSTOMERS))

scale-test: install services ## Two Rasa + two action servers behind HAProxy (apt-get if missing), kill -9 one Rasa while customers write: 0 lost, doubled, out of order or refused (CUSTOMERS=200 SECONDS=60 RATE=10; ~4 min, loopback)
	@$(STACK) model
	@$(PY) scripts/scale_test.py $(if $(CUSTOMERS),--customers $(CUSTOMERS)) $(if $(SECONDS),--seconds $(SECONDS)) $(if $(RATE),--rate $(RATE))

demo: install ## Reload the demo data into the embedded CRM/ERP now
	@$(PY) -m bot.demo --force

notify-demo: install ## Post one signed demo event (Mariana's order out for delivery) to the running assistant's notification intake, and show its fate
	@$(PY) scripts/notify_demo.py --phone "$(PHONE)"

consents: install migrate ## Operators: the consent log of the days [FROM, TO) as CSV (FROM=2026-11-01 TO=2026-12-01 OUT=results/consents/x.csv; default the last 30 days)
	@$(PY) scripts/consents_export.py $(if $(FROM),--from "$(FROM)") $(if $(TO),--to "$(TO)") $(if $(OUT),--out "$(OUT)")

crm-server: install ## The reference CRM/ERP HTTP server (docs/crm-erp-api.yaml) on CRM_SERVER_PORT (8090)
	@$(PY) -m reference

migrate: install ## Apply the database migrations (Alembic) to DATABASE_URL; `make run` does it too
	@$(PY) -m bot.migrations upgrade

migration: install ## Autogenerate a migration from the tables in code: make migration MSG="add invoices"
	@test -n "$(MSG)" || { echo 'usage: make migration MSG="what it changes"'; exit 1; }
	@$(PY) -m bot.migrations revision -m "$(MSG)"
	@.venv/bin/ruff format bot/migrations/versions && .venv/bin/ruff check --fix -q bot/migrations/versions
agent: install migrate ## Create a console agent or reset its password: make agent NAME=ana [ROLE=supervisor] (AGENT_PASSWORD=... for scripts)
	@test -n "$(NAME)" || { echo "usage: make agent NAME=<agent name> [ROLE=agent|supervisor]"; exit 1; }
	@$(PY) -m connectors.console agent "$(NAME)" $(if $(ROLE),--role "$(ROLE)")

agent-unlock: install ## Lift a console login lockout: make agent-unlock NAME=ana [ADDRESS=10.0.0.7] (needs REDIS_URL)
	@test -n "$(NAME)" || { echo "usage: make agent-unlock NAME=<agent name> [ADDRESS=<client address>]"; exit 1; }
	@$(PY) -m connectors.console unlock "$(NAME)" $(if $(ADDRESS),--address "$(ADDRESS)")

demo-agent: install migrate ## Development only: create console agent 'demo' with a random password, printed
	@$(PY) -m connectors.console demo-agent

browser: ## Make Debian's chromium available for the console's browser test (apt-get if missing)
	@bash scripts/ensure_browser.sh

lock: ## Re-resolve requirements.in into requirements.lock (then commit both)
	@bash scripts/lock.sh

clean: ## Remove trained models, test results and the local database (not the venv cache)
	rm -rf models/*.tar.gz results var .pytest_cache

analytics: install migrate ## KPIs: turn the event broker's events into the analytics tables (RabbitMQ if EVENT_BROKER_URL, else the SQL broker); ONCE=1 stops when read
	@$(PY) -m connectors.analytics_consumer $(if $(ONCE),--once)

report: install migrate ## KPIs of a period, printed and as CSV in results/kpis/ (FROM=2026-11-23 TO=2026-11-30 ACTIVE=1200; docs/kpis.md)
	@$(PY) scripts/kpi_report.py $(if $(FROM),--from "$(FROM)") $(if $(TO),--to "$(TO)") $(if $(ACTIVE),--active-customers "$(ACTIVE)") $(if $(OUT),--out "$(OUT)")

kpi-demo: install migrate ## Fill DATABASE_URL with ~3,000 seeded conversations (4 weeks) for `make report` (CONVERSATIONS=3000 SEED=19)
	@$(PY) scripts/kpi_demo.py $(if $(CONVERSATIONS),--conversations $(CONVERSATIONS)) $(if $(SEED),--seed $(SEED))

kpi-bench: install ## Time the KPIs of one week of 100,000 conversations (BENCH_DATABASE_URL, default a SQLite file in var/; not a test)
	@$(PY) scripts/kpi_bench.py
