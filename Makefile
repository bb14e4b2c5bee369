# aifabric: `make demo` and `make test` set everything up themselves (idempotently).
PY := .venv/bin/python
SETUP_STAMP := .venv/.aifabric-installed

.PHONY: help setup demo test unit e2e lint proto config-example bench clean-net clean

help:
	@echo "make demo      set up, start fabricd and a 2-spine/4-leaf Mininet fabric, show topology, reachability and TE-placed flows"
	@echo "make test      set up and run the whole test suite (unit + end-to-end; Mininet tests in one lane, the rest beside it)"
	@echo "make setup     install Debian packages, .venv, the project; start Open vSwitch"
	@echo "make unit      unit tests of the pure core only (no root, no Mininet)"
	@echo "make lint      ruff"
	@echo "make proto     regenerate the gRPC/protobuf code from proto/"
	@echo "make config-example  rewrite config/fabricd.example.yaml from the config model"
	@echo "make bench     run the benchmarks in bench/ and write docs/"

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) -m mininet_topos.cli demo --spines 2 --leaves 4 --hosts-per-leaf 2

test: setup
	$(PY) -m ruff check .
	$(PY) scripts/run_tests.py

unit: setup
	$(PY) -m pytest -q tests/unit

e2e: setup
	$(PY) -m pytest -q tests/e2e

lint: setup
	$(PY) -m ruff check .

proto: setup
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto --grpc_python_out=proto proto/aifabric/v1/fabric.proto

config-example: setup
	$(PY) -m controller.config_example > config/fabricd.example.yaml

bench: setup
	$(PY) -m bench.discovery
	$(PY) -m bench.qos
	$(PY) -m bench.te
	$(PY) -m bench.te_scale
	$(PY) -m bench.collectives
	$(PY) -m bench.api
	$(PY) -m bench.hostile
	$(PY) -m bench.intruder
	$(PY) -m bench.cluster
	$(PY) -m bench.chaos
	$(PY) -m bench.scale

clean-net:
	-mn -c >/dev/null 2>&1
