#pragma once

#include <cstdio>
#include <cstdlib>

namespace fd::fuzz {

// A broken invariant: libFuzzer keeps the input that led here as a crash artifact.
[[noreturn]] inline void broken(const char* what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) {
    broken(what);
  }
}

}  // namespace fd::fuzz
