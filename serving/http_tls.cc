#include "serving/http_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

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

// OpenSSL's reason for the last failure (its error queue), e.g. "no start line".
std::string OpenSslReason(const boost::system::error_code& ec) {
  const unsigned long code = ERR_peek_last_error();
  std::string reason = code != 0 && ERR_reason_error_string(code) != nullptr
                           ? ERR_reason_error_string(code)
                           : ec.message();
  ERR_clear_error();
  return reason;
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
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key ", key_file, " is not an unencrypted PEM private key: ", OpenSslReason(ec)));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, " does not match the certificate ", cert_file));
  }
  return ctx;
}

}  // namespace recloop
