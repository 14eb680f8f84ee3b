# make demo: set everything up, then run the demo scripts against the embedded head node.
# make test: set everything up, then run every check and test.
# make install / make uninstall: the product for the whole machine (as root) or for you (otherwise).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PWSH_VERSION := 7.6.9
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
HELP_SOURCES := $(wildcard help/*.md)
# A failed step says what is missing and how to get it, instead of ending in a bare traceback.
NO_WHEELS := echo >&2 "make: pip could not install the Python packages. It needs PyPI or a folder of wheels: put the wheels in $(WHEELS), or set PIP_FIND_LINKS=<folder> PIP_NO_INDEX=1."; exit 1
NO_NUGET := echo >&2 "make: dotnet could not get packages from NuGet (https://api.nuget.org or the sources in your NuGet.Config). Check the network or proxy, or add a reachable source with 'dotnet nuget add source'."; exit 1

.PHONY: build prerequisites demo test lint help check-help install uninstall purge bench clean

build: $(VENV)/.installed $(VENV)/bin/job build/pwsh.ready module/bin/CCPPSH.dll module/bin/python-env.txt module/en-US/CCPPSH.dll-Help.xml bytecode

prerequisites:
	@command -v $(PYTHON) >/dev/null || { echo >&2 "make: no $(PYTHON) on the PATH: install Python 3.11+ with a shared libpython (Debian/Ubuntu: apt-get install python3 python3-venv), or run 'make PYTHON=/path/to/python3'."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo >&2 "make: $(PYTHON) is $$($(PYTHON) -V 2>&1); the project needs Python 3.11 to 3.15 (run 'make PYTHON=/path/to/python3.11')."; exit 1; }
	@$(PYTHON) src/hpcpack/pythonenv.py check >/dev/null
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo >&2 "make: $(PYTHON) cannot create virtual environments (Debian/Ubuntu: apt-get install python3-venv)."; exit 1; }
	@dotnet --list-sdks 2>/dev/null | grep -q '^10\.' || { echo >&2 "make: the .NET SDK 10 is needed ('dotnet --list-sdks' shows none): see https://learn.microsoft.com/dotnet/core/install/linux (Debian/Ubuntu: apt-get install dotnet-sdk-10.0)."; exit 1; }

# The venv's Python, as `sys.executable version`. A PYTHON given on the command line or in the environment
# that names another one makes a new venv (and so a new module/bin/python-env.txt); a plain 'make' keeps it.
VENV_PYTHON := $(VENV)/.python
WHICH_PYTHON := $(PYTHON) -c 'import sys; print(sys.executable, sys.version.split()[0])'
ifneq ($(filter command line environment,$(origin PYTHON)),)
$(VENV)/.installed: $(VENV_PYTHON)
$(VENV_PYTHON): FORCE | prerequisites
	@want="$$($(WHICH_PYTHON))"; [ "$$(cat $@ 2>/dev/null)" = "$$want" ] || \
	  { echo "make: a new $(VENV) for $$want"; rm -rf $(VENV); mkdir -p $(VENV) && echo "$$want" > $@; }
else
$(VENV)/.installed: | $(VENV_PYTHON)
$(VENV_PYTHON): | prerequisites
	@mkdir -p $(VENV) && $(WHICH_PYTHON) > $@
endif

.PHONY: FORCE
FORCE:

$(VENV)/.installed: pyproject.toml | prerequisites
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e ".[test]" || { $(NO_WHEELS); }
	touch $@

# The `job` on the PATH: the compiled client (client/job.c; gcc and Debian's cJSON, installed here when
# missing and run as root), which hands what it does not do to the Python one, job-py, beside it. Without
# a compiler or cJSON, build/bin/job is a link to job-py: the same command, only slower to start.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
PROTOCOL := $(shell sed -n 's/^PROTOCOL_VERSION = \([0-9]*\).*/\1/p' src/hpcpack/wire/protocol.py)
CJSON := /usr/include/cjson/cJSON.h
NO_CJSON := echo >&2 "make: warning: no C compiler ($(CC)) or cJSON (apt-get install libcjson-dev): 'job' is the Python job-py, slower to start"

build/bin/job: client/job.c pyproject.toml src/hpcpack/wire/protocol.py
	@mkdir -p build/bin && rm -f $@
	@{ [ -f $(CJSON) ] && command -v $(CC) >/dev/null; } || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  apt-get install -y -qq gcc libcjson-dev >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq gcc libcjson-dev; } >/dev/null 2>&1 || true
	@if command -v $(CC) >/dev/null && [ -f $(CJSON) ]; then \
	  echo "$(CC) client/job.c -o $@"; \
	  $(CC) -O2 -Wall -Wextra -std=c11 -DHPCPACK_VERSION='"$(VERSION)"' -DPROTOCOL_VERSION=$(PROTOCOL) -DJOB_PY='"$(abspath $(VENV))/bin/job-py"' \
	    client/job.c -lcjson -o $@; \
	else $(NO_CJSON); ln -s job-py $@; fi

$(VENV)/bin/job: build/bin/job $(VENV)/.installed
	rm -f $@ && cp -P build/bin/job $@

# Your pwsh when it is 7.4 or newer (bin/pwsh finds it), otherwise pwsh $(PWSH_VERSION) as a .NET tool in build/pwsh.
# build/pwsh/engine is the tool's own pwsh executable: the tool's launcher would run it as a child process,
# which Ctrl+C does not reach.
build/pwsh.ready:
	@mkdir -p build
	bin/pwsh -NoProfile -Version >/dev/null 2>&1 || $(MAKE) --no-print-directory PWSH_DIR=build/pwsh pwsh-tool
	bin/pwsh -NoProfile -Version
	touch $@

# The backend's compiled bytecode (src/ is installed editable). Python run with PYTHONDONTWRITEBYTECODE=1 (CI,
# sandboxes) never writes it, and then every fresh pwsh and job-py compiles the backend again (tens of ms).
.PHONY: bytecode
bytecode: $(VENV)/.installed
	@$(PY) -m compileall -q src >/dev/null

.PHONY: pwsh-tool
pwsh-tool:
	dotnet tool install --tool-path $(PWSH_DIR) PowerShell --version $(PWSH_VERSION) || { $(NO_NUGET); }
	engine="$$(ls -d $(abspath $(PWSH_DIR))/.store/powershell/$(PWSH_VERSION)/powershell/$(PWSH_VERSION)/tools/net*/any/unix/pwsh)" && \
	  chmod 755 "$$engine" && ln -sfn "$$engine" $(PWSH_DIR)/engine

PYTHON_RUNTIME_DLL = $$($(PY) -c 'import pythonnet, pathlib; print(pathlib.Path(pythonnet.__file__).parent / "runtime" / "Python.Runtime.dll")')

# The shim, then its and pythonnet's ReadyToRun copies over the IL ones (dotnet/ReadyToRun says why); without
# them (no crossgen package from NuGet) the module works as well, only its first cmdlet starts slower.
module/bin/CCPPSH.dll: $(SHIM_SOURCES) dotnet/ReadyToRun/ReadyToRun.csproj $(VENV)/.installed
	dotnet build dotnet/Shim/CCPPSH.csproj -c Release -o module/bin --nologo -v quiet \
	  -p:PythonRuntimeDll=$(PYTHON_RUNTIME_DLL) || { $(NO_NUGET); }
	rm -rf build/readytorun
	dotnet publish dotnet/ReadyToRun/ReadyToRun.csproj -c Release -o build/readytorun --nologo -v quiet \
	  -p:ShimDll=$(abspath dotnet/Shim/obj/Release/netstandard2.0/CCPPSH.dll) -p:PythonRuntimeDll=$(PYTHON_RUNTIME_DLL) \
	  && cp build/readytorun/CCPPSH.dll build/readytorun/Python.Runtime.dll module/bin/ \
	  || echo >&2 "make: warning: no ReadyToRun compile of the module (NuGet's crossgen package?): a fresh pwsh's first cmdlet is slower"
	touch $@

# The module finds its Python through this file (venv, libpython, version): no variable for the user to set.
module/bin/python-env.txt: $(VENV)/.installed src/hpcpack/pythonenv.py
	mkdir -p module/bin
	$(PY) -m hpcpack.pythonenv pointer > $@.tmp && mv $@.tmp $@

# (touched: the compiler leaves a file that would not change as it was, and make would run it every time)
module/en-US/CCPPSH.dll-Help.xml: $(HELP_SOURCES) $(VENV)/.installed
	$(PY) -m hpcpack.helpc.build help module && touch $@

help: module/en-US/CCPPSH.dll-Help.xml

check-help: $(VENV)/.installed
	$(PY) -m hpcpack.helpc.build --check help module

# The demo gets a head node of its own (so it changes nothing of yours) and stops it afterwards.
DEMO_HOME := $(CURDIR)/build/demo-headnode
demo: build
	rm -rf $(DEMO_HOME)
	HPCPACK_HOME=$(DEMO_HOME) bin/pwsh -NoProfile -NonInteractive -File demo/demo.ps1; \
	status=$$?; $(PY) -m hpcpack.head.daemon --state-dir $(DEMO_HOME) --stop; exit $$status

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

test: build lint check-help
	$(VENV)/bin/pytest

bench: build
	$(PY) bench/run.py

# As root: for every user (/opt/hpcpack, pwsh's AllUsers module path, /usr/local/bin, systemd, /var/lib/hpcpack).
# Otherwise: for you (~/.local/share/hpcpack, your CurrentUser module path, ~/.local/bin). See contrib/install.
install: build
	contrib/install install

uninstall:
	contrib/install uninstall

# uninstall, and also the machine's head node state (/var/lib/hpcpack).
purge:
	contrib/install purge

clean:
	rm -rf build module/bin dotnet/*/bin dotnet/*/obj $(VENV)
