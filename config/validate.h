#pragma once

#include <vector>

#include "config/config.h"
#include "config/load.h"

namespace fd::config {

// Checks what the YAML types alone cannot: at least one listener, upstream and route; every
// route names a defined upstream; listener addresses and upstream names are unique; a TLS listener
// has at least one certificate or ACME domain; certificate and key files are readable and parse as
// PEM (certificate chain and private key that match); every upstream has at least one server with
// weight >= 1; a health check's timeout fits its interval; the admin address is not (and does
// not overlap) a listen address. Appends one Diagnostic per problem to |out| (file = cfg.source,
// line/col from the marks).
void validate(const Config& cfg, std::vector<Diagnostic>* out);

}  // namespace fd::config
