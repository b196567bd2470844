#!/bin/bash
# Generates throwaway mTLS material for the transport tests into OUTDIR:
#   ca.crt                         the test CA (EC P-256, like every key here)
#   server.{crt,key}               the agent: SAN DNS:localhost, IP:127.0.0.1
#   controller.{crt,key}           client "nodequake-controller" (SAN DNS and CN)
#   intruder.{crt,key}             client "intruder", CN only (no SAN), same CA
#   stranger.{crt,key}             client claiming "nodequake-controller", signed by other-ca
#   other-ca.crt                   a second, untrusted CA
# Validity is two days: nothing here is worth keeping.
set -euo pipefail

out=${1:?usage: gen-test-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
umask 077

days=2

new_ca() {  # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "$2" -keyout "$1.key" -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

new_leaf() {  # name ca subject extended-key-usage [subjectAltName]
  local name=$1 ca=$2 subject=$3 eku=$4 san=${5:-}
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    if [[ -n $san ]]; then echo "subjectAltName=$san"; fi
  } >"$name.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days "$days" -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

new_ca ca "/CN=nodequake test CA"
new_ca other-ca "/CN=some other CA"
new_leaf server ca "/CN=nodequake-agent" serverAuth "DNS:localhost,IP:127.0.0.1"
new_leaf controller ca "/CN=nodequake-controller" clientAuth "DNS:nodequake-controller"
new_leaf intruder ca "/CN=intruder" clientAuth
new_leaf stranger other-ca "/CN=nodequake-controller" clientAuth "DNS:nodequake-controller"
# The CA keys are not needed by the tests; nothing should be able to sign later.
rm -f ca.key other-ca.key
