// TLS material and policy shared by the agent's server and its clients.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace grpc::experimental {
class CertificateProviderInterface;
}

namespace nq {

struct TlsFiles {
  std::string cert_file;  // PEM certificate chain, leaf first
  std::string key_file;   // PEM private key of the leaf
  std::string ca_file;    // PEM bundle of the CAs the peer must chain to
};

// True when all three files are named.
bool complete(const TlsFiles& files);

// Reads and parses the three files now, so that a typo or a broken rotation is
// an error at start instead of a handshake failure later (gRPC's file watcher
// only logs). Checks: the certificate parses, the key parses and belongs to the
// certificate, the CA bundle holds at least one certificate. Errors name the
// option (`<prefix>tls_cert_file`, ...) and the path.
Status check_tls_files(const TlsFiles& files, std::string_view field_prefix = "");

// Re-reads the files every `refresh_seconds`, so rotated certificates are used
// without a restart. Rotate atomically (rename a directory or symlink).
std::shared_ptr<grpc::experimental::CertificateProviderInterface> watch_tls_files(
    const TlsFiles& files, unsigned refresh_seconds);

// ---- TLS 1.3 only ----
//
// gRPC 1.51 (Debian 12) has no API for the TLS version range: its TLS
// credentials always negotiate TLS 1.2 or 1.3 (TlsCredentialsOptions gained
// set_min_tls_version only in later releases). The one documented knob is
// GRPC_SSL_CIPHER_SUITES, the OpenSSL cipher list gRPC gives every TLS <= 1.2
// context (TLS 1.3 suites are configured separately and stay at OpenSSL's
// defaults). We set it to a single PSK suite: OpenSSL never selects a PSK suite
// without a PSK callback, which gRPC does not install, so a TLS 1.2 handshake
// finds no shared cipher and fails, while TLS 1.3 is unaffected.
//
// gRPC reads the variable once, at its first TLS handshake setup, for the whole
// process. So this is process configuration: call pin_grpc_tls13() at the top
// of main() (or of a test suite), before any gRPC object exists. GrpcServer and
// make_channel() refuse TCP/TLS when it was not done.
inline constexpr const char* kTls12CipherSuitesEnv = "GRPC_SSL_CIPHER_SUITES";
inline constexpr const char* kNoUsableTls12Ciphers = "PSK-AES128-GCM-SHA256";
Status pin_grpc_tls13();
// Whether pin_grpc_tls13() (or an identical environment) is in effect.
bool grpc_tls13_pinned();

}  // namespace nq
