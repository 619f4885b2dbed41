// Internal to the drivers (memory/, sqlite/): what every archive driver computes the same way — new item ids, the
// filter predicate and the RSM-style page over a list of matching items. Modules use store.hpp, not this.
#pragma once

#include "storage/store.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace cg::storage::archive {

// A fresh item id: 20 characters of base64url (A-Z a-z 0-9 - _): a millisecond timestamp and 72 random bits from the
// kernel's CSPRNG, so ids are opaque, safe in URLs and XML attributes, and cannot be guessed (XEP-0359 stanza-ids,
// XEP-0313 archive ids). Later ids mostly sort after earlier ones; nothing relies on it but the index's locality.
std::string new_id();

// The item passes the query's with/start/end/kind filters (not ids, not the after/before range).
bool matches(const ArchiveItem& item, const ArchiveQuery& q);

// Where a page lies in the list of matching items (filters and ids applied, in archive order).
struct PageSlice {
  std::size_t begin = 0; // items [begin, end) of the matching list are the page
  std::size_t end = 0;
  bool complete = false;
};

// `positions`: the archive positions (strictly increasing) of the matching items. after/before: the positions of
// the after_id/before_id items (exclusive bounds), if given. The page is the first `limit` items of the range, or
// the last `limit` with from_end; complete when no matching item of the range lies beyond it in the direction of
// travel. first_index is `begin` and total is positions.size().
PageSlice slice(std::span<const std::int64_t> positions, std::optional<std::int64_t> after,
                std::optional<std::int64_t> before, std::size_t limit, bool from_end);

} // namespace cg::storage::archive
