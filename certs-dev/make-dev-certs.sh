#!/usr/bin/env bash
# Creates a local development CA and a `localhost` server certificate signed by it.
#   certs-dev/make-dev-certs.sh [-f] [OUTDIR]      (OUTDIR defaults to certs-dev/out)
# Writes ca.crt ca.key localhost.crt localhost.key. Keys are 0600, OUTDIR 0700.
# Does nothing if the files exist, the leaf verifies against the CA, matches its key and is
# valid for 30 more days. Otherwise a CA that is still good is kept and only the leaf is
# reissued; -f regenerates everything.
set -euo pipefail

script_dir="$(cd "$(dirname "$0")" && pwd)"

usage() { echo "usage: $0 [-f] [OUTDIR]" >&2; exit 2; }

force=0
outdir=
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--force) force=1 ;;
    -h|--help) usage ;;
    -*) echo "make-dev-certs: unknown option: $1" >&2; usage ;;
    *) [ -z "$outdir" ] || usage; outdir=$1 ;;
  esac
  shift
done
outdir=${outdir:-$script_dir/out}

CA_DAYS=3650
LEAF_DAYS=825
RENEW_BEFORE_SECONDS=$((30 * 24 * 3600))

umask 077

if ! command -v openssl >/dev/null 2>&1; then
  echo "make-dev-certs: the openssl command is missing (apt-get install openssl)" >&2
  exit 1
fi

mkdir -p "$outdir"
# Tighten a directory we own, but never a shared one such as /tmp (sticky bit).
if [ ! -k "$outdir" ] && [ -O "$outdir" ]; then
  chmod 700 "$outdir"
fi

ca_crt=$outdir/ca.crt
ca_key=$outdir/ca.key
leaf_crt=$outdir/localhost.crt
leaf_key=$outdir/localhost.key

pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }

ca_good() {
  [ -s "$ca_crt" ] && [ -s "$ca_key" ] || return 1
  openssl verify -CAfile "$ca_crt" "$ca_crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$ca_crt" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 || return 1
  [ "$(pubkey_of_cert "$ca_crt")" = "$(pubkey_of_key "$ca_key")" ] || return 1
}

leaf_good() {
  [ -s "$leaf_crt" ] && [ -s "$leaf_key" ] || return 1
  openssl verify -CAfile "$ca_crt" "$leaf_crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$leaf_crt" -noout -checkend "$RENEW_BEFORE_SECONDS" >/dev/null 2>&1 || return 1
  [ "$(pubkey_of_cert "$leaf_crt")" = "$(pubkey_of_key "$leaf_key")" ] || return 1
}

reuse_ca=0
if [ "$force" -eq 0 ] && ca_good; then
  if leaf_good; then
    echo "make-dev-certs: certificates in $outdir are valid, nothing to do (-f to regenerate)"
    exit 0
  fi
  # Keep a CA that is still good, so a client that already trusts it keeps working.
  reuse_ca=1
fi

# Build everything in a scratch directory inside OUTDIR, then move the files into place, so
# a failure never leaves a mix of old and new files.
work=$(mktemp -d "$outdir/.make-dev-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Our own OpenSSL config, so the result does not depend on the system's openssl.cnf defaults.
cat >"$work/openssl.cnf" <<'CNF'
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

# Positive random 128-bit serial.
serial() { echo "0x1$(openssl rand -hex 15)"; }

run() {
  local out
  if ! out=$("$@" 2>&1); then
    echo "make-dev-certs: failed: $*" >&2
    echo "$out" >&2
    exit 1
  fi
}

if [ "$reuse_ca" -eq 1 ]; then
  cp "$ca_key" "$work/ca.key"
  cp "$ca_crt" "$work/ca.crt"
else
  run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
  run openssl req -new -x509 -config "$work/openssl.cnf" -extensions ca_ext -sha256 \
    -key "$work/ca.key" -subj "/CN=frontdoor development CA" \
    -days "$CA_DAYS" -set_serial "$(serial)" -out "$work/ca.crt"
fi

run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/localhost.key"
run openssl req -new -config "$work/openssl.cnf" -sha256 \
  -key "$work/localhost.key" -subj "/CN=localhost" -out "$work/localhost.csr"
run openssl x509 -req -in "$work/localhost.csr" -sha256 \
  -CA "$work/ca.crt" -CAkey "$work/ca.key" -set_serial "$(serial)" \
  -days "$LEAF_DAYS" -extfile "$work/openssl.cnf" -extensions leaf_ext \
  -out "$work/localhost.crt"

run openssl verify -CAfile "$work/ca.crt" "$work/localhost.crt"

chmod 600 "$work/ca.key" "$work/localhost.key"
chmod 644 "$work/ca.crt" "$work/localhost.crt"
for f in ca.key ca.crt localhost.key localhost.crt; do
  mv -f "$work/$f" "$outdir/$f"
done

if [ "$reuse_ca" -eq 1 ]; then
  echo "make-dev-certs: kept the development CA, wrote a new localhost certificate to $outdir"
else
  echo "make-dev-certs: wrote a new development CA and localhost certificate to $outdir"
fi
echo "make-dev-certs: trust it with e.g. curl --cacert $ca_crt https://localhost:8443/"
