# pulse.infra — the commands a user types. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
export PATH := $(abspath $(VENV))/bin:$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help venv lab lab-up lab-down lab-status lab-release status test lint unit sanity lab-test

help: ## list the targets and the everyday operations
	@echo "Targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'
	@echo "Operations (lab by default; add -i inventories/production for AWS; -e help=true shows a playbook's parameters):"
	@echo "  ansible-playbook site.yml                                  converge everything (keeps each node's release)"
	@echo "  ansible-playbook deploy_node.yml -e version=v1.2           rolling deploy of the newest v1.2.x, rollback on a failed gate"
	@echo "  ansible-playbook playbooks/build_node.yml -e version=v1.3.0  build and publish a release"
	@echo "  ansible-playbook playbooks/restart.yml [-l <node>]         drained rolling restart"
	@echo "  ansible-playbook playbooks/status.yml                      one line per node (make status)"
	@echo "  ansible-playbook playbooks/backup.yml -e backup_now=true   a backup now"
	@echo "  ansible-playbook playbooks/restore.yml -l <node> [-e confirm=<node>]  check a backup; restore with confirm (roles/backup_cron/README.md)"
	@echo "  ansible-playbook playbooks/teardown.yml -e confirm=<env>   remove the stack (data kept)"

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

lab-status: venv ## what the lab is running (moto, backer, containers)
	$(VENV)/bin/python lab/labctl.py status

lab-release: venv ## the release pipeline in the lab for TAG: test, build, publish (as the CI publish role), deploy
	$(VENV)/bin/python lab/release.py $(TAG)

status: venv ## one line per node: instance, AZ, address, release, height, peers, health, target
	ansible-playbook playbooks/status.yml

lint: venv ## ansible-lint, production profile
	ansible-lint --offline --profile production

unit: venv ## unit tests only: no lab, no Docker, no root (two workers)
	pytest -n 2 -p no:cacheprovider tests/unit

sanity: venv ## ansible-test sanity on the collection as it ships (tests/sanity/run)
	tests/sanity/run

lab-test: venv ## the lab tests only, in order (root, Docker); the lab stays up
	$(VENV)/bin/python lab/labctl.py up
	pytest $(LAB_ONLY) -m "not teardown"

MOLECULE_WORKERS ?= 1
# The tests that need no lab stack: they run in the background, beside the lab tests.
BACKGROUND_TESTS := tests/unit tests/lint tests/standin
LAB_ONLY := $(foreach d,$(BACKGROUND_TESTS) tests/molecule,--ignore-glob='$(d)/*')

# Two lines of tests at once, one per core. The foreground is the longer path: the lab tests
# in order (the lab itself, provisioning, site.yml, deploys, backups...). The background runs
# the tests that need no lab stack (unit, lint, stand-in), then the molecule scenarios (one
# container each, one at a time), at a lower CPU priority (nice 10): the foreground is the
# critical path, and on 2 cores the background finished 25 minutes before it. The lab teardown
# check runs last, alone. (--ignore does
# not take a testpaths entry out of a run, --ignore-glob does: without it the foreground ran
# every molecule scenario a second time.)
test: venv ## every test: lint, unit, lab, molecule. RESETS THE LAB: it is torn down at the end
	$(VENV)/bin/python lab/labctl.py up
	@status=0; \
	( nice -n 10 pytest $(BACKGROUND_TESTS) > .lab/background-tests.log 2>&1; echo $$? > .lab/background-tests.rc; \
	  nice -n 10 pytest -n $(MOLECULE_WORKERS) tests/molecule > .lab/molecule-tests.log 2>&1; \
	  echo $$? > .lab/molecule-tests.rc ) & \
	pytest $(LAB_ONLY) -m "not teardown" || status=$$?; \
	wait; \
	echo "---- unit, lint, stand-in (log: .lab/background-tests.log) ----"; \
	tail -n 40 .lab/background-tests.log; \
	[ "$$(cat .lab/background-tests.rc)" = 0 ] || status=1; \
	echo "---- molecule scenarios (log: .lab/molecule-tests.log) ----"; \
	tail -n 40 .lab/molecule-tests.log; \
	[ "$$(cat .lab/molecule-tests.rc)" = 0 ] || status=1; \
	pytest -m teardown tests/final || status=$$?; \
	exit $$status
