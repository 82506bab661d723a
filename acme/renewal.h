#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace fd::acme {

using Clock = std::chrono::system_clock;

// When to renew a certificate valid from |not_before| to |not_after| without ARI: with
// |before_expiry| set (tls.acme.renew: <duration>), that long before expiry; otherwise when a
// third of the lifetime is left, or half for lifetimes of 10 days or less.
Clock::time_point renewal_time(Clock::time_point not_before, Clock::time_point not_after,
                               std::optional<std::chrono::seconds> before_expiry);

// A uniformly random time in the ARI window [start, end) (start when the window is empty).
Clock::time_point pick_in_window(Clock::time_point start, Clock::time_point end,
                                 std::mt19937_64* rng);

// Wait before the next attempt after |failures| consecutive failures (>= 1): 1 minute doubling
// per failure, capped at 6 hours, with up to 10% random jitter either way.
std::chrono::seconds backoff(unsigned failures, std::mt19937_64* rng);

}  // namespace fd::acme
