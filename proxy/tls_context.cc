#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "common/log.h"
#include "common/ossl.h"
#include "common/time_format.h"

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
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
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

// Seconds since the epoch of an ASN1_TIME; 0 if it does not convert.
std::time_t to_time_t(const ASN1_TIME* t) {
  std::tm tm{};
  return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

// Reads a PEM chain (leaf first) and key from memory into |ctx|.
Result<void> load_pem(SSL_CTX* ctx, const std::string& chain_pem, const std::string& key_pem) {
  ossl::BioPtr chain(BIO_new_mem_buf(chain_pem.data(), static_cast<int>(chain_pem.size())));
  ossl::X509Ptr leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return make_error(Errc::tls, "certificate: " + ossl::errors());
  }
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add0_chain_cert(ctx, extra);
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  ossl::BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  ossl::PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return make_error(Errc::tls, "key: " + ossl::errors());
  }
  return {};
}

// The ALPN protocols a client offers (the extension body), as wire-format list.
bool offers_protocol(const unsigned char* ext, size_t len, std::string_view proto) {
  if (len < 2) {
    return false;
  }
  size_t list = (static_cast<size_t>(ext[0]) << 8) | ext[1];
  const unsigned char* p = ext + 2;
  const unsigned char* end = ext + std::min(len, list + 2);
  while (p < end) {
    size_t n = *p++;
    if (static_cast<size_t>(end - p) < n) {
      return false;
    }
    if (std::string_view(reinterpret_cast<const char*>(p), n) == proto) {
      return true;
    }
    p += n;
  }
  return false;
}

// The host_name entry of a server_name extension body, "" if none.
std::string sni_from_extension(const unsigned char* ext, size_t len) {
  if (len < 5 || ext[2] != 0) {
    return {};
  }
  size_t n = (static_cast<size_t>(ext[3]) << 8) | ext[4];
  if (n > len - 5) {
    return {};
  }
  return lowercase(std::string_view(reinterpret_cast<const char*>(ext + 5), n));
}

constexpr unsigned char ACME_TLS_ALPN[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};

}  // namespace

TlsContextSet::~TlsContextSet() {
  for (auto& e : entries_) {
    SSL_CTX_free(e.ctx);
  }
  SSL_CTX_free(bare_);
}

Result<std::shared_ptr<const TlsContextSet>> TlsContextSet::build(
    const config::Tls& tls, const acme::CertificateMap* managed,
    const acme::ChallengeStore* challenges, const TicketKeys* tickets) {
  std::shared_ptr<TlsContextSet> set(new TlsContextSet());
  set->tickets_ = tickets;
  set->min_version_ = tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  set->challenges_ = challenges;
  for (const auto& cert : tls.certificates) {
    auto ctx = set->new_context();
    if (!ctx) {
      return ctx.error();
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(*ctx, cert.cert.c_str()) != 1) {
      std::string err = ossl::errors();
      SSL_CTX_free(*ctx);
      return make_error(Errc::tls, "cannot load certificate " + cert.cert + ": " + err);
    }
    if (SSL_CTX_use_PrivateKey_file(*ctx, cert.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(*ctx) != 1) {
      std::string err = ossl::errors();
      SSL_CTX_free(*ctx);
      return make_error(Errc::tls, "cannot load key " + cert.key + ": " + err);
    }
    set->add_entry(*ctx, "file");
  }
  if (tls.acme_enabled) {
    for (const auto& name : tls.acme.domains) {
      set->pending_.insert(name);
    }
  }
  if (managed != nullptr) {
    for (const auto& [name, cert] : *managed) {
      // A name a reload took out of tls.acme.domains is no longer served.
      if (set->pending_.count(name) == 0) {
        continue;
      }
      auto ctx = set->new_context();
      if (!ctx) {
        return ctx.error();
      }
      if (auto rc = load_pem(*ctx, cert->chain_pem, cert->key_pem); !rc) {
        SSL_CTX_free(*ctx);
        log::error("managed certificate unusable",
                   {{"name", name}, {"reason", rc.error().message}});
        continue;
      }
      set->add_entry(*ctx, "acme");
      // A managed name is served by its own certificate even if a static one also covers it.
      set->exact_[name] = set->entries_.size() - 1;
      set->pending_.erase(name);
    }
  }
  auto bare = set->new_context();
  if (!bare) {
    return bare.error();
  }
  set->bare_ = *bare;
  return std::shared_ptr<const TlsContextSet>(std::move(set));
}

void TlsContextSet::add_entry(ssl_ctx_st* ctx, const std::string& source) {
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  Entry entry{ctx, certificate_names(leaf), {}};
  entry.view.names = entry.names;
  entry.view.issuer = issuer_of(leaf);
  entry.view.not_after_unix = to_time_t(X509_get0_notAfter(leaf));
  entry.view.not_after = format_rfc3339(entry.view.not_after_unix);
  entry.view.source = source;
  size_t index = entries_.size();
  for (const auto& name : entry.names) {
    if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
      wildcard_.emplace(name.substr(2), index);
    } else {
      exact_.emplace(name, index);
    }
  }
  entries_.push_back(std::move(entry));
}

Result<ssl_ctx_st*> TlsContextSet::new_context() const {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    return make_error(Errc::tls, "SSL_CTX_new: " + ossl::errors());
  }
  SSL_CTX_set_min_proto_version(ctx, min_version_);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_SINGLE_ECDH_USE);
  // Idle connections keep no TLS read/write buffers.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Resumption is by stateless tickets only: no server-side cache to lock or grow.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_session_id_context(ctx, SESSION_ID_CONTEXT, sizeof SESSION_ID_CONTEXT - 1);
  // One TLS 1.3 ticket per handshake, as Go's crypto/tls (Caddy) sends, not OpenSSL's two:
  // each costs a session serialization and its encryption, about 5% of a full handshake
  // here, and a client resuming gets a fresh one with every resumption.
  SSL_CTX_set_num_tickets(ctx, 1);
  if (SSL_CTX_set_cipher_list(ctx, CIPHERS_TLS12) != 1 ||
      SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
    std::string err = ossl::errors();
    SSL_CTX_free(ctx);
    return make_error(Errc::tls, "TLS settings: " + err);
  }
  // The set outlives every SSL made from its contexts, so it can be the callbacks' argument.
  void* self = const_cast<TlsContextSet*>(this);
  SSL_CTX_set_client_hello_cb(ctx, &TlsContextSet::on_client_hello, self);
  SSL_CTX_set_tlsext_servername_callback(ctx, &TlsContextSet::on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, self);
  SSL_CTX_set_alpn_select_cb(ctx, &TlsContextSet::on_alpn, self);
  if (tickets_ != nullptr) {
    tickets_->install(ctx);
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
  return SSL_new(entries_.empty() ? bare_ : entries_.front().ctx);
}

int TlsContextSet::select(std::string_view server_name) const {
  if (entries_.empty()) {
    return -1;
  }
  if (server_name.empty() || server_name.size() > 253) {
    return 0;
  }
  std::string name = lowercase(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) {
    return static_cast<int>(it->second);
  }
  if (pending_.count(name) != 0) {
    return -1;
  }
  size_t dot = name.find('.');
  if (dot != std::string::npos) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) {
      return static_cast<int>(it->second);
    }
  }
  return 0;
}

bool TlsContextSet::owns(const ssl_ctx_st* ctx) const {
  if (ctx == bare_) {
    return true;
  }
  for (const auto& e : entries_) {
    if (e.ctx == ctx) {
      return true;
    }
  }
  return false;
}

bool TlsContextSet::use_challenge(ssl_st* ssl, const std::string& name) const {
  if (challenges_ == nullptr) {
    return false;
  }
  auto cert = challenges_->tls_alpn01(name);
  if (!cert) {
    return false;
  }
  auto ctx = new_context();
  if (!ctx) {
    return false;
  }
  if (!load_pem(*ctx, cert->cert_pem, cert->key_pem)) {
    SSL_CTX_free(*ctx);
    return false;
  }
  SSL_CTX_set_alpn_select_cb(*ctx, &TlsContextSet::on_alpn_challenge, nullptr);
  SSL_set_SSL_CTX(ssl, *ctx);
  SSL_CTX_free(*ctx);  // the SSL holds its own reference now
  return true;
}

int TlsContextSet::on_client_hello(ssl_st* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const TlsContextSet*>(arg);
  const unsigned char* alpn = nullptr;
  size_t alpn_len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn,
                                &alpn_len) != 1 ||
      !offers_protocol(alpn, alpn_len, "acme-tls/1")) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  // RFC 8737: an acme-tls/1 handshake is a validation; answer it with the challenge
  // certificate or not at all.
  const unsigned char* sni = nullptr;
  size_t sni_len = 0;
  std::string name;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &sni, &sni_len) == 1) {
    name = sni_from_extension(sni, sni_len);
  }
  if (!name.empty() && self->use_challenge(ssl, name)) {
    log::info("acme tls-alpn-01 challenge answered", {{"name", name}});
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  log::warn("acme-tls/1 handshake with no open challenge", {{"name", name}});
  *alert = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_CLIENT_HELLO_ERROR;
}

int TlsContextSet::on_servername(ssl_st* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const TlsContextSet*>(arg);
  if (!self->owns(SSL_get_SSL_CTX(ssl))) {
    return SSL_TLSEXT_ERR_OK;  // already moved to a challenge context
  }
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  int index = self->select(name != nullptr ? name : "");
  if (index < 0) {
    log::warn("TLS handshake refused: no certificate for this name yet",
              {{"name", name != nullptr ? name : ""}});
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  SSL_CTX* ctx = self->entries_[static_cast<size_t>(index)].ctx;
  if (ctx != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, ctx);
  }
  return SSL_TLSEXT_ERR_OK;
}

int TlsContextSet::on_alpn(ssl_st*, const unsigned char** out, unsigned char* outlen,
                           const unsigned char* in, unsigned int inlen, void*) {
  // Server preference order: h2 when the client offers it (RFC 9113 §3.2), else HTTP/1.1.
  static const unsigned char SUPPORTED[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, SUPPORTED, sizeof SUPPORTED, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

int TlsContextSet::on_alpn_challenge(ssl_st*, const unsigned char** out, unsigned char* outlen,
                                     const unsigned char* in, unsigned int inlen, void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ACME_TLS_ALPN, sizeof ACME_TLS_ALPN, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace fd::proxy
