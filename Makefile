# Two commands for a fresh machine (see README):
#   make app    install what the app needs (once, into .venv), then start it
#   make test   install, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: app test test-fast browser
app: $(STAMP)
	$(VENV)/bin/streamlit run app.py

test: $(STAMP) browser
	$(PY) -m pytest -q

# while iterating: everything but the browser, nginx, training and DDP groups (pytest.ini's markers)
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not browser and not proxy and not training and not ddp"

# the pinned requirements, then the project's own packages (models, explorer, training,
# sidefiles) in development mode (pyproject.toml), so scripts and tests import them as they are
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	cp requirements.txt $(STAMP)

# Debian's Chromium for the end-to-end browser test (Playwright cannot download one here), and
# nginx for the test of two servers behind a reverse proxy (deploy/, tests/test_proxy.py).
browser:
	@{ command -v chromium >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; } || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nginx-light >/dev/null; } || \
	  echo "chromium or nginx is not installed: the browser tests will be skipped"
