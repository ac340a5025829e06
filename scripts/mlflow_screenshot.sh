#!/usr/bin/env bash
# The MLflow UI as headless Chromium shows it, on a project's tracking store: its compare page for the
# widest comparison's strategy runs (one per strategy, tags.headstart.level = 'strategy'), side by side.
# Needs Debian's Chromium (`apt-get install chromium`).
#
#   scripts/mlflow_screenshot.sh [PROJECT [OUT]]   PROJECT: a folder with mlruns/mlflow.db (default: .);
#                                                  OUT: default docs/assets/mlflow_strategy_runs.png
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
project="$(realpath "${1:-.}")"
out="$(realpath -m "${2:-docs/assets/mlflow_strategy_runs.png}")"
server=""
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi' EXIT

browser="$(command -v chromium || command -v chromium-browser || true)"
[ -n "$browser" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
port="$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
(cd "$project" && exec "$root/.venv/bin/mlflow" ui --backend-store-uri "sqlite:///$project/mlruns/mlflow.db" \
    --host 127.0.0.1 --port "$port" >/dev/null 2>&1) &
server=$!
query="$("$root/.venv/bin/python" - "$project" <<'PY'
import json, sys, urllib.parse
import mlflow
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlruns/mlflow.db")
experiment = mlflow.get_experiment_by_name("headstart").experiment_id
strategies = mlflow.search_runs([experiment], "tags.`headstart.level` = 'strategy'", output_format="list")
parents = [r.data.tags["mlflow.parentRunId"] for r in strategies]
parent = max(dict.fromkeys(parents), key=parents.count)  # the comparison with the most strategies (newest first)
runs = [r.info.run_id for r in strategies if r.data.tags["mlflow.parentRunId"] == parent]
print(f"runs={urllib.parse.quote(json.dumps(runs))}&experiments={urllib.parse.quote(json.dumps([experiment]))}")
PY
)"
"$root/.venv/bin/python" - "http://127.0.0.1:$port/health" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1).close()
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit(f"{sys.argv[1]} did not answer")
PY
url="http://127.0.0.1:$port/#/compare-runs?$query"
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1400 \
    --virtual-time-budget=20000 --screenshot="$out" "$url" 2>/dev/null
echo "$out ($url)"
