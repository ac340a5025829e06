#!/usr/bin/env bash
# A page of the documentation site as headless Chromium shows it: builds the site (mkdocs.yml), serves
# it on 127.0.0.1 with Python's http.server, takes a screenshot, stops the server.
# Needs Debian's Chromium (`apt-get install chromium`) and the docs extra (`pip install -e ".[docs]"`).
#
#   scripts/docs_screenshot.sh [PAGE [OUT]]     PAGE: a path of the site ("" = the home page, e.g.
#                                               "protocol/"); OUT: default docs/assets/site.png
set -euo pipefail
cd "$(dirname "$0")/.."
page="${1:-}"
out="$(realpath -m "${2:-docs/assets/site.png}")"
site="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    rm -rf "$site"
}
trap cleanup EXIT

browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }

.venv/bin/mkdocs build --strict --quiet --site-dir "$site"
port="$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
.venv/bin/python -m http.server "$port" --bind 127.0.0.1 --directory "$site" >/dev/null 2>&1 &
server=$!
url="http://127.0.0.1:$port/$page"
.venv/bin/python - "$url" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"{sys.argv[1]} did not answer")
PY

mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,900 \
    --virtual-time-budget=5000 --screenshot="$out" "$url" >/dev/null 2>&1
echo "$out: $(stat -c %s "$out") bytes from $url"
