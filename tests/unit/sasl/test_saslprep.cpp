// SASLprep (RFC 4013).
#include "server/sasl/sasl.hpp"

#include <catch2/catch.hpp>

using cg::sasl::saslprep;

TEST_CASE("RFC 4013 §3 examples", "[saslprep]") {
  CHECK(saslprep("I\xC2\xADX") == std::optional<std::string>("IX"));   // SOFT HYPHEN mapped to nothing
  CHECK(saslprep("user") == std::optional<std::string>("user"));       // no transformation
  CHECK(saslprep("USER") == std::optional<std::string>("USER"));       // case preserved, will not match #2
  CHECK(saslprep("\xC2\xAA") == std::optional<std::string>("a"));      // output is NFKC, input in ISO 8859-1
  CHECK(saslprep("\xE2\x85\xA8") == std::optional<std::string>("IX")); // output is NFKC, will match #1
  CHECK(saslprep("\x07") == std::nullopt);                             // prohibited character
  CHECK(saslprep("\xD8\xA7"
                 "1") == std::nullopt); // bidirectional check
}

TEST_CASE("SASLprep maps non-ASCII spaces to SPACE and keeps ordinary text", "[saslprep]") {
  CHECK(saslprep("a\xC2\xA0"
                 "b") == std::optional<std::string>("a b")); // NO-BREAK SPACE
  CHECK(saslprep("a\xE2\x80\x83"
                 "b") == std::optional<std::string>("a b")); // EM SPACE
  CHECK(saslprep("p\xC3\xA4ssword") == std::optional<std::string>("p\xC3\xA4ssword"));
  CHECK(saslprep("") == std::optional<std::string>(""));
  CHECK(saslprep("a\xCD\x8F"
                 "b") == std::optional<std::string>("ab")); // COMBINING GRAPHEME JOINER: to nothing
}

TEST_CASE("SASLprep refuses prohibited input and broken UTF-8", "[saslprep]") {
  CHECK(saslprep(std::string("a\0b", 3)) == std::nullopt); // NUL would truncate the C string
  CHECK(saslprep("a\x7F") == std::nullopt);                // DEL
  CHECK(saslprep("a\xEE\x80\x80") == std::nullopt);        // U+E000, private use
  CHECK(saslprep("a\xEF\xBF\xBE") == std::nullopt);        // U+FFFE, non-character
  CHECK(saslprep("\xFF") == std::nullopt);
  CHECK(saslprep("\xC3") == std::nullopt);             // truncated sequence
  CHECK(saslprep("\xC0\xAF") == std::nullopt);         // overlong '/'
  CHECK(saslprep("\xED\xA0\x80") == std::nullopt);     // UTF-16 surrogate
  CHECK(saslprep("\xF4\x90\x80\x80") == std::nullopt); // above U+10FFFF
}

TEST_CASE("SASLprep grows its buffer for large NFKC expansions", "[saslprep]") {
  // U+FDFA ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: 3 bytes expand to 18 code points (33 bytes).
  const std::string ligature = "\xEF\xB7\xBA";
  const std::string expanded = "\xD8\xB5\xD9\x84\xD9\x89 \xD8\xA7\xD9\x84\xD9\x84\xD9\x87 "
                               "\xD8\xB9\xD9\x84\xD9\x8A\xD9\x87 \xD9\x88\xD8\xB3\xD9\x84\xD9\x85";
  REQUIRE(expanded.size() == 33);
  CHECK(saslprep(ligature) == std::optional<std::string>(expanded));
  std::string many;
  std::string many_expanded;
  for (int i = 0; i < 200; ++i) {
    many += ligature;
    many_expanded += expanded;
  }
  CHECK(saslprep(many) == std::optional<std::string>(many_expanded));
}

TEST_CASE("SASLprep allows unassigned code points (query semantics)", "[saslprep]") {
  // U+1F600 (an emoji) is unassigned in Unicode 3.2; flags 0 lets it through unchanged.
  CHECK(saslprep("pw\xF0\x9F\x98\x80") == std::optional<std::string>("pw\xF0\x9F\x98\x80"));
}
