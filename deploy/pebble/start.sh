#!/bin/bash
# Starts Pebble with an HTTPS certificate for the name "pebble", signed by a CA made on first
# start in /pebble-ca (a volume the frontdoor service mounts to trust the ACME endpoint).
# Pebble validates challenges on the frontdoor container's ports 8080 (http-01) and 8443
# (tls-alpn-01), reaching the domain through the compose network's DNS.
set -euo pipefail
ca=/pebble-ca
work=$(mktemp -d)
umask 077
if [ ! -s "$ca/ca.pem" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$ca/ca.key"
  openssl req -x509 -new -key "$ca/ca.key" -sha256 -days 3650 \
    -subj "/CN=frontdoor local Pebble HTTPS CA" -out "$ca/ca.pem.tmp"
  chmod 0644 "$ca/ca.pem.tmp"
  mv "$ca/ca.pem.tmp" "$ca/ca.pem"
fi
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem"
openssl req -new -key "$work/key.pem" -subj "/CN=pebble" -out "$work/server.csr"
printf 'subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
  > "$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" \
  -CAcreateserial -CAserial "$work/ca.srl" -sha256 -days 365 -extfile "$work/server.ext" \
  -out "$work/cert.pem" 2>/dev/null
cat > "$work/pebble.json" <<JSON
{
  "pebble": {
    "listenAddress": "0.0.0.0:14000",
    "managementListenAddress": "0.0.0.0:15000",
    "certificate": "$work/cert.pem",
    "privateKey": "$work/key.pem",
    "httpPort": 8080,
    "tlsPort": 8443,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
JSON
exec pebble -config "$work/pebble.json"
