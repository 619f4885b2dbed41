#include "server/api/jid.hpp"

#include <arpa/inet.h>
#include <idna.h>
#include <stringprep.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace cg::api {

namespace {

// RFC 6122 §2.1: "Each allowable portion of a JID (localpart, domainpart, and resourcepart) MUST NOT be more than
// 1023 bytes in length".
constexpr std::size_t kMaxPart = 1023;

bool is_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80) {
      return false;
    }
  }
  return true;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no NUL.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      return false;
    }
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Runs a libidn stringprep profile. DESIGN.md §8: the stringprep_xmpp_* macros pass an int where C++ wants
// Stringprep_profile_flags, so stringprep() is called directly.
std::optional<std::string> run_profile(std::string_view s, const Stringprep_profile* profile) {
  if (!valid_utf8(s) || s.size() > 4 * kMaxPart) {
    return std::nullopt;
  }
  // stringprep() works in place and fails when its output does not fit. NFKC can grow a string a lot (U+FDFA, 3
  // bytes, becomes 33), so the buffer holds at least a maximal part; longer outputs are rejected by the callers
  // anyway. Mapping can also shrink a string, so it holds at least the input too.
  std::string buf(s);
  buf.resize(std::max(s.size(), kMaxPart) + 1, '\0');
  int rc = stringprep(buf.data(), buf.size(), Stringprep_profile_flags(0), profile);
  if (rc != STRINGPREP_OK) {
    return std::nullopt;
  }
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

// ASCII fast path of nodeprep: case-folding to lower case; RFC 6122 Appendix A.5 prohibits, besides controls and
// space, the characters " & ' / : < > @.
std::optional<std::string> ascii_nodeprep(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F || c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' || c == '<' || c == '>' ||
        c == '@') {
      return std::nullopt;
    }
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : static_cast<char>(c));
  }
  return out;
}

// ASCII fast path of resourceprep: unchanged, but ASCII control characters are prohibited (RFC 3454 C.2.1).
std::optional<std::string> ascii_resourceprep(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F) {
      return std::nullopt;
    }
  }
  return std::string(s);
}

bool valid_ascii_label(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> nameprep_idn(std::string_view s) {
  // Internationalised: ToUnicode (which applies nameprep per label), then prove the result is a valid IDN by
  // converting it to ASCII with the STD3 rules. The Unicode form is the canonical one (so "xn--" and Unicode
  // spellings of a domain compare equal).
  if (!valid_utf8(s)) {
    return std::nullopt;
  }
  std::string input(s);
  char* unicode_raw = nullptr;
  if (idna_to_unicode_8z8z(input.c_str(), &unicode_raw, IDNA_ALLOW_UNASSIGNED) != IDNA_SUCCESS) {
    std::free(unicode_raw);
    return std::nullopt;
  }
  std::unique_ptr<char, FreeDeleter> unicode(unicode_raw);
  auto prepped = run_profile(unicode.get(), stringprep_nameprep);
  if (!prepped || prepped->empty() || prepped->size() > kMaxPart) {
    return std::nullopt;
  }
  char* ascii_raw = nullptr;
  int rc = idna_to_ascii_8z(prepped->c_str(), &ascii_raw, IDNA_ALLOW_UNASSIGNED | IDNA_USE_STD3_ASCII_RULES);
  std::unique_ptr<char, FreeDeleter> ascii(ascii_raw);
  if (rc != IDNA_SUCCESS || std::strlen(ascii.get()) > 253) {
    return std::nullopt;
  }
  return prepped;
}

} // namespace

std::optional<std::string> Jid::nodeprep(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  auto out = is_ascii(s) ? ascii_nodeprep(s) : run_profile(s, stringprep_xmpp_nodeprep);
  if (!out || out->empty() || out->size() > kMaxPart) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> Jid::resourceprep(std::string_view s) {
  if (s.empty()) {
    return std::nullopt;
  }
  auto out = is_ascii(s) ? ascii_resourceprep(s) : run_profile(s, stringprep_xmpp_resourceprep);
  if (!out || out->empty() || out->size() > kMaxPart) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> Jid::nameprep(std::string_view s) {
  if (s.empty() || s.size() > 4 * kMaxPart) {
    return std::nullopt;
  }
  // IPv6 literal (RFC 6122 §2.2: "the domainpart MUST be ... an IPv6 address ... enclosed in brackets").
  if (s.front() == '[') {
    if (s.back() != ']' || s.size() < 3) {
      return std::nullopt;
    }
    std::string inner(s.substr(1, s.size() - 2));
    in6_addr addr{};
    if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1) {
      return std::nullopt;
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &addr, text, sizeof text);
    return "[" + std::string(text) + "]";
  }
  // "A domainpart ending in a single dot is equivalent to the same without the dot" (RFC 6122 §2.2).
  if (s.back() == '.') {
    s.remove_suffix(1);
    if (s.empty()) {
      return std::nullopt;
    }
  }
  if (is_ascii(s)) {
    std::string out(s);
    for (auto& c : out) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c + 32);
      }
    }
    // An ACE label ("xn--", in any case: "Xn--" too) makes this an IDN: it goes through IDNA, so that it compares
    // equal to its Unicode spelling.
    if (out.find("xn--") != std::string::npos) {
      return nameprep_idn(out);
    }
    std::size_t start = 0;
    while (true) {
      auto dot = out.find('.', start);
      if (!valid_ascii_label(std::string_view(out).substr(start, dot == std::string::npos ? dot : dot - start))) {
        return std::nullopt;
      }
      if (dot == std::string::npos) {
        break;
      }
      start = dot + 1;
    }
    if (out.size() > 253) {
      return std::nullopt;
    }
    return out;
  }
  return nameprep_idn(s);
}

std::optional<Jid> Jid::from_parts(std::string_view node, std::string_view domain, std::string_view resource) {
  Jid j;
  auto d = nameprep(domain);
  if (!d) {
    return std::nullopt;
  }
  j.domain_ = std::move(*d);
  if (!node.empty()) {
    auto n = nodeprep(node);
    if (!n) {
      return std::nullopt;
    }
    j.node_ = std::move(*n);
  }
  if (!resource.empty()) {
    auto r = resourceprep(resource);
    if (!r) {
      return std::nullopt;
    }
    j.resource_ = std::move(*r);
  }
  return j;
}

std::optional<Jid> Jid::parse(std::string_view text) {
  // RFC 6122 §2.1: the resourcepart follows the first '/'; the localpart precedes the first '@' before it.
  std::string_view rest = text;
  std::string_view resource;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    resource = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (resource.empty()) {
      return std::nullopt;
    }
  }
  std::string_view node;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    node = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (node.empty()) {
      return std::nullopt;
    }
  }
  if (rest.empty()) {
    return std::nullopt;
  }
  return from_parts(node, rest, resource);
}

Jid Jid::bare() const {
  Jid j;
  j.node_ = node_;
  j.domain_ = domain_;
  return j;
}

Jid Jid::with_resource(std::string resource) const {
  Jid j = bare();
  j.resource_ = std::move(resource);
  return j;
}

std::string Jid::bare_str() const {
  std::string out;
  out.reserve(node_.size() + domain_.size() + 1);
  if (!node_.empty()) {
    out += node_;
    out += '@';
  }
  out += domain_;
  return out;
}

std::string Jid::str() const {
  std::string out = bare_str();
  if (!resource_.empty()) {
    out += '/';
    out += resource_;
  }
  return out;
}

} // namespace cg::api
