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
echo "  Ctrl-C stops the server and its job worker; the local database keeps its data"
echo "  (make db-stop stops it)."
echo
# One worker runs the background jobs (checks against OSM) beside the server. Both stop together
# however it ends: Ctrl-C, a signal to this script, or the server exiting (a job the worker is
# running is finished first). Both run in the background so that `wait` lets the traps run.
$BIN/cartoparty worker &
worker=$!
# gunicorn.conf.py: threaded workers (WEB_WORKERS × WEB_THREADS), short time-outs.
$BIN/gunicorn --config gunicorn.conf.py --bind "127.0.0.1:$PORT" "cartoparty:create_app()" &
server=$!
trap 'kill -TERM "$server" "$worker" 2>/dev/null || true; wait "$server" "$worker" || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait "$server"
