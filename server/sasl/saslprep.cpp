// SASLprep (RFC 4013) through libidn's stringprep with the SASLprep profile.
//
// Flags: 0, i.e. NFKC and the bidi rules apply and unassigned code points (Unicode 3.2) are allowed. RFC 3454 §7
// allows unassigned code points in "queries" and forbids them in "stored strings"; we use the query rules for
// both, so that a password or username typed with a character newer than Unicode 3.2 (emoji, recent scripts)
// still works. The price is that such a character could be normalised differently by a future stringprep; since
// stringprep is frozen at Unicode 3.2 this does not happen in practice.
#include "server/sasl/internal.hpp"

#include <stringprep.h>

#include <algorithm>
#include <vector>

namespace cg::sasl {

namespace detail {

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i < len) {
      return false;
    }
    for (std::size_t j = 1; j < len; ++j) {
      const auto cc = static_cast<unsigned char>(s[i + j]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = cp << 6 | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

} // namespace detail

std::optional<std::string> saslprep(std::string_view s) {
  // stringprep() works on a NUL-terminated string: an embedded NUL (a prohibited control character anyway) would
  // silently truncate the input, so refuse it here. Invalid UTF-8 is refused before libidn sees it.
  if (s.find('\0') != std::string_view::npos || !detail::valid_utf8(s)) {
    return std::nullopt;
  }
  // NFKC can expand a character many times over (U+FDFA: 3 bytes become 33), so grow the buffer on demand.
  std::size_t size = s.size() * 4 + 16;
  for (int attempt = 0; attempt < 4; ++attempt, size *= 4) {
    std::vector<char> buf(size, '\0');
    std::copy(s.begin(), s.end(), buf.begin());
    // Not the stringprep_saslprep() macro: it passes an int where C++ wants Stringprep_profile_flags (DESIGN.md §8).
    const int rc = stringprep(buf.data(), buf.size(), Stringprep_profile_flags(0), stringprep_saslprep);
    if (rc == STRINGPREP_OK) {
      return std::string(buf.data());
    }
    if (rc != STRINGPREP_TOO_SMALL_BUFFER) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

} // namespace cg::sasl
