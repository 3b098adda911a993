#!/usr/bin/env bash
# Certificates for a secure Roost cell (nats-1.conf … nats-3.conf): a CA, one server certificate
# for all three nats-servers, and one client certificate for Roost's processes and operators.
#
#   ops/nats/secure/gen-certs.sh [DIR]      # DIR defaults to /etc/roost/tls
#
# Writes DIR/ca.pem, ca.key, server.pem, server.key, client.pem, client.key. An existing CA in
# DIR is reused, so re-running renews the server and client certificates without invalidating
# the ones already handed out. Keep ca.key off the servers once you are done issuing.
set -euo pipefail

dir="${1:-/etc/roost/tls}"
days_ca=3650
days_leaf=825

command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is not installed" >&2; exit 1; }
mkdir -p "$dir"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# quiet CMD…: run an openssl command, showing its chatter only when it fails.
quiet() { "$@" 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 1; }; }

if [[ -s "$dir/ca.pem" && -s "$dir/ca.key" ]]; then
  echo "gen-certs.sh: reusing the CA in $dir"
else
  quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$days_ca" \
    -subj "/O=Roost/CN=Roost cell CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.pem"
fi

# leaf NAME CN EXTENSIONS: a key and a certificate signed by the CA.
leaf() {
  local name=$1 cn=$2 ext=$3
  quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/O=Roost/CN=$cn" -keyout "$dir/$name.key" -out "$work/$name.csr"
  printf '%s\n' "$ext" >"$work/$name.ext"
  quiet openssl x509 -req -sha256 -days "$days_leaf" -in "$work/$name.csr" \
    -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -CAserial "$work/ca.srl" \
    -extfile "$work/$name.ext" -out "$dir/$name.pem"
}

# The servers' certificate serves clients and routes, and is the client side of the routes each
# server opens (hence clientAuth). Routes accept a peer only if its certificate names one of the
# route URLs' hosts (verify_cert_and_check_known_urls), which the client certificate does not.
leaf server "roost-nats" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:nats-1,DNS:nats-2,DNS:nats-3,DNS:localhost,IP:127.0.0.1"

# Roost's processes and operators: accepted on the client port (verify: true), never as a route.
leaf client "roost-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

chmod 644 "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem"
openssl verify -CAfile "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem" >/dev/null
echo "gen-certs.sh: wrote ca, server and client certificates to $dir"
