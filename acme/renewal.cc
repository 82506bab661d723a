#include "acme/renewal.h"

#include <algorithm>
#include <cstdint>

namespace fd::acme {
namespace {

using std::chrono::seconds;

constexpr Clock::duration SHORT_LIFETIME = std::chrono::hours(24 * 10);
constexpr seconds BACKOFF_BASE{60};
constexpr seconds BACKOFF_CAP{6 * 3600};

// A null generator is a caller's mistake, but a per-thread fallback beats a crash on the ACME
// thread.
std::mt19937_64& generator(std::mt19937_64* rng) {
  if (rng != nullptr) {
    return *rng;
  }
  thread_local std::mt19937_64 fallback{std::random_device{}()};
  return fallback;
}

}  // namespace

// A |before_expiry| at least as long as the lifetime returns |not_before| (already past for any
// issued certificate, so the caller renews at once); so does a certificate whose not_after is
// not after its not_before. The comparison is made in whole seconds before any time_point
// arithmetic, so a huge configured duration cannot overflow the nanosecond clock.
Clock::time_point renewal_time(Clock::time_point not_before, Clock::time_point not_after,
                               std::optional<std::chrono::seconds> before_expiry) {
  if (not_after <= not_before) {
    return not_before;
  }
  const Clock::duration lifetime = not_after - not_before;
  if (before_expiry) {
    if (*before_expiry <= seconds::zero()) {
      return not_after;
    }
    if (*before_expiry >= std::chrono::ceil<seconds>(lifetime)) {
      return not_before;
    }
    return not_after - *before_expiry;
  }
  // lifetime - lifetime / 3 rather than lifetime * 2 / 3, which could overflow.
  const Clock::duration renew_after =
      lifetime <= SHORT_LIFETIME ? lifetime / 2 : lifetime - lifetime / 3;
  return not_before + renew_after;
}

Clock::time_point pick_in_window(Clock::time_point start, Clock::time_point end,
                                 std::mt19937_64* rng) {
  if (end <= start) {
    return start;
  }
  // Unsigned arithmetic: the span of any non-empty window fits in 64 bits unsigned, and the
  // wrap-around back to a signed count is well defined in C++20.
  const uint64_t span = static_cast<uint64_t>(end.time_since_epoch().count()) -
                        static_cast<uint64_t>(start.time_since_epoch().count());
  std::uniform_int_distribution<uint64_t> offset(0, span - 1);
  const uint64_t ticks =
      static_cast<uint64_t>(start.time_since_epoch().count()) + offset(generator(rng));
  return Clock::time_point(Clock::duration(static_cast<Clock::rep>(ticks)));
}

// The jitter applies after the cap, so every result is within 10% of
// min(60 s * 2^(failures - 1), 6 h): at the cap that is 5 h 24 min to 6 h 36 min, which keeps
// replicas that failed together from retrying together. |failures| of 0 counts as 1.
std::chrono::seconds backoff(unsigned failures, std::mt19937_64* rng) {
  seconds base = BACKOFF_CAP;
  if (failures <= 1) {
    base = BACKOFF_BASE;
  } else if (failures - 1 < 16) {  // 60 s << 15 is far above the cap; larger shifts overflow
    base = std::min(BACKOFF_BASE * (int64_t{1} << (failures - 1)), BACKOFF_CAP);
  }
  const int64_t spread = base.count() / 10;
  std::uniform_int_distribution<int64_t> jitter(-spread, spread);
  return base + seconds(jitter(generator(rng)));
}

}  // namespace fd::acme
