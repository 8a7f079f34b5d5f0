#!/usr/bin/env bash
# Tools the observability tests use besides Python packages (docs/observability.md):
# Chromium for the browser tests (tests/browser) and promtool for the alerting rules
# (tests/observability/test_alert_rules.py). On a fresh Debian/Ubuntu machine `make test`
# installs the system packages (`chromium`, `prometheus`) when it can (root, or sudo without a
# password); otherwise it tries Playwright's own Chromium download. Never fatal: a test whose
# tool is missing is skipped and says which package to install. TEST_INSTALL_TOOLS=0 skips this.
set -uo pipefail
[[ "${TEST_INSTALL_TOOLS:-1}" == "0" ]] && exit 0

have_chromium() {
  [[ -n "${PLAYWRIGHT_CHROMIUM_EXECUTABLE:-}" ]] && return 0
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
    || command -v google-chrome >/dev/null
}
missing=()
have_chromium || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if command -v apt-get >/dev/null; then
  as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then as_root=(sudo -n); else as_root=(); fi
  fi
  if [[ $(id -u) -eq 0 || ${#as_root[@]} -gt 0 ]]; then
    echo "== installing ${missing[*]} (system packages, for the browser and alerting-rule tests)"
    "${as_root[@]}" timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { "${as_root[@]}" timeout 300 apt-get update -qq >/dev/null 2>&1 \
           && "${as_root[@]}" timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } \
      || echo "   could not install ${missing[*]}; the tests needing them will be skipped"
  fi
fi
if ! have_chromium; then
  echo "== no system Chromium: trying Playwright's own (python -m playwright install chromium)"
  timeout 300 python -m playwright install chromium >/dev/null 2>&1 \
    || echo "   not available either; the browser tests will be skipped"
fi
exit 0
