#include "acme/status_report.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "acme/renewal.h"
#include "acme/storage.h"
#include "common/ossl.h"
#include "common/time_format.h"

namespace fd::acme {
namespace {

// notBefore and notAfter of the first certificate in |pem|; false if it does not parse.
bool leaf_validity(const std::string& pem, std::time_t* not_before, std::time_t* not_after) {
  ossl::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::X509Ptr leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  std::tm nb{};
  std::tm na{};
  if (!leaf || ASN1_TIME_to_tm(X509_get0_notBefore(leaf.get()), &nb) != 1 ||
      ASN1_TIME_to_tm(X509_get0_notAfter(leaf.get()), &na) != 1) {
    return false;
  }
  *not_before = timegm(&nb);
  *not_after = timegm(&na);
  return true;
}

}  // namespace

std::string status_report(const config::Acme& acme, std::time_t now) {
  Storage storage(acme.storage, acme.directory);
  std::ostringstream out;
  out << "ACME directory " << acme.directory << ", storage " << acme.storage << "\n";
  for (const auto& name : acme.domains) {
    out << "\n" << name << "\n";
    auto chain = storage.read_chain(name);
    std::time_t not_before = 0;
    std::time_t not_after = 0;
    if (!chain || !leaf_validity(*chain, &not_before, &not_after)) {
      out << "  certificate:   none yet\n";
    } else {
      std::optional<std::chrono::seconds> before;
      if (!acme.renew_auto) {
        before = std::chrono::duration_cast<std::chrono::seconds>(acme.renew_before);
      }
      auto due =
          renewal_time(to_system_time(not_before), to_system_time(not_after), before);
      out << "  not_after:     " << format_rfc3339(not_after)
          << (not_after <= now ? " (expired)" : "") << "\n";
      out << "  next_renewal:  " << format_rfc3339(Clock::to_time_t(due))
          << (acme.renew_auto ? " (or the CA's ARI window when it offers one)" : "") << "\n";
    }
    std::string last_error = "-";
    if (auto state = storage.read_state(name)) {
      auto json = nlohmann::json::parse(*state, nullptr, false);
      if (json.is_object() && json.value("last_error", "") != "") {
        last_error =
            json.value("last_error", "") + " (retry at " + json.value("next_attempt", "?") + ")";
      }
    }
    out << "  last_error:    " << last_error << "\n";
  }
  return out.str();
}

}  // namespace fd::acme
