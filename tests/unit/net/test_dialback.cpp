// XEP-0185 dialback keys: the recommended HMAC-SHA256 construction, checked against an independent computation
// (Python's hmac/hashlib: hmac.new(sha256(secret).hexdigest(), "recv orig id", sha256).hexdigest()).
#include "server/net/dialback.hpp"

#include <catch2/catch.hpp>

using namespace cg::net;

TEST_CASE("dialback: key = HMAC-SHA256(hex SHA256(secret), receiving ' ' originating ' ' stream id) in hex",
          "[dialback]") {
  // The inputs of XEP-0185 §3's example.
  CHECK(dialback::key("s3cr3tf0rd14lb4ck", "example.net", "example.com", "D60000229F") ==
        "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc");
}

TEST_CASE("dialback: every input changes the key (a key is bound to its domains and its stream)", "[dialback]") {
  const auto k = dialback::key("secret", "a.example", "b.example", "id1");
  CHECK(k.size() == 64);
  CHECK(k != dialback::key("secret2", "a.example", "b.example", "id1"));
  CHECK(k != dialback::key("secret", "b.example", "a.example", "id1"));
  CHECK(k != dialback::key("secret", "a.example", "b.example", "id2"));
  CHECK(k == dialback::key("secret", "a.example", "b.example", "id1"));
}

TEST_CASE("dialback: key comparison", "[dialback]") {
  CHECK(dialback::keys_equal("abc", "abc"));
  CHECK_FALSE(dialback::keys_equal("abc", "abd"));
  CHECK_FALSE(dialback::keys_equal("abc", "abcd"));
  CHECK_FALSE(dialback::keys_equal("", "a"));
  CHECK(dialback::random_secret() != dialback::random_secret());
  CHECK(dialback::random_secret().size() == 64);
}
