#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fd::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

// Sets the minimum level that is written. Called by the main thread at startup (and on reload);
// read by every thread with a relaxed atomic load.
void set_level(Level level);

// Parses "debug" | "info" | "warn" | "error"; returns false for anything else.
bool parse_level(std::string_view text, Level* out);

// True when a line at |level| would be written; lets callers skip building fields.
bool enabled(Level level);

// Writes one JSON line {"ts", "level", "msg", ...fields} to stdout with a single write(2), so
// lines from different threads never interleave. Thread-safe. |fields| must be an object or null.
void write(Level level, std::string_view msg, nlohmann::json fields = nullptr);

inline void debug(std::string_view msg, nlohmann::json fields = nullptr) {
  if (enabled(Level::debug)) {
    write(Level::debug, msg, std::move(fields));
  }
}
inline void info(std::string_view msg, nlohmann::json fields = nullptr) {
  write(Level::info, msg, std::move(fields));
}
inline void warn(std::string_view msg, nlohmann::json fields = nullptr) {
  write(Level::warn, msg, std::move(fields));
}
inline void error(std::string_view msg, nlohmann::json fields = nullptr) {
  write(Level::error, msg, std::move(fields));
}

// Writes all of |bytes| to |fd|, retrying on EINTR and after short writes; gives up on any other
// error (a log line has nowhere else to go).
void write_all(int fd, std::string_view bytes);

// Writes |line| (which must end with '\n') to stdout in one write(2). Used by the access log,
// which formats its own line.
void write_raw(std::string_view line);

// RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-25T11:17:12.123Z.
std::string timestamp_now();
// The same, appended to |out|.
void append_timestamp(std::string* out);

}  // namespace fd::log
