#include "proxy/cli.h"

#include "config/units.h"

namespace fd::proxy {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item =
        s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      out.push_back(item);
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return out;
}

// Reads the value of option |name| at args[*i], as "--name VALUE" or "--name=VALUE".
bool take_value(const std::vector<std::string>& args, size_t* i, const std::string& name,
                std::string* value, std::string* error) {
  const std::string& arg = args[*i];
  if (arg.size() > name.size() && arg.compare(0, name.size() + 1, name + "=") == 0) {
    *value = arg.substr(name.size() + 1);
    return true;
  }
  if (*i + 1 >= args.size()) {
    *error = "option " + name + " needs a value";
    return false;
  }
  *value = args[++*i];
  return true;
}

bool is_option(const std::string& arg, const std::string& name) {
  return arg == name || arg.rfind(name + "=", 0) == 0;
}

// `health [--url URL] [--timeout DURATION]`: needs no config file, so that a container's
// HEALTHCHECK is one exec.
std::optional<CommandLine> parse_health(const std::vector<std::string>& args, std::string* error) {
  CommandLine cl;
  cl.mode = CommandLine::Mode::health;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string value;
    if (is_option(args[i], "--url")) {
      if (!take_value(args, &i, "--url", &cl.health_url, error)) {
        return std::nullopt;
      }
    } else if (is_option(args[i], "--timeout")) {
      if (!take_value(args, &i, "--timeout", &value, error)) {
        return std::nullopt;
      }
      auto timeout = config::parse_duration(value);
      if (!timeout || timeout->count() <= 0) {
        *error = "--timeout: \"" + value + "\" is not a positive duration such as 2s";
        return std::nullopt;
      }
      cl.health_timeout = *timeout;
    } else {
      *error = "unknown argument \"" + args[i] + "\"";
      return std::nullopt;
    }
  }
  return cl;
}

}  // namespace

const char* usage() {
  return "usage: frontdoor -c FILE             run with the YAML config FILE\n"
         "       frontdoor --check -c FILE     validate FILE and exit\n"
         "       frontdoor proxy --from ADDR --to HOST:PORT[,HOST:PORT...]\n"
         "                                     quick mode with the development certificate\n"
         "       frontdoor acme status -c FILE   managed certificates, from storage\n"
         "       frontdoor health [--url URL] [--timeout DURATION]\n"
         "                                     exit 0 if URL (default\n"
         "                                     http://127.0.0.1:9901/ready) answers 2xx\n"
         "       frontdoor --version\n"
         "FRONTDOOR_CONFIG names the config file when -c is absent.\n";
}

std::optional<CommandLine> parse_command_line(const std::vector<std::string>& args,
                                              const std::optional<std::string>& env_config,
                                              std::string* error) {
  CommandLine cl;
  size_t i = 0;
  if (!args.empty() && args[0] == "proxy") {
    cl.mode = CommandLine::Mode::quick;
    i = 1;
  } else if (args.size() >= 2 && args[0] == "acme" && args[1] == "status") {
    cl.mode = CommandLine::Mode::acme_status;
    i = 2;
  } else if (!args.empty() && args[0] == "health") {
    return parse_health(args, error);
  }
  bool check = false;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::string value;
    if (arg == "-c" || is_option(arg, "--config")) {
      if (!take_value(args, &i, arg == "-c" ? "-c" : "--config", &value, error)) {
        return std::nullopt;
      }
      cl.config_path = value;
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--version" || arg == "-V") {
      cl.mode = CommandLine::Mode::version;
      return cl;
    } else if (arg == "--help" || arg == "-h") {
      cl.mode = CommandLine::Mode::help;
      return cl;
    } else if (cl.mode == CommandLine::Mode::quick && is_option(arg, "--from")) {
      if (!take_value(args, &i, "--from", &cl.quick_from, error)) {
        return std::nullopt;
      }
    } else if (cl.mode == CommandLine::Mode::quick && is_option(arg, "--to")) {
      if (!take_value(args, &i, "--to", &value, error)) {
        return std::nullopt;
      }
      for (auto& item : split_list(value)) {
        cl.quick_to.push_back(item);
      }
    } else {
      *error = "unknown argument \"" + arg + "\"";
      return std::nullopt;
    }
  }
  if (cl.mode == CommandLine::Mode::quick) {
    if (cl.quick_from.empty() || cl.quick_to.empty()) {
      *error = "proxy needs --from ADDR and --to HOST:PORT[,HOST:PORT...]";
      return std::nullopt;
    }
    return cl;
  }
  if (cl.config_path.empty() && env_config) {
    cl.config_path = *env_config;
  }
  if (cl.config_path.empty()) {
    *error = "no config file: pass -c FILE or set FRONTDOOR_CONFIG";
    return std::nullopt;
  }
  if (check && cl.mode == CommandLine::Mode::run) {
    cl.mode = CommandLine::Mode::check;
  }
  return cl;
}

}  // namespace fd::proxy
