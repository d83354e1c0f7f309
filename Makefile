# leader-node: one entry point for people and CI.
#   make cluster     set up everything and run a 5-node cluster on local systemd containers
#   make cluster-vm  the same on 3 Debian VMs (VMS=5: five) booted by the Vagrantfile
#   make test        everything: lint, types, unit, simulator sweeps, loopback processes, Ansible, Molecule
#   make test-fast   the inner loop: lint, types, unit, short simulator sweeps, loopback runtime (minutes)
#   make fuzz        not in make test: the frame decoder and handshake fuzz tests with many examples
#   make soak        not in make test: a nemesis against the make cluster containers, then a report
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-$(shell cat requirements-dev.txt requirements-deploy.txt pyproject.toml | sha256sum | cut -c1-12)

.PHONY: venv lint typecheck test-unit test-slow test-fast test test-deploy test-rounds fuzz soak cluster cluster-down cluster-vm cluster-vm-down test-vm clean

venv: $(STAMP)
$(STAMP): requirements-dev.txt requirements-deploy.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
	rm -f $(VENV)/.stamp-* && touch $@

lint: venv
	$(VENV)/bin/ruff check node tests benchmarks
	$(VENV)/bin/ruff format --check node tests benchmarks

typecheck: venv
	$(VENV)/bin/mypy

test-unit: venv
	$(VENV)/bin/pytest -q -m "not slow"

test-slow: venv
	$(VENV)/bin/pytest -q -m slow

test-fast: lint typecheck test-unit

# The deploy scripts install what a fresh Debian lacks (python3-venv, Docker, debootstrap, Vagrant, libvirt,
# QEMU), then `make venv`. Molecule scenarios default, faults and leader-service for both algorithms, then
# vm for Bully (docs/deploy.md, "What it costs").
test-deploy:
	scripts/test-deploy.sh

test: test-fast test-slow test-deploy

# Not part of `make test`: each fault test repeated ROUNDS times on one converged cluster per scenario and
# algorithm (a rare failure shows without a converge per round), e.g.
#   make test-rounds ROUNDS=10 SCENARIOS="concurrent rejoin kill-leader partition"
#   make test-rounds ROUNDS=10 SCENARIOS=faults     # the same four on one cluster per algorithm
ROUNDS ?= 10
SCENARIOS ?= concurrent
test-rounds:
	LEADER_NODE_FAULT_ROUNDS=$(ROUNDS) MOLECULE_SCENARIOS="$(SCENARIOS)" scripts/test-deploy.sh

# Not part of `make test`: tests/core/test_codec_fuzz.py (frame decoder, handshake parser, session frames)
# with FUZZ_EXAMPLES examples per property instead of 200, e.g. `make fuzz FUZZ_EXAMPLES=100000`.
FUZZ_EXAMPLES ?= 20000
fuzz: venv
	LEADER_NODE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest -q -p no:cacheprovider tests/core/test_codec_fuzz.py

# Not part of `make test`: kills, stops, pauses, partitions, replayed and forged frames and slow clients
# against the five `make cluster` containers (brought up, or recreated with ALGORITHM, when needed) for
# SOAK_MINUTES, then the history check and a report in artifacts/soak-<algorithm>-<UTC time>/, e.g.
#   make soak SOAK_MINUTES=5 ALGORITHM=ring SOAK_SEED=42     (docs/benchmarks.md, "Soak")
# SOAK_FRESH=1 recreates the cluster first (make cluster-down, make cluster: the current working tree).
SOAK_MINUTES ?= 30
ALGORITHM ?= bully
SOAK_SEED ?=
SOAK_FRESH ?=
soak: venv
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES) --algorithm $(ALGORITHM) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) \
	    $(if $(SOAK_FRESH),--fresh)

cluster:
	scripts/cluster-up.sh

cluster-down:
	scripts/cluster-down.sh

# The same on Debian VMs (Vagrantfile, provider libvirt, a box built from Debian's packages; KVM or QEMU's
# emulation): VMS=3 VMs unless set, e.g. `make cluster-vm VMS=5`.
VMS ?= 3
cluster-vm:
	VMS=$(VMS) scripts/cluster-vm-up.sh

# Molecule's scenario vm on three VMs alone (make test runs it last; docs/deploy.md, "Molecule on VMs").
test-vm:
	MOLECULE_SCENARIOS=vm scripts/test-deploy.sh

cluster-vm-down:
	scripts/cluster-vm-down.sh

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
