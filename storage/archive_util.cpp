#include "storage/archive_util.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace cg::storage::archive {

std::string new_id() {
  // 48 bits of milliseconds since the epoch, then 72 random bits. The time first keeps new ids at the right edge of
  // the (store, host, user, id) index, so a batch of appends touches a few of its pages, not one page per item.
  // One getrandom() per id, no user-space buffer: a forked child (or anything copying the process) can never hand
  // out the ids its parent will.
  std::array<unsigned char, 15> bytes{};
  const auto now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  for (int i = 0; i < 6; ++i)
    bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(static_cast<std::uint64_t>(now) >> (40 - 8 * i));
  std::size_t got = 6;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw StorageError(std::string("archive: getrandom failed: ") + std::strerror(errno));
    }
    got += static_cast<std::size_t>(n);
  }
  // base64url's characters in ASCII order, so ids sort (byte-wise) as the bits do: by time.
  static constexpr char kAlphabet[] = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
  std::string id;
  id.reserve(20);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{bytes[i]} << 16) | (std::uint32_t{bytes[i + 1]} << 8) | bytes[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6)
      id.push_back(kAlphabet[(v >> shift) & 63]);
  }
  return id;
}

bool matches(const ArchiveItem& item, const ArchiveQuery& q) {
  if (q.with && item.with != *q.with)
    return false;
  if (q.start && item.when < *q.start)
    return false;
  if (q.end && item.when > *q.end)
    return false;
  if (q.kind && item.kind != *q.kind)
    return false;
  return true;
}

PageSlice slice(std::span<const std::int64_t> positions, std::optional<std::int64_t> after,
                std::optional<std::int64_t> before, std::size_t limit, bool from_end) {
  // The range: matching items strictly between the bounds.
  std::size_t lo =
      after ? static_cast<std::size_t>(std::upper_bound(positions.begin(), positions.end(), *after) - positions.begin())
            : 0;
  std::size_t hi =
      before
          ? static_cast<std::size_t>(std::lower_bound(positions.begin(), positions.end(), *before) - positions.begin())
          : positions.size();
  if (hi < lo)
    hi = lo; // after lies at or beyond before: an empty range
  const std::size_t in_range = hi - lo;
  const std::size_t n = std::min(limit, in_range);
  PageSlice s;
  s.complete = in_range <= limit;
  if (from_end) {
    s.begin = hi - n;
    s.end = hi;
  } else {
    s.begin = lo;
    s.end = lo + n;
  }
  if (s.begin == s.end)
    s.begin = s.end = 0; // an empty page: first_index 0
  return s;
}

} // namespace cg::storage::archive
