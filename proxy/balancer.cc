#include "proxy/balancer.h"

namespace fd::proxy {
namespace {

// active * weight can exceed int64 (active near INT64_MAX); 128 bits hold any such product.
// __extension__ keeps -Wpedantic quiet about the non-ISO type.
__extension__ typedef __int128 Wide;

// True when |a| has strictly fewer active requests per unit of weight than |b|. Cross-multiplied
// so that no division rounds two different loads into a tie.
bool lighter(const Candidate& a, const Candidate& b) {
  return static_cast<Wide>(a.active) * b.weight < static_cast<Wide>(b.active) * a.weight;
}

size_t count_eligible(std::span<const Candidate> c) {
  size_t m = 0;
  for (const Candidate& x : c) {
    if (x.eligible) {
      ++m;
    }
  }
  return m;
}

// Index of the |rank|-th eligible candidate (0-based); |rank| < count_eligible(c). Walking the
// span again is cheaper than allocating a list of eligible indices on every pick.
size_t nth_eligible(std::span<const Candidate> c, size_t rank) {
  size_t i = 0;
  for (;; ++i) {
    if (c[i].eligible) {
      if (rank == 0) {
        break;
      }
      --rank;
    }
  }
  return i;
}

}  // namespace

std::optional<size_t> pick_round_robin(std::span<const Candidate> c, uint64_t ticket) {
  const size_t n = c.size();
  if (n == 0) {
    return std::nullopt;
  }
  const size_t start = static_cast<size_t>(ticket % n);
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (c[i].eligible) {
      return i;
    }
  }
  return std::nullopt;
}

std::optional<size_t> pick_smooth_weighted(std::span<const Candidate> c,
                                           std::vector<int64_t>* current) {
  const size_t n = c.size();
  if (current->size() != n) {
    // A stale vector belongs to another server list: its values mean nothing for this one.
    current->assign(n, 0);
  }
  std::optional<size_t> best;
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!c[i].eligible) {
      // Left untouched, so a server that comes back resumes where it was instead of bursting.
      continue;
    }
    (*current)[i] += c[i].weight;
    total += c[i].weight;
    if (!best || (*current)[i] > (*current)[*best]) {
      best = i;
    }
  }
  if (best) {
    (*current)[*best] -= total;
  }
  return best;
}

std::optional<size_t> pick_least_conn(std::span<const Candidate> c, uint64_t ticket) {
  const size_t n = c.size();
  if (n == 0) {
    return std::nullopt;
  }
  // Scanning from the ticket and replacing only on a strictly lighter load makes the winner the
  // first of the equals in rotation order, so idle servers share the load instead of the first
  // one taking every request.
  const size_t start = static_cast<size_t>(ticket % n);
  std::optional<size_t> best;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (c[i].eligible && (!best || lighter(c[i], c[*best]))) {
      best = i;
    }
  }
  return best;
}

std::optional<size_t> pick_random_two(std::span<const Candidate> c, std::mt19937_64* rng) {
  const size_t m = count_eligible(c);
  if (m == 0) {
    return std::nullopt;
  }
  if (m == 1) {
    return nth_eligible(c, 0);
  }
  // Draw ranks among the eligible ones: the second from the m - 1 ranks left, shifted past the
  // first, gives two distinct ranks uniformly without retrying.
  const size_t first_rank = std::uniform_int_distribution<size_t>(0, m - 1)(*rng);
  size_t second_rank = std::uniform_int_distribution<size_t>(0, m - 2)(*rng);
  if (second_rank >= first_rank) {
    ++second_rank;
  }
  const size_t first = nth_eligible(c, first_rank);
  const size_t second = nth_eligible(c, second_rank);
  return lighter(c[second], c[first]) ? second : first;
}

}  // namespace fd::proxy
