#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "common/ossl.h"

namespace fd::proxy {
namespace {

// TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are OpenSSL's defaults.
constexpr const char* CIPHERS_TLS12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* GROUPS = "X25519:P-256:P-384";
constexpr unsigned char SESSION_ID_CONTEXT[] = "frontdoor";

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    }
  }
  return out;
}

// DNS names a certificate is valid for: its DNS SANs, or its CN when it has none.
std::vector<std::string> certificate_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        names.push_back(lowercase(std::string_view(reinterpret_cast<const char*>(s->data),
                                                   static_cast<size_t>(s->length))));
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      names.push_back(lowercase(cn));
    }
  }
  return names;
}

std::string issuer_of(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// RFC 3339 UTC form of an ASN1_TIME.
std::string rfc3339(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) {
    return {};
  }
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

TlsContextSet::~TlsContextSet() {
  for (auto& e : entries_) {
    SSL_CTX_free(e.ctx);
  }
}

Result<std::shared_ptr<const TlsContextSet>> TlsContextSet::build(const config::Tls& tls) {
  if (tls.certificates.empty()) {
    return make_error(Errc::tls, "a TLS listener needs at least one certificate");
  }
  std::shared_ptr<TlsContextSet> set(new TlsContextSet());
  for (const auto& cert : tls.certificates) {
    auto ctx = set->make_context(tls, cert);
    if (!ctx) {
      return ctx.error();
    }
    X509* leaf = SSL_CTX_get0_certificate(*ctx);
    Entry entry{*ctx, certificate_names(leaf), {}};
    entry.view.names = entry.names;
    entry.view.issuer = issuer_of(leaf);
    entry.view.not_after = rfc3339(X509_get0_notAfter(leaf));
    entry.view.source = "file";
    size_t index = set->entries_.size();
    for (const auto& name : entry.names) {
      if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
        set->wildcard_.emplace(name.substr(2), index);
      } else {
        set->exact_.emplace(name, index);
      }
    }
    set->entries_.push_back(std::move(entry));
  }
  // Callbacks take the set itself as argument: it outlives every SSL made from its contexts.
  for (auto& e : set->entries_) {
    SSL_CTX_set_tlsext_servername_callback(e.ctx, &TlsContextSet::on_servername);
    SSL_CTX_set_tlsext_servername_arg(e.ctx, set.get());
    SSL_CTX_set_alpn_select_cb(e.ctx, &TlsContextSet::on_alpn, set.get());
  }
  return std::shared_ptr<const TlsContextSet>(std::move(set));
}

Result<ssl_ctx_st*> TlsContextSet::make_context(const config::Tls& tls,
                                                const config::Certificate& cert) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    return make_error(Errc::tls, "SSL_CTX_new: " + ossl::errors());
  }
  SSL_CTX_set_min_proto_version(ctx, tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_SINGLE_ECDH_USE);
  // Idle connections keep no TLS read/write buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Resumption is by stateless tickets only: no server-side cache to lock or grow.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(ctx, SESSION_ID_CONTEXT, sizeof SESSION_ID_CONTEXT - 1);
  if (SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1 || SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
    std::string err = ossl::errors();
    SSL_CTX_free(ctx);
    return make_error(Errc::tls, "TLS settings: " + err);
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.cert.c_str()) != 1) {
    std::string err = ossl::errors();
    SSL_CTX_free(ctx);
    return make_error(Errc::tls, "cannot load certificate " + cert.cert + ": " + err);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, cert.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    std::string err = ossl::errors();
    SSL_CTX_free(ctx);
    return make_error(Errc::tls, "cannot load key " + cert.key + ": " + err);
  }
  return ctx;
}

std::vector<CertificateView> TlsContextSet::describe() const {
  std::vector<CertificateView> out;
  for (const auto& e : entries_) {
    out.push_back(e.view);
  }
  return out;
}

ssl_st* TlsContextSet::new_ssl() const {
  ERR_clear_error();
  return SSL_new(entries_.front().ctx);
}

size_t TlsContextSet::select(std::string_view server_name) const {
  if (server_name.empty() || server_name.size() > 253) {
    return 0;
  }
  std::string name = lowercase(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) {
    return it->second;
  }
  size_t dot = name.find('.');
  if (dot != std::string::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) {
      return it->second;
    }
  }
  return 0;
}

int TlsContextSet::on_servername(ssl_st* ssl, int*, void* arg) {
  const auto* self = static_cast<const TlsContextSet*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) {
    return SSL_TLSEXT_ERR_OK;
  }
  size_t index = self->select(name);
  if (index != 0) {
    SSL_set_SSL_CTX(ssl, self->entries_[index].ctx);
  }
  return SSL_TLSEXT_ERR_OK;
}

int TlsContextSet::on_alpn(ssl_st*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char SUPPORTED[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, SUPPORTED, sizeof SUPPORTED, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace fd::proxy
