// XMPP addresses (RFC 6122 stringprep profiles: nodeprep, nameprep with IDNA, resourceprep; 1023-byte parts).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace cg::api {

class Jid {
public:
  Jid() = default;

  // Parses and normalises ("Juliet@Example.COM./Balcony" → "juliet@example.com/Balcony"). nullopt when the
  // address is not a valid JID: empty parts after '@' or '/', a prohibited character, a part over 1023 bytes, a
  // domain that is not a valid (internationalised) host name or IP literal.
  static std::optional<Jid> parse(std::string_view text);
  // From parts that are each normalised here; nullopt if any is invalid. Empty node / resource = absent.
  static std::optional<Jid> from_parts(std::string_view node, std::string_view domain, std::string_view resource);

  // The stringprep profiles, exposed for SASL usernames and resource binding.
  static std::optional<std::string> nodeprep(std::string_view s);
  static std::optional<std::string> nameprep(std::string_view s);
  static std::optional<std::string> resourceprep(std::string_view s);

  const std::string& node() const { return node_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }

  bool empty() const { return domain_.empty(); }
  bool has_node() const { return !node_.empty(); }
  bool has_resource() const { return !resource_.empty(); }
  bool is_bare() const { return resource_.empty(); }
  bool is_domain() const { return node_.empty() && resource_.empty(); }

  Jid bare() const;
  Jid with_resource(std::string resource) const; // `resource` must already be resourceprep'd
  std::string str() const;
  std::string bare_str() const;

  bool operator==(const Jid&) const = default;
  auto operator<=>(const Jid&) const = default;

private:
  std::string node_;
  std::string domain_;
  std::string resource_;
};

} // namespace cg::api

template <>
struct std::hash<cg::api::Jid> {
  std::size_t operator()(const cg::api::Jid& j) const noexcept {
    return std::hash<std::string>{}(j.node()) ^ (std::hash<std::string>{}(j.domain()) << 1) ^
           (std::hash<std::string>{}(j.resource()) << 2);
  }
};
