// TLS for the serving tests: a throwaway self-signed certificate for 127.0.0.1 made with the
// OpenSSL API (a fresh P-256 key per call, valid for a day; nothing is checked in), and a
// blocking HTTPS client that trusts only that certificate and checks the host name.
#ifndef RECLOOP_TESTS_SERVING_TLS_TEST_UTIL_H_
#define RECLOOP_TESTS_SERVING_TLS_TEST_UTIL_H_

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "tests/serving/test_client.h"

namespace recloop::test {

struct TestCert {
  std::string cert_file;  // PEM certificate, self-signed, subjectAltName IP:127.0.0.1
  std::string key_file;   // PEM private key, unencrypted
};

// Writes `prefix`.crt and `prefix`.key (e.g. prefix = dir.File("server")). Throws on failure.
inline TestCert WriteSelfSignedCert(const std::string& prefix) {
  struct Free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
    void operator()(X509* p) const { X509_free(p); }
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
    void operator()(BIO* p) const { BIO_free(p); }
  };
  std::unique_ptr<EVP_PKEY, Free> key(EVP_EC_gen("P-256"));
  std::unique_ptr<X509, Free> cert(X509_new());
  if (!key || !cert) throw std::runtime_error("OpenSSL: cannot make a key");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> san(
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1"));
  if (!san || X509_add_ext(cert.get(), san.get(), -1) != 1 ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    throw std::runtime_error("OpenSSL: cannot sign the certificate");
  }
  TestCert out{prefix + ".crt", prefix + ".key"};
  std::unique_ptr<BIO, Free> cert_bio(BIO_new_file(out.cert_file.c_str(), "w"));
  std::unique_ptr<BIO, Free> key_bio(BIO_new_file(out.key_file.c_str(), "w"));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    throw std::runtime_error("OpenSSL: cannot write " + prefix);
  }
  return out;
}

// An HTTPS connection to 127.0.0.1:port that trusts `ca_file` only. The constructor connects
// and handshakes (throws boost::system::system_error if either fails).
class TlsClient {
 public:
  TlsClient(uint16_t port, const std::string& ca_file)
      : ctx_(net::ssl::context::tls_client), stream_(ioc_, ctx_) {
    ctx_.load_verify_file(ca_file);
    stream_.set_verify_mode(net::ssl::verify_peer);
    stream_.set_verify_callback(net::ssl::host_name_verification("127.0.0.1"));
    tcp_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    tcp_layer().expires_after(std::chrono::seconds(10));
    stream_.handshake(net::ssl::stream_base::client);
  }

  Reply Get(const std::string& target, bool keep_alive = true) {
    http::request<http::string_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    tcp_layer().expires_after(std::chrono::seconds(10));
    http::write(stream_, req);
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(stream_, buffer_, res, ec);
    Reply r;
    if (ec) return r;
    r.status = res.result_int();
    r.body = res.body();
    r.content_type = std::string(res[http::field::content_type]);
    r.keep_alive = res.keep_alive();
    return r;
  }

  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }
  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }

 private:
  net::io_context ioc_;
  net::ssl::context ctx_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_SERVING_TLS_TEST_UTIL_H_
