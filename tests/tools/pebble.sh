#!/usr/bin/env bash
# tests/tools/pebble.sh - Let's Encrypt's Pebble (Debian 12 package `pebble`, 2.4.0) plus
# pebble-challtestsrv as a loopback-only ACME CA for frontdoor's tests. Adapted from the team's
# acme-lab kit (../shared/acme-lab/pebble.sh, same CLI and ACME_LAB_* variables) so that the
# suite needs nothing outside the repository; see tests/CMakeLists.txt for the CTest fixture.
#
#   pebble.sh start [options]   start (idempotent; waits until ready)
#   pebble.sh stop              stop what this script started (PID files only, never by name)
#   pebble.sh status            exit 0 if running and answering, 1 otherwise
#   pebble.sh env               print `export ACME_LAB_...=...` lines (eval them)
#
# start options (each also settable by the env var in brackets):
#   --nonce-reject PCT   % of valid nonces rejected as badNonce      [ACME_LAB_NONCE_REJECT, default 5]
#   --no-nonce-reject    same as --nonce-reject 0
#   --validity SECONDS   issued-cert lifetime (certificateValidityPeriod)
#                                                 [ACME_LAB_CERT_VALIDITY, default Pebble's 157766400 = 5y]
#   --va-sleep SECONDS   max random VA sleep before each validation; 0 = PEBBLE_VA_NOSLEEP
#                                                 [ACME_LAB_VA_SLEEP, default 0]
#   --authz-reuse PCT    % of new orders that reuse a valid authz    [ACME_LAB_AUTHZ_REUSE, default 50]
#   --eab                require External Account Binding (kid-1)    [ACME_LAB_EAB=1]
#   --timeout SECONDS    readiness timeout                           [ACME_LAB_START_TIMEOUT, default 30]
#
# Ports / paths (env only):
#   ACME_LAB_STATE_DIR       default ${TMPDIR:-/tmp}/acme-lab-$UID (config, PID files, logs, certs)
#   ACME_LAB_ACME_PORT       14000  ACME directory https://127.0.0.1:PORT/dir
#   ACME_LAB_MGMT_PORT       15000  Pebble management (HTTPS): /roots/0, /intermediates/0, /cert-status-by-serial/
#   ACME_LAB_HTTP01_PORT     5002   where Pebble's VA connects for http-01     (the client under test listens)
#   ACME_LAB_TLSALPN01_PORT  5001   where Pebble's VA connects for tls-alpn-01 (the client under test listens)
#   ACME_LAB_DNS_PORT        8053   pebble-challtestsrv mock DNS (every name -> A 127.0.0.1, no AAAA)
#   ACME_LAB_CTS_PORT        8055   pebble-challtestsrv management API (plain HTTP)
#
# After start, $ACME_LAB_STATE_DIR/env holds KEY=VALUE lines (directory URL, CA bundle for
# Pebble's HTTPS, issuer root, ports); logs are in $ACME_LAB_STATE_DIR/log/.
# Everything binds to 127.0.0.1 only. The daemons run under setsid with stdin, stdout and stderr
# redirected, so a CTest setup step returns at once instead of waiting for inherited pipes.
set -Eeuo pipefail

PEBBLE_BIN=${PEBBLE_BIN:-/usr/bin/pebble}
CTS_BIN=${CTS_BIN:-/usr/bin/pebble-challtestsrv}

STATE_DIR=${ACME_LAB_STATE_DIR:-${TMPDIR:-/tmp}/acme-lab-$(id -u)}
[[ $STATE_DIR == /* ]] || STATE_DIR=$PWD/$STATE_DIR
ACME_PORT=${ACME_LAB_ACME_PORT:-14000}
MGMT_PORT=${ACME_LAB_MGMT_PORT:-15000}
HTTP01_PORT=${ACME_LAB_HTTP01_PORT:-5002}
TLSALPN01_PORT=${ACME_LAB_TLSALPN01_PORT:-5001}
DNS_PORT=${ACME_LAB_DNS_PORT:-8053}
CTS_PORT=${ACME_LAB_CTS_PORT:-8055}
HOST=127.0.0.1

NONCE_REJECT=${ACME_LAB_NONCE_REJECT:-5}
CERT_VALIDITY=${ACME_LAB_CERT_VALIDITY:-}
VA_SLEEP=${ACME_LAB_VA_SLEEP:-0}
AUTHZ_REUSE=${ACME_LAB_AUTHZ_REUSE:-}
EAB=${ACME_LAB_EAB:-0}
START_TIMEOUT=${ACME_LAB_START_TIMEOUT:-30}
STOP_TIMEOUT=10

# Fixed EAB credentials (only used with --eab). The HMAC key is base64url (RFC 8555 7.3.4).
EAB_KID=kid-1
EAB_HMAC=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W

PEBBLE_PID="$STATE_DIR/pebble.pid"
CTS_PID="$STATE_DIR/challtestsrv.pid"
PEBBLE_LOG="$STATE_DIR/log/pebble.log"
CTS_LOG="$STATE_DIR/log/challtestsrv.log"
TLS_DIR="$STATE_DIR/https"
CA_BUNDLE="$TLS_DIR/ca.pem"
SETTINGS_FILE="$STATE_DIR/settings"
ENV_FILE="$STATE_DIR/env"

log() { printf 'acme-lab: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found (apt-get install -y $2)"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- processes: PID files only, never by name ---------------------------------

# running PID -> 0 while PID exists and is not a zombie. Orphaned daemons are reparented to
# PID 1, which in some containers never reaps them, so a killed daemon can stay a zombie that
# `kill -0` still reports as alive.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# pid_alive PIDFILE EXPECTED_BINARY -> prints the PID and returns 0 if it is running and really
# is EXPECTED_BINARY (guards against PID reuse).
pid_alive() {
  local f=$1 bin=$2 pid exe
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  is_uint "$pid" || return 1
  running "$pid" || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  exe=${exe% (deleted)}
  [[ $exe == "$(readlink -f "$bin")" ]] || return 1
  printf '%s\n' "$pid"
}

stop_one() {
  local f=$1 bin=$2 name=$3 pid i
  if pid=$(pid_alive "$f" "$bin"); then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      log "$name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        running "$pid" || break
        sleep 0.1
      done
      running "$pid" && log "WARNING: $name (pid $pid) survived SIGKILL"
    fi
    log "stopped $name (pid $pid)"
  elif [[ -e $f ]]; then
    log "$name: stale PID file removed"
  fi
  rm -f "$f"
}

# port_open PORT -> 0 if something accepts TCP connections on 127.0.0.1:PORT
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# spawn PIDFILE LOGFILE CMD... : detached, own session, no inherited stdio.
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  # The inner bash writes its own PID, then execs the server, so the PID file holds the
  # server's PID whether or not setsid had to fork.
  # shellcheck disable=SC2016  # expanded by the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$logfile" 2>&1 &
  local i
  for ((i = 0; i < 50; i++)); do [[ -s $pidfile ]] && return 0; sleep 0.05; done
  die "could not start $1"
}

# --- HTTPS certificate for Pebble's own endpoints -----------------------------
# Debian's package does not ship upstream's test/certs (minica): create a throw-away CA and a
# server certificate for 127.0.0.1/localhost. Trust only ACME_LAB_CA_BUNDLE; it is not the
# root of issued certificates (that is /roots/0, saved as ACME_LAB_ISSUER_ROOT).
make_https_cert() {
  if [[ -s $CA_BUNDLE && -s $TLS_DIR/cert.pem && -s $TLS_DIR/key.pem ]] &&
    openssl x509 -in "$TLS_DIR/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
    return 0
  fi
  log "generating Pebble HTTPS test CA + server certificate in $TLS_DIR"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 700 "$TLS_DIR"
  (
    cd "$TLS_DIR"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=frontdoor test Pebble HTTPS CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash" -out ca.pem
    openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
    openssl req -new -key key.pem -subj "/CN=localhost" -out server.csr
    cat >server.ext <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,DNS:pebble,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 365 \
      -extfile server.ext -out cert.pem 2>/dev/null
    rm -f server.csr server.ext ca.srl
    chmod 600 ca.key key.pem
  ) || die "openssl failed to create the HTTPS certificate"
}

# --- settings -------------------------------------------------------------------

parse_start_opts() {
  while (($#)); do
    case $1 in
      --nonce-reject) NONCE_REJECT=${2:?}; shift ;;
      --no-nonce-reject) NONCE_REJECT=0 ;;
      --validity) CERT_VALIDITY=${2:?}; shift ;;
      --va-sleep) VA_SLEEP=${2:?}; shift ;;
      --authz-reuse) AUTHZ_REUSE=${2:?}; shift ;;
      --eab) EAB=1 ;;
      --timeout) START_TIMEOUT=${2:?}; shift ;;
      -h | --help) sed -n '2,35p' "$0"; exit 0 ;;
      *) die "unknown option: $1" ;;
    esac
    shift
  done
  local v
  for v in NONCE_REJECT VA_SLEEP START_TIMEOUT ACME_PORT MGMT_PORT HTTP01_PORT TLSALPN01_PORT DNS_PORT CTS_PORT; do
    is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
  done
  for v in CERT_VALIDITY AUTHZ_REUSE; do
    [[ -z ${!v} ]] || is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
  done
  ((NONCE_REJECT <= 100)) || die "--nonce-reject must be 0..100"
  [[ -z $AUTHZ_REUSE ]] || ((AUTHZ_REUSE <= 100)) || die "--authz-reuse must be 0..100"
  [[ $EAB == 0 || $EAB == 1 ]] || die "ACME_LAB_EAB must be 0 or 1"
  for v in ACME_PORT MGMT_PORT HTTP01_PORT TLSALPN01_PORT DNS_PORT CTS_PORT; do
    ((${!v} >= 1 && ${!v} <= 65535)) || die "$v must be 1..65535"
  done
}

settings_fingerprint() {
  printf '%s\n' "acme=$ACME_PORT mgmt=$MGMT_PORT http01=$HTTP01_PORT tlsalpn01=$TLSALPN01_PORT dns=$DNS_PORT cts=$CTS_PORT" \
    "nonce=$NONCE_REJECT validity=$CERT_VALIDITY vasleep=$VA_SLEEP reuse=$AUTHZ_REUSE eab=$EAB"
}

write_config() {
  local cfg="$STATE_DIR/pebble-config.json" validity_line="" eab_lines='"externalAccountBindingRequired": false'
  [[ -n $CERT_VALIDITY ]] && validity_line=", \"certificateValidityPeriod\": $CERT_VALIDITY"
  if [[ $EAB == 1 ]]; then
    eab_lines="\"externalAccountBindingRequired\": true, \"externalAccountMACKeys\": {\"$EAB_KID\": \"$EAB_HMAC\"}"
  fi
  cat >"$cfg" <<EOF
{
  "pebble": {
    "listenAddress": "$HOST:$ACME_PORT",
    "managementListenAddress": "$HOST:$MGMT_PORT",
    "certificate": "$TLS_DIR/cert.pem",
    "privateKey": "$TLS_DIR/key.pem",
    "httpPort": $HTTP01_PORT,
    "tlsPort": $TLSALPN01_PORT,
    "ocspResponderURL": "",
    $eab_lines$validity_line
  }
}
EOF
}

write_env() {
  local f=$1
  cat >"$f.tmp" <<EOF
ACME_LAB_DIRECTORY_URL=https://$HOST:$ACME_PORT/dir
ACME_LAB_CA_BUNDLE=$CA_BUNDLE
ACME_LAB_MGMT_URL=https://$HOST:$MGMT_PORT
ACME_LAB_ROOTS_URL=https://$HOST:$MGMT_PORT/roots/0
ACME_LAB_INTERMEDIATES_URL=https://$HOST:$MGMT_PORT/intermediates/0
ACME_LAB_CERT_STATUS_URL=https://$HOST:$MGMT_PORT/cert-status-by-serial/
ACME_LAB_ISSUER_ROOT=$STATE_DIR/issuer-root.pem
ACME_LAB_HTTP01_PORT=$HTTP01_PORT
ACME_LAB_TLSALPN01_PORT=$TLSALPN01_PORT
ACME_LAB_DNS_SERVER=$HOST:$DNS_PORT
ACME_LAB_CHALLTESTSRV_URL=http://$HOST:$CTS_PORT
ACME_LAB_NONCE_REJECT_PERCENT=$NONCE_REJECT
ACME_LAB_CERT_VALIDITY_SECONDS=${CERT_VALIDITY:-157766400}
ACME_LAB_EAB_REQUIRED=$EAB
ACME_LAB_EAB_KID=$([[ $EAB == 1 ]] && echo "$EAB_KID")
ACME_LAB_EAB_HMAC=$([[ $EAB == 1 ]] && echo "$EAB_HMAC")
ACME_LAB_STATE_DIR=$STATE_DIR
ACME_LAB_LOG_DIR=$STATE_DIR/log
EOF
  # Readers poll for this file: it appears complete or not at all.
  mv -f "$f.tmp" "$f"
}

# --- readiness --------------------------------------------------------------------

curl_pebble() { curl -fsS --max-time 3 --cacert "$CA_BUNDLE" "$@"; }

ready() {
  pid_alive "$PEBBLE_PID" "$PEBBLE_BIN" >/dev/null &&
    pid_alive "$CTS_PID" "$CTS_BIN" >/dev/null &&
    curl_pebble -o /dev/null "https://$HOST:$ACME_PORT/dir" 2>/dev/null &&
    curl_pebble -o /dev/null "https://$HOST:$MGMT_PORT/roots/0" 2>/dev/null &&
    port_open "$DNS_PORT"
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! running "$(<"$PEBBLE_PID")"; then
      log "pebble exited during start-up; last log lines:"; tail -n 20 "$PEBBLE_LOG" >&2 || true; return 1
    fi
    if ! running "$(<"$CTS_PID")"; then
      log "pebble-challtestsrv exited during start-up; last log lines:"; tail -n 20 "$CTS_LOG" >&2 || true; return 1
    fi
    ready && return 0
    sleep 0.1
  done
  log "not ready after ${START_TIMEOUT}s; last log lines:"
  tail -n 10 "$PEBBLE_LOG" "$CTS_LOG" >&2 || true
  return 1
}

cts_post() { # path json
  curl -fsS --max-time 3 -o /dev/null -d "$2" "http://$HOST:$CTS_PORT$1"
}

# --- commands ---------------------------------------------------------------------

cmd_start() {
  parse_start_opts "$@"
  need openssl openssl
  need curl curl
  need setsid util-linux
  need timeout coreutils
  [[ -x $PEBBLE_BIN ]] || die "$PEBBLE_BIN missing (apt-get install -y pebble, or scripts/install-deps.sh)"
  [[ -x $CTS_BIN ]] || die "$CTS_BIN missing (apt-get install -y pebble, or scripts/install-deps.sh)"
  mkdir -p "$STATE_DIR/log"
  chmod 700 "$STATE_DIR"

  local want
  want=$(settings_fingerprint)
  if pid_alive "$PEBBLE_PID" "$PEBBLE_BIN" >/dev/null || pid_alive "$CTS_PID" "$CTS_BIN" >/dev/null; then
    if [[ -s $SETTINGS_FILE && $(<"$SETTINGS_FILE") == "$want" && -s $ENV_FILE ]] && ready; then
      log "already running (state: $STATE_DIR)"
      return 0
    fi
    log "running instance has other settings or is unhealthy: restarting"
    cmd_stop
  fi
  rm -f "$PEBBLE_PID" "$CTS_PID" "$ENV_FILE" "$STATE_DIR/issuer-root.pem" "$STATE_DIR/issuer-intermediate.pem"

  local p
  for p in "$ACME_PORT" "$MGMT_PORT" "$DNS_PORT" "$CTS_PORT"; do
    port_open "$p" && die "127.0.0.1:$p is already in use by another process (set ACME_LAB_*_PORT)"
  done
  for p in "$HTTP01_PORT" "$TLSALPN01_PORT"; do
    port_open "$p" && log "warning: 127.0.0.1:$p is already listening; the ACME client's challenge server must own it"
  done

  make_https_cert
  write_config
  printf '%s\n' "$want" >"$SETTINGS_FILE"
  printf '\n===== %s start: %s\n' "$(date -u +%FT%TZ)" "$want" | tee -a "$PEBBLE_LOG" >>"$CTS_LOG"

  # Mock DNS only: its http-01/tls-alpn-01 responders are disabled because the client under test
  # owns those ports. Every name answers A 127.0.0.1 and no AAAA: Pebble asks AAAA first and
  # dials addrs[0], so challtestsrv's default AAAA of ::1 would send validations to [::1]:PORT.
  spawn "$CTS_PID" "$CTS_LOG" "$CTS_BIN" \
    -dns01 "$HOST:$DNS_PORT" -http01 "" -https01 "" -tlsalpn01 "" \
    -management "$HOST:$CTS_PORT" -defaultIPv4 "$HOST" -defaultIPv6 ""

  local -a envs=("PEBBLE_WFE_NONCEREJECT=$NONCE_REJECT")
  if ((VA_SLEEP == 0)); then envs+=(PEBBLE_VA_NOSLEEP=1); else envs+=("PEBBLE_VA_SLEEPTIME=$VA_SLEEP"); fi
  [[ -n $AUTHZ_REUSE ]] && envs+=("PEBBLE_AUTHZREUSE=$AUTHZ_REUSE")
  # Only the settings above reach Pebble, whatever PEBBLE_* the caller's environment holds.
  spawn "$PEBBLE_PID" "$PEBBLE_LOG" env -u PEBBLE_VA_NOSLEEP -u PEBBLE_VA_SLEEPTIME \
    -u PEBBLE_VA_ALWAYS_VALID -u PEBBLE_AUTHZREUSE -u PEBBLE_CHAIN_LENGTH -u PEBBLE_ALTERNATE_ROOTS \
    -u PEBBLE_WFE_NONCEREJECT "${envs[@]}" \
    "$PEBBLE_BIN" -config "$STATE_DIR/pebble-config.json" -dnsserver "$HOST:$DNS_PORT"

  if ! wait_ready; then
    cmd_stop
    die "start failed (logs: $STATE_DIR/log)"
  fi
  # Assert the DNS defaults through the management API too.
  cts_post /set-default-ipv4 "{\"ip\":\"$HOST\"}" || { cmd_stop; die "challtestsrv management API not answering"; }
  cts_post /set-default-ipv6 '{"ip":""}' || { cmd_stop; die "challtestsrv management API not answering"; }

  # The issuing hierarchy is regenerated on every Pebble launch: save it now.
  curl_pebble -o "$STATE_DIR/issuer-root.pem" "https://$HOST:$MGMT_PORT/roots/0" ||
    { cmd_stop; die "could not fetch /roots/0"; }
  curl_pebble -o "$STATE_DIR/issuer-intermediate.pem" "https://$HOST:$MGMT_PORT/intermediates/0" || true
  write_env "$ENV_FILE"
  log "ready: https://$HOST:$ACME_PORT/dir (nonce-reject ${NONCE_REJECT}%, validity ${CERT_VALIDITY:-157766400}s, va-sleep ${VA_SLEEP}s; pebble pid $(<"$PEBBLE_PID"), challtestsrv pid $(<"$CTS_PID"), state $STATE_DIR)"
}

cmd_stop() {
  stop_one "$PEBBLE_PID" "$PEBBLE_BIN" pebble
  stop_one "$CTS_PID" "$CTS_BIN" pebble-challtestsrv
  rm -f "$ENV_FILE" "$SETTINGS_FILE"
}

cmd_status() {
  if ready; then
    echo "running: pebble pid $(<"$PEBBLE_PID"), challtestsrv pid $(<"$CTS_PID"), directory https://$HOST:$ACME_PORT/dir"
    return 0
  fi
  echo "not running (state dir $STATE_DIR)"
  return 1
}

cmd_env() {
  if [[ ! -s $ENV_FILE ]] || ! pid_alive "$PEBBLE_PID" "$PEBBLE_BIN" >/dev/null; then
    die "not running: run '$0 start' first"
  fi
  local line
  while IFS= read -r line; do
    printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
  done <"$ENV_FILE"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start [options] | stop | status | env   ($0 start --help)" >&2; exit 2 ;;
esac
