#!/usr/bin/env bash
# shellcheck disable=SC2317  # on_exit, on_signal and stop_workers run from traps
# Runs the frontdoor demo: three demo workers (deploy/demo/app.py under Debian's uvicorn, on
# 127.0.0.1:8001-8003) behind build/frontdoor on https://localhost:8443 with the development
# certificate. Ctrl-C (or SIGTERM to this script) stops frontdoor gracefully, then the workers.
# FRONTDOOR_LISTEN overrides the listen address (default 127.0.0.1:8443).
set -euo pipefail
set +m  # no job control: background children stay in our process group (see setsid below)
cd "$(dirname "$0")/.."
root=$(pwd)

WORKER_PORTS=(8001 8002 8003)
HEALTH_WAIT_SECONDS=10
export FRONTDOOR_LISTEN=${FRONTDOOR_LISTEN:-127.0.0.1:8443}
listen_port=${FRONTDOOR_LISTEN##*:}

scripts/install-deps.sh
FRONTDOOR_DEPS_CHECKED=1 scripts/build.sh
certs-dev/make-dev-certs.sh
export FRONTDOOR_DEV_CERTS=$root/certs-dev/out

frontdoor_bin=build/frontdoor
if [ ! -x "$frontdoor_bin" ]; then
  echo "demo: the build produced no build/frontdoor binary" >&2
  exit 1
fi

# True if something listens on TCP |port| (any address).
port_in_use() {
  [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

for port in "${WORKER_PORTS[@]}"; do
  if [ "$port" = "$listen_port" ]; then
    echo "demo: FRONTDOOR_LISTEN=$FRONTDOOR_LISTEN clashes with the demo workers' ports" \
         "(${WORKER_PORTS[*]})" >&2
    exit 1
  fi
done

busy=()
for port in $(printf '%s\n' "${WORKER_PORTS[@]}" "$listen_port" | sort -un); do
  if port_in_use "$port"; then
    busy+=("$port")
  fi
done
if [ "${#busy[@]}" -ne 0 ]; then
  echo "demo: TCP port(s) ${busy[*]} already in use; the demo needs ${WORKER_PORTS[*]} and" \
       "$listen_port free. See what holds them with: ss -ltnp" >&2
  exit 1
fi

worker_pids=()
frontdoor_pid=
signals=0
interrupted=0

stop_workers() {
  local pid
  [ "${#worker_pids[@]}" -ne 0 ] || return 0
  for pid in "${worker_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${worker_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  worker_pids=()
}

on_exit() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$frontdoor_pid" ] && kill -0 "$frontdoor_pid" 2>/dev/null; then
    kill -TERM "$frontdoor_pid" 2>/dev/null || true
    wait "$frontdoor_pid" 2>/dev/null || true
  fi
  stop_workers
  exit "$status"
}

# Before frontdoor runs, a signal simply ends the script (on_exit cleans up). Once it runs,
# the signal is forwarded once so it shuts down gracefully; a second one kills it.
on_signal() {
  local sig=$1
  if [ -z "$frontdoor_pid" ]; then
    case "$sig" in INT) exit 130 ;; HUP) exit 129 ;; *) exit 143 ;; esac
  fi
  interrupted=1
  signals=$((signals + 1))
  if [ "$signals" -gt 1 ]; then
    echo "demo: second signal, killing frontdoor" >&2
    kill -KILL "$frontdoor_pid" 2>/dev/null || true
  elif [ "$sig" = HUP ]; then
    kill -TERM "$frontdoor_pid" 2>/dev/null || true  # our terminal went away: shut down
  else
    kill -"$sig" "$frontdoor_pid" 2>/dev/null || true
  fi
}

trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

# Children get their own session (setsid), so a Ctrl-C in the terminal reaches only this
# script, which then stops them in order: frontdoor first (it drains), then the workers.
# In a non-interactive shell a background child is not a process-group leader, so setsid
# execs in place and $! is the process itself.
for i in "${!WORKER_PORTS[@]}"; do
  port=${WORKER_PORTS[$i]}
  WORKER_ID=$((i + 1)) PYTHONDONTWRITEBYTECODE=1 setsid /usr/bin/python3 -m uvicorn app:app \
    --app-dir deploy/demo --host 127.0.0.1 --port "$port" --log-level warning </dev/null &
  worker_pids+=("$!")
done

deadline=$((SECONDS + HEALTH_WAIT_SECONDS))
for i in "${!WORKER_PORTS[@]}"; do
  port=${WORKER_PORTS[$i]}
  pid=${worker_pids[$i]}
  until curl -fsS -o /dev/null --noproxy '*' --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: worker $((i + 1)) (uvicorn on 127.0.0.1:$port) exited during startup" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: worker $((i + 1)) did not answer http://127.0.0.1:$port/healthz within" \
           "${HEALTH_WAIT_SECONDS}s" >&2
      exit 1
    fi
    sleep 0.2
  done
done

cat <<BANNER

  frontdoor demo: workers 1-3 on 127.0.0.1:${WORKER_PORTS[0]}-${WORKER_PORTS[2]} (pids ${worker_pids[*]}), proxy on $FRONTDOOR_LISTEN
  Try, from $root (repeat it: workers 1, 2, 3 answer in turn):

    curl --cacert certs-dev/out/ca.crt https://localhost:$listen_port/
    curl --cacert certs-dev/out/ca.crt https://localhost:$listen_port/echo      # what the worker received

  Ctrl-C stops everything.

BANNER

setsid "$frontdoor_bin" -c deploy/demo/frontdoor.yaml </dev/null &
frontdoor_pid=$!
echo "demo: frontdoor running as pid $frontdoor_pid (kill -HUP $frontdoor_pid reloads the config)"

# `wait` returns early (status > 128) when a trapped signal arrives; on_signal sets
# |interrupted| then, and we wait again for frontdoor's own exit status.
status=0
while :; do
  interrupted=0
  if wait "$frontdoor_pid"; then status=0; else status=$?; fi
  [ "$interrupted" -eq 1 ] || break
done
frontdoor_pid=
echo "demo: frontdoor exited with status $status; stopping the workers"
exit "$status"
