#!/bin/sh
# Headless Chromium for tests/test_diagram_html.py (it loads the interactive HTML diagram,
# clicks a block and screenshots it). Installed with apt when missing and we are root;
# otherwise the test skips. Debian calls the package `chromium`, Ubuntu `chromium-browser`.
set -e
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y chromium-browser
else
    echo "tools/install_chromium.sh: no Chromium and no apt as root: the HTML diagram's" \
         "browser test will skip" >&2
fi
