// Base64 (RFC 4648): the §10 test vectors and strict decoding.
#include "server/sasl/sasl.hpp"

#include <catch2/catch.hpp>

using cg::sasl::base64_decode;
using cg::sasl::base64_encode;

TEST_CASE("RFC 4648 §10 test vectors", "[base64]") {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [raw, text] : vectors) {
    CHECK(base64_encode(raw) == text);
    CHECK(base64_decode(text) == std::optional<std::string>(raw));
  }
}

TEST_CASE("base64 round-trips every byte value and length", "[base64]") {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += static_cast<char>(i);
  }
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const std::string raw = all.substr(all.size() - len);
    const std::string text = base64_encode(raw);
    CHECK(text.size() == (len + 2) / 3 * 4);
    CHECK(base64_decode(text) == std::optional<std::string>(raw));
  }
  CHECK(base64_encode("\xFB\xFF") == "+/8=");
}

TEST_CASE("base64 decoding is strict", "[base64]") {
  for (const char* bad : {
           "Zg",         // no padding
           "Zg=",        // short padding
           "Z===",       // too much padding
           "====",       //
           "=Zm9",       // padding first
           "Zg==Zg==",   // padding in the middle
           "Zm9v YmFy",  // space
           "Zm9vYmFy\n", // newline
           "Zm9vYmF",    // length not a multiple of 4
           "Zm!v",       // outside the alphabet
           "Zm-v",       // base64url alphabet
           "Zm_v",
           "Zh==", // non-zero pad bits
           "Zm9=",
       }) {
    INFO(bad);
    CHECK(base64_decode(bad) == std::nullopt);
  }
  CHECK(base64_decode(std::string("Zg=\0", 4)) == std::nullopt);
  CHECK(base64_decode("") == std::optional<std::string>(""));
}
