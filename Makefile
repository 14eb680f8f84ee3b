# make demo: set everything up, then run the demo scripts against the embedded head node.
# make test: set everything up, then run every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export POWERSHELL_TELEMETRY_OPTOUT := 1
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

# Offline machines keep the project's wheels beside the checkout; elsewhere pip uses PyPI.
WHEELS := $(abspath ../shared/wheels)
ifneq ($(wildcard $(WHEELS)),)
export PIP_NO_INDEX := 1
export PIP_FIND_LINKS := $(WHEELS)
endif

SHIM_SOURCES := $(wildcard dotnet/Shim/*.cs dotnet/Shim/*.csproj)
HOST_SOURCES := $(wildcard dotnet/Host/*.cs dotnet/Host/*.csproj)
HELP_SOURCES := $(wildcard help/*.md)

.PHONY: build demo test lint help check-help install bench clean

build: $(VENV)/.installed build/host/pwsh module/bin/CCPPSH.dll module/bin/python-env.txt module/en-US/CCPPSH.dll-Help.xml

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip setuptools || true
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $@

build/host/pwsh: $(HOST_SOURCES)
	dotnet build dotnet/Host/HpcPwsh.csproj -c Release -o build/host --nologo -v quiet
	touch $@

module/bin/CCPPSH.dll: $(SHIM_SOURCES) $(VENV)/.installed
	dotnet build dotnet/Shim/CCPPSH.csproj -c Release -o module/bin --nologo -v quiet
	touch $@

# The module finds its Python through this file: no variable for the user to set.
module/bin/python-env.txt: $(VENV)/.installed
	mkdir -p module/bin
	cd $(VENV) && pwd -P > $(CURDIR)/$@

module/en-US/CCPPSH.dll-Help.xml: $(HELP_SOURCES) $(VENV)/.installed
	$(PY) -m hpcpack.helpc.build help module

help: module/en-US/CCPPSH.dll-Help.xml

check-help: $(VENV)/.installed
	$(PY) -m hpcpack.helpc.build --check help module

# The demo gets a head node of its own (so it changes nothing of yours) and stops it afterwards.
DEMO_HOME := $(CURDIR)/build/demo-headnode
demo: build
	rm -rf $(DEMO_HOME)
	HPCPACK_HOME=$(DEMO_HOME) bin/pwsh -NoProfile -NonInteractive -File demo/demo.ps1; \
	status=$$?; $(PY) -m hpcpack.daemon --state-dir $(DEMO_HOME) --stop; exit $$status

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: build lint check-help
	$(VENV)/bin/pytest

bench: build
	$(PY) bench/run.py

# Installs the module where pwsh finds modules, so 'Import-Module HPC', command autoloading
# and old scripts' 'Add-PSSnapin Microsoft.HPC' work from any folder.
install: build
	mkdir -p $(HOME)/.local/share/powershell/Modules
	ln -sfn $(CURDIR)/module $(HOME)/.local/share/powershell/Modules/HPC

clean:
	rm -rf build module/bin dotnet/*/bin dotnet/*/obj $(VENV)
