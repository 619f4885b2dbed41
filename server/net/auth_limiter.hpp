// Failed authentications per source address: a delay that doubles with each recent failure, and a temporary ban
// after too many (DESIGN.md §6).
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace cg::net {

struct AuthLimits {
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{16000};
  std::size_t ban_after = 10; // 0 = never ban
  std::chrono::seconds window{600};
  std::chrono::seconds ban_time{600};
};

class AuthLimiter {
public:
  using Clock = std::chrono::steady_clock;
  explicit AuthLimiter(AuthLimits limits) : limits_(limits) {}

  // Remaining ban time for this address (zero when not banned).
  Clock::duration banned_for(const std::string& address, Clock::time_point now = Clock::now());
  // Records a failure; returns how long to wait before answering it.
  std::chrono::milliseconds record_failure(const std::string& address, Clock::time_point now = Clock::now());

private:
  struct Entry {
    std::deque<Clock::time_point> failures;
    Clock::time_point banned_until{};
  };
  void prune(Entry& e, Clock::time_point now) const;
  AuthLimits limits_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

} // namespace cg::net
