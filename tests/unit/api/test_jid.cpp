// JIDs: parsing and normalisation per RFC 6122 (nodeprep, nameprep + IDNA2003, resourceprep), with the examples
// of RFC 7622 §3.5 where the two profiles agree. (Where they differ — RFC 7622's PRECIS keeps "ß" and "ς", and
// rejects symbols in localparts — the RFC 6122 behaviour the server implements is what is tested.)
#include "server/api/jid.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

using cg::api::Jid;

template <>
struct Catch::StringMaker<Jid> {
  static std::string convert(const Jid& j) { return j.empty() ? "(empty JID)" : j.str(); }
};

namespace {

// The normalised form of `s`, or "(invalid)" when it is not a valid JID (a string, so that Catch prints it).
std::string norm(std::string_view s) {
  auto j = Jid::parse(s);
  return j ? j->str() : "(invalid)";
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += s;
  }
  return out;
}

// 253 characters: the longest host name DNS can carry (255 octets on the wire).
const std::string kLongestDomain =
    repeat("a", 63) + "." + repeat("b", 63) + "." + repeat("c", 63) + "." + repeat("d", 61);

} // namespace

TEST_CASE("jid: the parts are split at the first '/' and the '@' before it", "[jid]") {
  auto full = Jid::parse("juliet@example.com/balcony");
  REQUIRE(full);
  CHECK(full->node() == "juliet");
  CHECK(full->domain() == "example.com");
  CHECK(full->resource() == "balcony");
  CHECK(full->has_node());
  CHECK(full->has_resource());
  CHECK_FALSE(full->is_bare());
  CHECK_FALSE(full->is_domain());

  auto domain = Jid::parse("example.com");
  REQUIRE(domain);
  CHECK(domain->node().empty());
  CHECK(domain->domain() == "example.com");
  CHECK(domain->resource().empty());
  CHECK(domain->is_domain());
  CHECK(domain->is_bare());

  auto domain_resource = Jid::parse("example.com/foobar"); // RFC 7622 §3.5
  REQUIRE(domain_resource);
  CHECK_FALSE(domain_resource->has_node());
  CHECK(domain_resource->resource() == "foobar");
  CHECK_FALSE(domain_resource->is_domain());

  // The resourcepart is everything after the first '/', and may contain '@' and '/'.
  auto at_in_resource = Jid::parse("juliet@example.com/foo@bar"); // RFC 7622 §3.5
  REQUIRE(at_in_resource);
  CHECK(at_in_resource->node() == "juliet");
  CHECK(at_in_resource->resource() == "foo@bar");

  auto slash_in_resource = Jid::parse("juliet@example.com/foo/bar/baz");
  REQUIRE(slash_in_resource);
  CHECK(slash_in_resource->resource() == "foo/bar/baz");

  // An '@' after the first '/' belongs to the resource: no localpart here (RFC 7622 §3.5
  // "a.example.com/b@example.net").
  auto no_node = Jid::parse("a.example.com/b@example.net");
  REQUIRE(no_node);
  CHECK_FALSE(no_node->has_node());
  CHECK(no_node->domain() == "a.example.com");
  CHECK(no_node->resource() == "b@example.net");

  auto mixed = Jid::parse("juliet@example.com/a@b/c@d");
  REQUIRE(mixed);
  CHECK(mixed->node() == "juliet");
  CHECK(mixed->resource() == "a@b/c@d");

  // A second '@' before the '/' lands in the domainpart, which cannot hold it.
  CHECK_FALSE(Jid::parse("juliet@capulet@example.com"));
  CHECK_FALSE(Jid::parse("juliet@capulet@example.com/balcony"));
}

TEST_CASE("jid: empty parts are rejected", "[jid]") {
  for (const char* bad : {"", "@", "/", "@/", "@example.com", "@example.com/r", "juliet@", "juliet@/balcony",
                          "example.com/", "juliet@example.com/", "/balcony", "juliet@/", "@/balcony"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::parse(bad));
  }
}

TEST_CASE("jid: localpart and domainpart are case-folded, the resourcepart is not", "[jid]") {
  CHECK(norm("Juliet@Example.COM/Balcony") == "juliet@example.com/Balcony");
  CHECK(norm("JULIET@EXAMPLE.COM") == "juliet@example.com");
  CHECK(*Jid::parse("JuLiEt@eXaMpLe.CoM/r") == *Jid::parse("juliet@example.com/r"));
  CHECK(*Jid::parse("juliet@example.com/Balcony") != *Jid::parse("juliet@example.com/balcony"));
  CHECK(norm("juliet@example.com/BALCONY") == "juliet@example.com/BALCONY");
}

TEST_CASE("jid: nodeprep prohibits \" & ' / : < > @, space and controls in the localpart", "[jid][nodeprep]") {
  // RFC 6122 Appendix A.5 (the characters) and A.4 / RFC 3454 C.1.1, C.2.1 (space, controls).
  for (std::string_view bad :
       {"jul\"iet", "jul&iet", "jul'iet", "jul/iet", "jul:iet", "jul<iet", "jul>iet", "jul@iet", "jul iet", " juliet",
        "juliet ", "jul\tiet", "jul\niet", "jul\riet", "jul\x01iet", "jul\x1fiet", "jul\x7fiet"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::nodeprep(bad));
    CHECK_FALSE(Jid::from_parts(bad, "example.com", ""));
  }
  CHECK_FALSE(Jid::nodeprep(std::string_view("jul\0iet", 7)));
  // Through parse: the characters that do not split the address.
  for (const char* bad : {"\"juliet\"@example.com", "jul&iet@example.com", "jul'iet@example.com", "jul:iet@example.com",
                          "<juliet>@example.com", "foo bar@example.com", "jul\x01iet@example.com"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::parse(bad));
  }
  CHECK_FALSE(Jid::parse(std::string_view("jul\0iet@example.com", 19)));
  // Everything else printable in ASCII is allowed (RFC 7622 §3.5: "foo\20bar@example.com" is valid).
  CHECK(norm("foo\\20bar@example.com") == "foo\\20bar@example.com");
  CHECK(norm("a.b-c_d+e=f!g#h$i%j*k(l)m[n]o{p}q|r~s`t^u?v,w;x@example.com") ==
        "a.b-c_d+e=f!g#h$i%j*k(l)m[n]o{p}q|r~s`t^u?v,w;x@example.com");
}

TEST_CASE("jid: nodeprep prohibits the non-ASCII counterparts too", "[jid][nodeprep]") {
  // Fullwidth forms become the ASCII characters under NFKC, and are then prohibited.
  for (const char* bad : {"jul\uFF02iet", "jul\uFF06iet", "jul\uFF07iet", "jul\uFF0Fiet", "jul\uFF1Aiet",
                          "jul\uFF1Ciet", "jul\uFF1Eiet", "jul\uFF20iet"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::nodeprep(bad));
  }
  // Non-ASCII spaces (C.1.2), non-ASCII controls (C.2.2), private use (C.3), non-characters (C.4), characters
  // inappropriate for plain text (C.6), ideographic description (C.7), bidi controls (C.8).
  for (const char* bad :
       {"jul\u00A0iet", "jul\u2003iet", "jul\u3000iet", "jul\u0085iet", "jul\u2028iet", "jul\uE000iet", "jul\uFDD0iet",
        "jul\uFFFDiet", "jul\u2FF0iet", "jul\u200Eiet", "jul\u202Eiet"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::nodeprep(bad));
    CHECK_FALSE(Jid::parse(std::string(bad) + "@example.com"));
  }
}

TEST_CASE("jid: non-ASCII localparts are case-folded and NFKC-normalised", "[jid][nodeprep]") {
  CHECK(norm("\u03A8@example.com") == "\u03C8@example.com");           // Ψ → ψ
  CHECK(norm("\u03A3@example.com/foo") == "\u03C3@example.com/foo");   // RFC 7622 §3.5: Σ → σ
  CHECK(norm("\u03C0@example.com") == "\u03C0@example.com");           // RFC 7622 §3.5: π stays
  CHECK(norm("\u00C9LODIE@example.com") == "\u00E9lodie@example.com"); // ÉLODIE → élodie
  // B.2 case folding maps ß to "ss" (RFC 7622's PRECIS profile would keep it).
  CHECK(norm("\u00DF@example.com") == "ss@example.com");
  CHECK(norm("fu\u00DFball@example.com") == "fussball@example.com");
  CHECK(*Jid::parse("Fu\u00DFball@example.com") == *Jid::parse("fussball@example.com"));
  // Fullwidth letters are mapped to their ASCII forms, then folded.
  CHECK(norm("\uFF2A\uFF35\uFF2C\uFF29\uFF25\uFF34@example.com") == "juliet@example.com"); // ＪＵＬＩＥＴ
  CHECK(norm("\uFF41\uFF42\uFF43@example.com") == "abc@example.com");
  // Composition: "e" + combining acute is the same localpart as "é".
  CHECK(*Jid::parse("rene\u0301@example.com") == *Jid::parse("ren\u00E9@example.com"));
  // Compatibility characters: the ligature "ﬁ" is "fi".
  CHECK(norm("\uFB01nn@example.com") == "finn@example.com");
  // Characters mapped to nothing (B.1): soft hyphen, zero-width space.
  CHECK(norm("jul\u00ADiet@example.com") == "juliet@example.com");
  CHECK(norm("jul\u200Biet@example.com") == "juliet@example.com");
  // Nothing left after mapping: an empty localpart.
  CHECK_FALSE(Jid::parse("\u00AD@example.com"));
  CHECK_FALSE(Jid::nodeprep("\u00AD\u200B"));
}

TEST_CASE("jid: bidi rules apply to localparts and resourceparts", "[jid][nodeprep][resourceprep]") {
  // RFC 3454 §6: right-to-left text must not mix with left-to-right text, and must start and end with an RTL
  // character.
  CHECK(norm("\u05D0\u05D1@example.com") == "\u05D0\u05D1@example.com");
  CHECK_FALSE(Jid::parse("\u05D0a@example.com"));
  CHECK_FALSE(Jid::parse("a\u05D0@example.com"));
  CHECK_FALSE(Jid::parse("\u05D01@example.com"));
  CHECK_FALSE(Jid::parse("juliet@example.com/\u05D0a"));
  CHECK(norm("juliet@example.com/\u05D0\u05D1") == "juliet@example.com/\u05D0\u05D1");
}

TEST_CASE("jid: resourceprep keeps case and spaces, maps compatibility forms, rejects controls",
          "[jid][resourceprep]") {
  CHECK(norm("juliet@example.com/foo bar") == "juliet@example.com/foo bar"); // RFC 7622 §3.5
  CHECK(norm("juliet@example.com/ Balcony ") == "juliet@example.com/ Balcony ");
  CHECK(norm("juliet@example.com/\u03A8 \u03A9") == "juliet@example.com/\u03A8 \u03A9");   // Ψ Ω: no case folding
  CHECK(norm("king@example.com/\u265A") == "king@example.com/\u265A");                     // RFC 7622 §3.5: ♚
  CHECK(norm("juliet@example.com/\uFF46\uFF55\uFF4C\uFF4C") == "juliet@example.com/full"); // fullwidth → NFKC
  CHECK(norm("juliet@example.com/a\u00A0b") == "juliet@example.com/a b");                  // NBSP is a space under NFKC
  CHECK(norm("juliet@example.com/a\u00ADb") == "juliet@example.com/ab");                   // mapped to nothing
  CHECK(norm("juliet@example.com/\"&'<>:") == "juliet@example.com/\"&'<>:");
  for (std::string_view bad :
       {"a\tb", "a\nb", "a\rb", "a\x01", "\x1f", "a\x7f", "a\u0085b", "a\u2028b", "a\u200Eb", "a\uE000b", "a\uFFFDb"}) {
    INFO("resource '" << bad << "'");
    CHECK_FALSE(Jid::resourceprep(bad));
    CHECK_FALSE(Jid::parse("juliet@example.com/" + std::string(bad)));
  }
  CHECK_FALSE(Jid::resourceprep(std::string_view("a\0b", 3)));
  CHECK_FALSE(Jid::resourceprep(""));
  CHECK_FALSE(Jid::resourceprep("\u00AD")); // empty after mapping
}

TEST_CASE("jid: resourceprep accepts a short resource whose NFKC form is much longer", "[jid][resourceprep]") {
  // U+FDFA (3 bytes) is "صلى الله عليه وسلم" (33 bytes) under NFKC: still one valid resourcepart.
  auto r = Jid::resourceprep("\uFDFA");
  REQUIRE(r);
  CHECK(*r == "\u0635\u0644\u0649 \u0627\u0644\u0644\u0647 \u0639\u0644\u064A\u0647 \u0648\u0633\u0644\u0645");
  CHECK(norm("juliet@example.com/\uFDFA") == "juliet@example.com/" + *r);
}

TEST_CASE("jid: IDNA — ACE and Unicode spellings of a domain are the same JID, in Unicode form", "[jid][nameprep]") {
  const Jid unicode = *Jid::parse("m\u00FCller.example");
  CHECK(unicode.domain() == "m\u00FCller.example");
  for (const char* spelling :
       {"xn--mller-kva.example", "XN--MLLER-KVA.EXAMPLE", "Xn--mller-kva.example", "xN--MLLER-kva.Example",
        "M\u00DCLLER.EXAMPLE", "m\u00FCller.example.", "xn--mller-kva.example."}) {
    INFO(spelling);
    auto j = Jid::parse(spelling);
    REQUIRE(j);
    CHECK(*j == unicode);
    CHECK(j->str() == "m\u00FCller.example");
    CHECK(std::hash<Jid>{}(*j) == std::hash<Jid>{}(unicode));
  }
  CHECK(*Jid::parse("juliet@xn--mller-kva.example/Balcony") == *Jid::parse("Juliet@M\u00DCLLER.example/Balcony"));
  // Nameprep: uppercase Unicode is lowercased, compatibility forms are mapped.
  CHECK(norm("\u03A8.example") == "\u03C8.example");
  CHECK(norm("\uFF45\uFF58\uFF41\uFF4D\uFF50\uFF4C\uFF45.com") == "example.com"); // fullwidth letters
  // IDNA2003 label separators: U+3002, U+FF0E, U+FF61 are dots.
  CHECK(norm("m\u00FCller\u3002example") == "m\u00FCller.example");
  CHECK(norm("m\u00FCller\uFF0Eexample") == "m\u00FCller.example");
  CHECK(norm("m\u00FCller\uFF61example") == "m\u00FCller.example");
  CHECK(norm("example\u3002com") == "example.com");
}

TEST_CASE("jid: domainparts follow the host name rules (STD3)", "[jid][nameprep]") {
  CHECK(norm("Example.COM") == "example.com");
  CHECK(norm("a-b.example") == "a-b.example");
  CHECK(norm("localhost") == "localhost");
  CHECK(norm("1.example") == "1.example");
  for (const char* bad : {"exa_mple.com", "-example.com", "example-.com", "ex ample.com", "ex!ample.com",
                          "ex*ample.com", "example.com:5222", "m\u00FCller_x.example", "m\u00FCller.exa mple",
                          "m\u00FCller.-x.example", "m\u00FCller.x-.example", "juliet@exa_mple.com/r"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::parse(bad));
  }
  CHECK_FALSE(Jid::parse(std::string_view("exam\0ple.com", 12)));
}

TEST_CASE("jid: domain labels, dots and lengths", "[jid][nameprep]") {
  // A final dot is removed (RFC 6122 §2.2), one only.
  CHECK(norm("example.com.") == "example.com");
  CHECK(norm("juliet@example.com./balcony") == "juliet@example.com/balcony");
  CHECK(*Jid::parse("juliet@example.com.") == *Jid::parse("juliet@example.com"));
  for (const char* bad : {".", "..", "example.com..", ".example.com", "example..com", "m\u00FCller..example"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::parse(bad));
  }
  // A label holds at most 63 characters, counted in the ASCII (ACE) form for IDNs.
  CHECK(Jid::parse(repeat("a", 63) + ".example"));
  CHECK_FALSE(Jid::parse(repeat("a", 64) + ".example"));
  CHECK(Jid::parse("\u00FC" + repeat("a", 50) + ".example"));       // xn--...: 57 characters
  CHECK_FALSE(Jid::parse("\u00FC" + repeat("a", 60) + ".example")); // xn--...: 67 characters
  // A domain holds at most 253 characters: RFC 6122 §2.2's 1023 bytes are an upper bound for the UTF-8 form, but
  // the DNS limits apply too, so no domainpart of 1023 bytes can be valid.
  REQUIRE(kLongestDomain.size() == 253);
  CHECK(norm(kLongestDomain) == kLongestDomain);
  CHECK(norm(kLongestDomain + ".") == kLongestDomain);
  CHECK_FALSE(Jid::parse(kLongestDomain + "d"));
  CHECK_FALSE(Jid::parse(repeat("a.", 511) + "a"));  // 1023 bytes
  CHECK_FALSE(Jid::parse(repeat("a.", 511) + "ab")); // 1024 bytes
  // The limit is on the ACE form, not on UTF-8 bytes: 4 labels of 50 × "ü" are 403 bytes, xn--... 227 characters.
  const std::string u = repeat("\u00FC", 50);
  const std::string long_idn = u + "." + u + "." + u + "." + u;
  REQUIRE(long_idn.size() == 403);
  CHECK(norm("juliet@" + long_idn) == "juliet@" + long_idn);
}

TEST_CASE("jid: IP literals", "[jid][nameprep]") {
  CHECK(norm("192.0.2.1") == "192.0.2.1");
  CHECK(norm("juliet@192.0.2.1/balcony") == "juliet@192.0.2.1/balcony");
  // IPv6 in brackets, in its canonical text form (RFC 5952), so that spellings compare equal.
  CHECK(norm("[::1]") == "[::1]");
  CHECK(norm("[0:0:0:0:0:0:0:1]") == "[::1]");
  CHECK(norm("[2001:DB8::1]") == "[2001:db8::1]");
  CHECK(norm("[2001:0db8:0000:0000:0000:0000:0000:0001]") == "[2001:db8::1]");
  CHECK(norm("[::FFFF:192.0.2.1]") == "[::ffff:192.0.2.1]");
  auto j = Jid::parse("juliet@[::1]/balcony");
  REQUIRE(j);
  CHECK(j->node() == "juliet");
  CHECK(j->domain() == "[::1]");
  CHECK(j->resource() == "balcony");
  CHECK(*j == *Jid::parse("JULIET@[0::1]/balcony"));
  for (const char* bad : {"[::g]", "[::1", "::1", "[]", "[1.2.3.4]", "[::1%eth0]", "[1:2:3:4:5:6:7:8:9]", "[12345::]",
                          "[:::1]", "[1::2::3]", "x[::1]", "[::1]x", "juliet@[::1"}) {
    INFO("'" << bad << "'");
    CHECK_FALSE(Jid::parse(bad));
  }
}

TEST_CASE("jid: each part holds at most 1023 bytes, counted after preparation", "[jid]") {
  const std::string a1023 = repeat("a", 1023);
  const std::string a1024 = repeat("a", 1024);
  SECTION("localpart") {
    CHECK(Jid::parse(a1023 + "@example.com"));
    CHECK_FALSE(Jid::parse(a1024 + "@example.com"));
    CHECK(Jid::parse(repeat("\u00E9", 511) + "a@example.com")); // 1023 bytes of UTF-8
    CHECK_FALSE(Jid::parse(repeat("\u00E9", 512) + "@example.com"));
    // After mapping: a soft hyphen (mapped to nothing) does not count ...
    CHECK(norm(a1023 + "\u00AD@example.com") == a1023 + "@example.com");
    CHECK(norm(repeat("A", 1023) + "@example.com") == a1023 + "@example.com");
    // ... and an expansion does: "㌀" (3 bytes) is "アパート" (12 bytes) under NFKC.
    CHECK(Jid::parse(repeat("\u3300", 85) + "@example.com"));       // 1020 bytes prepared
    CHECK_FALSE(Jid::parse(repeat("\u3300", 86) + "@example.com")); // 1032 bytes prepared
  }
  SECTION("resourcepart") {
    CHECK(Jid::parse("juliet@example.com/" + a1023));
    CHECK_FALSE(Jid::parse("juliet@example.com/" + a1024));
    CHECK(Jid::parse("juliet@example.com/" + repeat("\u00E9", 511) + "a"));
    CHECK_FALSE(Jid::parse("juliet@example.com/" + repeat("\u00E9", 512)));
    CHECK(norm("juliet@example.com/" + a1023 + "\u00AD") == "juliet@example.com/" + a1023);
    CHECK(Jid::parse("juliet@example.com/" + repeat("\u3300", 85)));
    CHECK_FALSE(Jid::parse("juliet@example.com/" + repeat("\u3300", 86)));
  }
  SECTION("domainpart (see the DNS limit above)") {
    CHECK_FALSE(Jid::parse("juliet@" + repeat("a.", 511) + "a"));
    CHECK_FALSE(Jid::parse("juliet@" + repeat("a.", 512)));
  }
  SECTION("a full JID of three maximal parts") {
    auto j = Jid::parse(a1023 + "@" + kLongestDomain + "/" + a1023);
    REQUIRE(j);
    CHECK(j->str().size() == 1023 + 1 + 253 + 1 + 1023);
  }
}

TEST_CASE("jid: invalid UTF-8 is rejected in every part", "[jid]") {
  for (std::string_view bad : {
           "\xC3",                 // truncated
           "\xC3\x28",             // bad continuation byte
           "\x80",                 // lone continuation byte
           "\xC0\xAF",             // overlong '/'
           "\xE0\x80\xAF",         // overlong '/'
           "\xF0\x80\x80\xAF",     // overlong '/'
           "\xED\xA0\x80",         // UTF-16 surrogate
           "\xF4\x90\x80\x80",     // above U+10FFFF
           "\xF8\x88\x80\x80\x80", // 5-byte form
           "\xFE",                 //
           "\xFF",                 //
       }) {
    const std::string s(bad);
    INFO("bytes " << Catch::Detail::stringify(s));
    CHECK_FALSE(Jid::parse("jul" + s + "iet@example.com"));
    CHECK_FALSE(Jid::parse("juliet@exa" + s + "mple.com"));
    CHECK_FALSE(Jid::parse("juliet@example.com/bal" + s + "cony"));
    CHECK_FALSE(Jid::nodeprep(s));
    CHECK_FALSE(Jid::nameprep(s));
    CHECK_FALSE(Jid::resourceprep(s));
  }
}

TEST_CASE("jid: from_parts prepares each part", "[jid]") {
  auto j = Jid::from_parts("Juliet", "Example.COM", "Balcony");
  REQUIRE(j);
  CHECK(*j == *Jid::parse("juliet@example.com/Balcony"));
  // Empty node or resource: absent.
  auto d = Jid::from_parts("", "example.com", "");
  REQUIRE(d);
  CHECK(d->is_domain());
  // A resource may hold '@' and '/', a node may not.
  auto r = Jid::from_parts("juliet", "example.com", "a/b@c");
  REQUIRE(r);
  CHECK(r->str() == "juliet@example.com/a/b@c");
  CHECK_FALSE(Jid::from_parts("jul@iet", "example.com", ""));
  CHECK_FALSE(Jid::from_parts("jul/iet", "example.com", ""));
  CHECK_FALSE(Jid::from_parts("juliet", "", "balcony"));
  CHECK_FALSE(Jid::from_parts("juliet", "exa mple.com", ""));
  CHECK_FALSE(Jid::from_parts("juliet", "example.com", "bal\ncony"));
}

TEST_CASE("jid: bare(), with_resource(), str(), bare_str()", "[jid]") {
  const Jid full = *Jid::parse("juliet@example.com/balcony");
  const Jid bare = full.bare();
  CHECK(bare.str() == "juliet@example.com");
  CHECK(bare.is_bare());
  CHECK(bare == *Jid::parse("juliet@example.com"));
  CHECK(full.bare_str() == "juliet@example.com");
  CHECK(full.str() == "juliet@example.com/balcony");
  CHECK(bare.bare() == bare);

  const Jid chamber = full.with_resource("chamber");
  CHECK(chamber.str() == "juliet@example.com/chamber");
  CHECK(chamber.bare() == bare);
  CHECK(chamber != full);
  CHECK(bare.with_resource("balcony") == full);
  CHECK(full.with_resource("") == bare);

  const Jid domain = *Jid::parse("example.com/balcony");
  CHECK(domain.bare().str() == "example.com");
  CHECK(domain.bare_str() == "example.com");
  CHECK(domain.bare().is_domain());

  const Jid empty;
  CHECK(empty.empty());
  CHECK(empty.str().empty());
  CHECK_FALSE(full.empty());

  // str() of a parsed JID parses back to the same JID.
  for (const char* s : {"juliet@example.com/balcony", "example.com", "example.com/a@b/c",
                        "\u03C8@m\u00FCller.example/X Y", "juliet@[::1]/r"}) {
    INFO(s);
    const Jid j = *Jid::parse(s);
    CHECK(*Jid::parse(j.str()) == j);
    CHECK(*Jid::parse(j.bare_str()) == j.bare());
  }
}

TEST_CASE("jid: equality, ordering and hashing agree", "[jid]") {
  const Jid a = *Jid::parse("Juliet@Example.com/balcony");
  const Jid b = *Jid::parse("juliet@EXAMPLE.COM./balcony");
  CHECK(a == b);
  CHECK_FALSE(a < b);
  CHECK_FALSE(b < a);
  CHECK(std::hash<Jid>{}(a) == std::hash<Jid>{}(b));

  // The parts are not interchangeable: the same strings in different parts are different JIDs.
  const Jid node_domain = *Jid::parse("a@b");
  const Jid domain_resource = *Jid::parse("a/b");
  const Jid b_node = *Jid::parse("b@a");
  CHECK(node_domain != domain_resource);
  CHECK(node_domain != b_node);
  CHECK(node_domain.bare() != domain_resource.bare());

  std::unordered_set<Jid> set;
  for (const char* s : {"juliet@example.com/balcony", "JULIET@example.com/balcony", "juliet@example.com./balcony",
                        "juliet@example.com/Balcony", "juliet@example.com", "example.com", "example.com/juliet",
                        "juliet@xn--mller-kva.example", "juliet@m\u00FCller.example", "a@b", "a/b", "b@a"}) {
    set.insert(*Jid::parse(s));
  }
  // 12 spellings, 9 JIDs: the first three are one, and the two müller spellings are one.
  CHECK(set.size() == 9);
  CHECK(set.contains(*Jid::parse("Juliet@Example.COM/balcony")));
  CHECK_FALSE(set.contains(*Jid::parse("juliet@example.com/chamber")));
}

TEST_CASE("jid: the prep functions reject empty input", "[jid]") {
  CHECK_FALSE(Jid::nodeprep(""));
  CHECK_FALSE(Jid::nameprep(""));
  CHECK_FALSE(Jid::resourceprep(""));
  CHECK(Jid::nodeprep("Juliet") == "juliet");
  CHECK(Jid::nameprep("Example.COM") == "example.com");
  CHECK(Jid::resourceprep("Balcony") == "Balcony");
}
