#pragma once

#include <ctime>
#include <string>

#include "config/config.h"

namespace fd::acme {

// The text of `frontdoor acme status`: for each managed name its notAfter, next renewal time
// and last error, read from storage only (no network, no proxy). |now| decides "expired".
std::string status_report(const config::Acme& acme, std::time_t now);

}  // namespace fd::acme
