#pragma once

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/load.h"

namespace fd::config::test {

// An Environment that knows exactly |vars|.
Environment fake_env(std::map<std::string, std::string> vars = {});

// "LINE:COL: message" for each diagnostic of |result| (all from "test.yaml"), which is what the
// loader tests compare.
std::vector<std::string> errors_of(const LoadResult& result);

// A valid config built in code, as quick mode does; marks are made up so tests can check them.
Config valid_config();

}  // namespace fd::config::test
