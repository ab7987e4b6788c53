#include "serving/http_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "boost/asio/ssl/error.hpp"

namespace recloop {
namespace {

namespace ssl = boost::asio::ssl;

// "cannot read" with the system's reason, before OpenSSL's less helpful "system lib" message.
absl::Status CheckReadable(const std::string& what, const std::string& path) {
  std::ifstream in(path);
  if (in) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("cannot read TLS ", what, " ", path, ": ", std::strerror(errno)));
}

// OpenSSL's reason for a failure of Asio's, e.g. "no start line".
std::string OpenSslReason(const boost::system::error_code& ec) {
  ERR_clear_error();
  return ec.message();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsServerContext(const std::string& cert_file,
                                                                   const std::string& key_file) {
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate file and a key file");
  }
  if (absl::Status s = CheckReadable("certificate", cert_file); !s.ok()) return s;
  if (absl::Status s = CheckReadable("key", key_file); !s.ok()) return s;
  // tls_server with a floor, not tlsv12_server: that one also caps the version at TLS 1.2.
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
    return absl::InternalError("cannot set the TLS 1.2 minimum");
  }
  ctx->set_options(ssl::context::default_workarounds | ssl::context::single_dh_use |
                   ssl::context::no_compression);
  // An encrypted key would make OpenSSL prompt on the terminal; refuse it instead.
  ctx->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) { return std::string(); });
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS certificate ", cert_file, " is not a PEM certificate: ", OpenSslReason(ec)));
  }
  ctx->use_private_key_file(key_file, ssl::context::pem, ec);
  // OpenSSL checks the key against the certificate as it loads it (Asio's error code is the
  // OpenSSL error it took off the queue).
  if (ec && ec.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, " does not match the certificate ", cert_file));
  }
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key ", key_file, " is not an unencrypted PEM private key: ", OpenSslReason(ec)));
  }
  return ctx;
}

}  // namespace recloop
