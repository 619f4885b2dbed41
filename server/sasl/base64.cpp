// Base64 (RFC 4648 §4): the standard alphabet with '=' padding, decoded strictly: no whitespace, no characters
// outside the alphabet, length a multiple of four, at most two '=' and only at the end, and zero pad bits (the
// canonical encoding only, RFC 4648 §3.5).
#include "server/sasl/sasl.hpp"

#include <array>

namespace cg::sasl {
namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<signed char, 256> make_reverse() {
  std::array<signed char, 256> r{};
  for (auto& v : r) {
    v = -1;
  }
  for (int i = 0; i < 64; ++i) {
    r[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
  }
  return r;
}
constexpr auto reverse = make_reverse();

} // namespace

std::string base64_encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(raw[i]) << 16 | static_cast<unsigned char>(raw[i + 1]) << 8 |
                       static_cast<unsigned char>(raw[i + 2]);
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    out += alphabet[v & 63];
  }
  const std::size_t rest = raw.size() - i;
  if (rest == 1) {
    const unsigned v = static_cast<unsigned char>(raw[i]) << 16;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += "==";
  } else if (rest == 2) {
    const unsigned v = static_cast<unsigned char>(raw[i]) << 16 | static_cast<unsigned char>(raw[i + 1]) << 8;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') {
    pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t data_chars = last ? 4 - pad : 4;
    unsigned v = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      v <<= 6;
      if (j < data_chars) {
        const signed char d = reverse[static_cast<unsigned char>(text[i + j])];
        if (d < 0) {
          return std::nullopt; // includes a '=' anywhere but the final padding
        }
        v |= static_cast<unsigned>(d);
      }
    }
    out += static_cast<char>(v >> 16 & 0xFF);
    if (data_chars == 2) {
      if ((v & 0xFFFF) != 0) {
        return std::nullopt; // non-zero pad bits
      }
      continue;
    }
    out += static_cast<char>(v >> 8 & 0xFF);
    if (data_chars == 3) {
      if ((v & 0xFF) != 0) {
        return std::nullopt;
      }
      continue;
    }
    out += static_cast<char>(v & 0xFF);
  }
  return out;
}

} // namespace cg::sasl
