#include "agent/server/tls.h"

#include <fcntl.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/fd.h"
#include "common/file.h"

namespace nq {
namespace {

template <auto Free>
struct SslFree {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, SslFree<BIO_free>>;
using X509Ptr = std::unique_ptr<X509, SslFree<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, SslFree<EVP_PKEY_free>>;

Result<std::string> read_file(const std::string& path, std::string_view field) {
  auto text = nq::read_file(path);
  if (!text.ok()) return std::move(text).error().wrapped(field);
  return text;
}

// OpenSSL keeps its reasons on a thread-local queue; take the newest and clear it.
std::string ssl_reason() {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "no PEM data";
}

BioPtr mem_bio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

bool complete(const TlsFiles& files) {
  return !files.cert_file.empty() && !files.key_file.empty() && !files.ca_file.empty();
}

Status check_tls_files(const TlsFiles& files, std::string_view field_prefix) {
  const std::string prefix(field_prefix);
  const std::string cert_field = prefix + "tls_cert_file";
  const std::string key_field = prefix + "tls_key_file";
  const std::string ca_field = prefix + "tls_ca_file";

  NQ_ASSIGN_OR_RETURN(const std::string cert_pem, read_file(files.cert_file, cert_field));
  BioPtr bio = mem_bio(cert_pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert)
    return Error::invalid_argument(
        cert_field, files.cert_file + " holds no PEM certificate (" + ssl_reason() + ")");

  NQ_ASSIGN_OR_RETURN(const std::string key_pem, read_file(files.key_file, key_field));
  bio = mem_bio(key_pem);
  // An empty passphrase callback: an encrypted key must fail here, not prompt on a tty.
  PkeyPtr key(PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key)
    return Error::invalid_argument(
        key_field, files.key_file + " holds no unencrypted PEM private key (" + ssl_reason() + ")");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Error::invalid_argument(
        key_field, files.key_file + " does not belong to the certificate in " + files.cert_file);
  }

  NQ_ASSIGN_OR_RETURN(const std::string ca_pem, read_file(files.ca_file, ca_field));
  bio = mem_bio(ca_pem);
  int cas = 0;
  while (X509Ptr ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) ++cas;
  ERR_clear_error();  // the loop ends on "no start line"
  if (cas == 0)
    return Error::invalid_argument(ca_field, files.ca_file + " holds no PEM CA certificate");
  return ok();
}

std::shared_ptr<grpc::experimental::CertificateProviderInterface> watch_tls_files(
    const TlsFiles& files, unsigned refresh_seconds) {
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.cert_file, files.ca_file, refresh_seconds);
}

Status pin_grpc_tls13() {
  if (::setenv(kTls12CipherSuitesEnv, kNoUsableTls12Ciphers, /*overwrite=*/1) < 0)
    return Error::from_errno(errno, std::string("setenv ") + kTls12CipherSuitesEnv);
  return ok();
}

bool grpc_tls13_pinned() {
  const char* value = std::getenv(kTls12CipherSuitesEnv);
  return value != nullptr && std::strcmp(value, kNoUsableTls12Ciphers) == 0;
}

}  // namespace nq
