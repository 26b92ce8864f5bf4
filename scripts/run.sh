#!/bin/sh
# Prepare the database (the project-local cluster when DATABASE_URL is unset), load the demo
# event and serve the app under gunicorn on 127.0.0.1:$PORT until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
PORT="${PORT:-5000}"
BIN=.venv/bin

if [ -z "${DATABASE_URL:-}" ]; then
  $BIN/python -m cartoparty.localdb start >/dev/null
fi
$BIN/cartoparty db upgrade
demo=$($BIN/cartoparty demo --keep)
echo
echo "cartoparty is served on http://127.0.0.1:$PORT"
echo "  walkers join the demo event at   http://127.0.0.1:$PORT/e/demo"
echo "  organisers review it at          http://127.0.0.1:$PORT/organise/demo"
echo "  $demo"
echo "  Ctrl-C stops the server; the local database keeps its data (make db-stop stops it)."
echo
exec $BIN/gunicorn --bind "127.0.0.1:$PORT" --workers "${WEB_WORKERS:-3}" \
  --access-logfile - --graceful-timeout 5 "cartoparty:create_app()"
