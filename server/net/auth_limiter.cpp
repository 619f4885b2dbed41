#include "server/net/auth_limiter.hpp"

#include <algorithm>

namespace cg::net {

void AuthLimiter::prune(Entry& e, Clock::time_point now) const {
  while (!e.failures.empty() && now - e.failures.front() > limits_.window) {
    e.failures.pop_front();
  }
}

AuthLimiter::Clock::duration AuthLimiter::banned_for(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(address);
  if (it == entries_.end() || it->second.banned_until <= now) {
    return Clock::duration::zero();
  }
  return it->second.banned_until - now;
}

std::chrono::milliseconds AuthLimiter::record_failure(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  // Keep the table bounded: forget addresses whose failures have all expired.
  if (entries_.size() > 10000) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      prune(it->second, now);
      if (it->second.failures.empty() && it->second.banned_until <= now) {
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto& e = entries_[address];
  prune(e, now);
  e.failures.push_back(now);
  if (limits_.ban_after > 0 && e.failures.size() >= limits_.ban_after) {
    e.banned_until = now + limits_.ban_time;
    e.failures.clear();
  }
  const std::size_t n = std::max<std::size_t>(e.failures.size(), 1);
  auto delay = limits_.base_delay;
  for (std::size_t i = 1; i < n && delay < limits_.max_delay; ++i) {
    delay *= 2;
  }
  return std::min(delay, limits_.max_delay);
}

} // namespace cg::net
