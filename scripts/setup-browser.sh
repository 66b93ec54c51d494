#!/usr/bin/env bash
# Installs what the browser test of the search page needs, idempotently: Debian's Chromium
# (Playwright's own browser download is not used: it needs a CDN and pins a build we do not
# need) and the pinned playwright-core driver from tests/browser/package-lock.json.
#
#   scripts/setup-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# fonts-noto-cjk and fonts-noto-color-emoji: without them Chromium draws CJK and emoji queries
# and results as boxes (DejaVu covers Latin, Arabic and Hebrew).
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK" ||
  ! fc-list 2>/dev/null | grep -qi "Noto Color Emoji"; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core fonts-noto-cjk fonts-noto-color-emoji
fi
chromium --version

if ! command -v node >/dev/null 2>&1; then
  echo "setup-browser.sh: node (>= 18) is needed for tests/browser; install nodejs" >&2
  exit 1
fi
# `npm ci` installs exactly the locked versions; skip it when they are already there.
if [[ ! -f tests/browser/node_modules/playwright-core/package.json ]] ||
  ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.package-lock.json.copy; then
  (cd tests/browser && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.package-lock.json.copy)
fi
