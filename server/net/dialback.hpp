// XEP-0220 Server Dialback keys (XEP-0185 recommended generation).
#pragma once

#include <string>
#include <string_view>

namespace cg::net::dialback {

inline constexpr std::string_view kNs = "jabber:server:dialback";
inline constexpr std::string_view kFeatureNs = "urn:xmpp:features:dialback";

// XEP-0185 §3: key = HMAC-SHA256(SHA256(Secret), Receiving Server + ' ' + Originating Server + ' ' + Stream ID),
// with SHA256(Secret) used as the HMAC key in hex, and the result in lower-case hex.
std::string key(std::string_view secret, std::string_view receiving, std::string_view originating,
                std::string_view stream_id);

// Compares two keys in time independent of where they differ.
bool keys_equal(std::string_view a, std::string_view b);

// A fresh random secret (hex) for this process.
std::string random_secret();

} // namespace cg::net::dialback
