// Private to the HTTP server (included by .cc files only; it brings in Boost.Asio's SSL): the
// TLS context of an HTTPS server, loaded from PEM files with errors that name the file.
#ifndef RECLOOP_SERVING_HTTP_TLS_H_
#define RECLOOP_SERVING_HTTP_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "boost/asio/ssl/context.hpp"

namespace recloop {

// A server context accepting TLS 1.2 and later, with the certificate chain of `cert_file` and
// the private key of `key_file` (PEM; an encrypted key is refused, never prompted for).
// Errors: InvalidArgument naming the file that cannot be read, is not a PEM certificate or key,
// or the key that does not match the certificate.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeTlsServerContext(
    const std::string& cert_file, const std::string& key_file);

}  // namespace recloop

#endif  // RECLOOP_SERVING_HTTP_TLS_H_
