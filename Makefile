# pulse.infra — the commands a user types. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help venv lab lab-up lab-down lab-status test lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv with everything pinned in requirements.txt

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

lab: venv lab-up ## bring the whole stack up in the lab (moto + containers), then site.yml
	ansible-playbook site.yml

lab-up: venv ## start the lab only: base image, moto, instance backer (idempotent)
	$(VENV)/bin/python lab/labctl.py up

lab-down: venv ## remove everything the lab created (idempotent)
	$(VENV)/bin/python lab/labctl.py down

lab-status: venv ## what the lab is running
	$(VENV)/bin/python lab/labctl.py status

lint: venv ## ansible-lint, production profile
	ansible-lint --offline --profile production

MOLECULE_WORKERS ?= 2

# The molecule scenarios (one container each) run in the background, 2 at a time, while the
# lab tests run in order in the foreground; the lab teardown check runs last, alone. (--ignore
# does not take a testpaths entry out of a run, --ignore-glob does: without it the foreground
# ran every molecule scenario a second time.)
test: venv ## every test: lint, unit, lab integration, molecule; ends with the lab torn down
	$(VENV)/bin/python lab/labctl.py up
	@status=0; \
	( pytest -n $(MOLECULE_WORKERS) tests/molecule > .lab/molecule-tests.log 2>&1; \
	  echo $$? > .lab/molecule-tests.rc ) & \
	pytest --ignore-glob='tests/molecule/*' -m "not teardown" || status=$$?; \
	wait; \
	echo "---- molecule scenarios (log: .lab/molecule-tests.log) ----"; \
	tail -n 40 .lab/molecule-tests.log; \
	[ "$$(cat .lab/molecule-tests.rc)" = 0 ] || status=1; \
	pytest -m teardown tests/final || status=$$?; \
	exit $$status
