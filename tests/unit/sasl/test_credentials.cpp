// Stored credentials: derive(), make_credentials(), verify_password(), serialize() / parse_credentials().
#include "server/sasl/sasl.hpp"

#include "scram_client.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace cg::sasl;

namespace {

std::size_t key_size(Hash h) {
  return h == Hash::Sha1 ? 20 : h == Hash::Sha256 ? 32 : 64;
}

} // namespace

TEST_CASE("derive() matches an independent OpenSSL computation for every hash", "[credentials]") {
  for (Hash h : {Hash::Sha1, Hash::Sha256, Hash::Sha512}) {
    const auto c = derive(h, "pencil", "NaCl", 4097);
    REQUIRE(c);
    const std::string salted = sasl_test::ossl_pbkdf2(h, "pencil", "NaCl", 4097);
    CHECK(c->hash == h);
    CHECK(c->salt == "NaCl");
    CHECK(c->iterations == 4097);
    CHECK(c->stored_key == sasl_test::ossl_digest(h, sasl_test::ossl_hmac(h, salted, "Client Key")));
    CHECK(c->server_key == sasl_test::ossl_hmac(h, salted, "Server Key"));
    CHECK(c->stored_key.size() == key_size(h));
  }
}

TEST_CASE("derive() applies SASLprep and refuses what it cannot derive", "[credentials]") {
  CHECK(derive(Hash::Sha256, "I\xC2\xADX", "salt", 4096) == derive(Hash::Sha256, "IX", "salt", 4096));
  CHECK(derive(Hash::Sha256, "\xE2\x85\xA8", "salt", 4096) == derive(Hash::Sha256, "IX", "salt", 4096));
  CHECK(derive(Hash::Sha256, "USER", "salt", 4096) != derive(Hash::Sha256, "user", "salt", 4096));
  CHECK(derive(Hash::Sha256, "a\x07", "salt", 4096) == std::nullopt);
  CHECK(derive(Hash::Sha256, "", "salt", 4096) == std::nullopt);
  CHECK(derive(Hash::Sha256, "pencil", "salt", 0) == std::nullopt);
  CHECK(derive(Hash::Sha256, "pencil", "", 4096) == std::nullopt);
}

TEST_CASE("make_credentials() makes all three hashes with fresh 16-byte salts", "[credentials]") {
  const auto a = make_credentials("pencil");
  const auto b = make_credentials("pencil");
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(a->scram.size() == 3);
  std::set<std::string> salts;
  for (Hash h : {Hash::Sha1, Hash::Sha256, Hash::Sha512}) {
    const ScramCredential* c = a->find(h);
    REQUIRE(c != nullptr);
    CHECK(c->hash == h);
    CHECK(c->salt.size() == 16);
    CHECK(c->iterations == 4096);
    CHECK(c->stored_key.size() == key_size(h));
    CHECK(c->server_key.size() == key_size(h));
    // The keys are those of the password with that salt.
    CHECK(derive(h, "pencil", c->salt, c->iterations) == std::optional<ScramCredential>(*c));
    salts.insert(c->salt);
    salts.insert(b->find(h)->salt);
  }
  CHECK(salts.size() == 6);
  CHECK(a->find(Hash::Sha256)->stored_key != b->find(Hash::Sha256)->stored_key);
}

TEST_CASE("make_credentials() clamps iterations to at least 4096 and honours larger counts", "[credentials]") {
  for (std::uint32_t requested : {0u, 1u, 1000u, 4095u}) {
    const auto c = make_credentials("pencil", requested);
    REQUIRE(c);
    for (const auto& s : c->scram) {
      CHECK(s.iterations == 4096);
    }
  }
  const auto c = make_credentials("pencil", 5000);
  REQUIRE(c);
  for (const auto& s : c->scram) {
    CHECK(s.iterations == 5000);
  }
  CHECK(verify_password(*c, "pencil"));
}

TEST_CASE("make_credentials() refuses empty and prohibited passwords", "[credentials]") {
  CHECK(make_credentials("") == std::nullopt);
  CHECK(make_credentials("\xC2\xAD") == std::nullopt); // SASLprep maps it to nothing
  CHECK(make_credentials("bell\x07") == std::nullopt);
  CHECK(make_credentials("\xFF") == std::nullopt);
}

TEST_CASE("verify_password() accepts the password and nothing else", "[credentials]") {
  const auto c = make_credentials("correct horse battery staple");
  REQUIRE(c);
  CHECK(verify_password(*c, "correct horse battery staple"));
  CHECK_FALSE(verify_password(*c, "correct horse battery stapl"));
  CHECK_FALSE(verify_password(*c, "Correct horse battery staple"));
  CHECK_FALSE(verify_password(*c, ""));
  CHECK_FALSE(verify_password(Credentials{}, "correct horse battery staple"));

  const auto prepped = make_credentials("I\xC2\xADX");
  REQUIRE(prepped);
  CHECK(verify_password(*prepped, "IX"));
  CHECK(verify_password(*prepped, "\xE2\x85\xA8"));
}

TEST_CASE("verify_password() uses the strongest hash present", "[credentials]") {
  const auto sha1 = derive(Hash::Sha1, "old", "salt1", 4096);
  const auto sha256 = derive(Hash::Sha256, "middle", "salt2", 4096);
  const auto sha512 = derive(Hash::Sha512, "new", "salt3", 4096);
  REQUIRE(sha1);
  REQUIRE(sha256);
  REQUIRE(sha512);
  const Credentials all{{*sha1, *sha512, *sha256}};
  CHECK(verify_password(all, "new"));
  CHECK_FALSE(verify_password(all, "middle"));
  CHECK_FALSE(verify_password(all, "old"));
  const Credentials two{{*sha1, *sha256}};
  CHECK(verify_password(two, "middle"));
  CHECK_FALSE(verify_password(two, "old"));
  const Credentials one{{*sha1}};
  CHECK(verify_password(one, "old"));
  // Honours the stored iteration count.
  const auto slow = derive(Hash::Sha256, "pw", "salt", 4100);
  REQUIRE(slow);
  CHECK(verify_password(Credentials{{*slow}}, "pw"));
}

TEST_CASE("Credentials::find()", "[credentials]") {
  const auto c = make_credentials("pencil");
  REQUIRE(c);
  CHECK(c->find(Hash::Sha1)->hash == Hash::Sha1);
  CHECK(Credentials{}.find(Hash::Sha256) == nullptr);
}

TEST_CASE("serialize() has a stable text form", "[credentials]") {
  ScramCredential c;
  c.hash = Hash::Sha1;
  c.iterations = 4096;
  c.salt = sasl_test::ossl_unb64("QSXCR+Q6sek8bf92");
  c.stored_key = sasl_test::ossl_unb64("6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
  c.server_key = sasl_test::ossl_unb64("D+CSWLOshSulAsxiupA+qs2/fTE=");
  const Credentials creds{{c}};
  const std::string text = serialize(creds);
  CHECK(text == "scram-sha-1 4096 QSXCR+Q6sek8bf92 6dlGYMOdZcOPutkcNY8U2g7vK9Y= D+CSWLOshSulAsxiupA+qs2/fTE=\n");
  CHECK(parse_credentials(text) == std::optional<Credentials>(creds));
  // The vector's keys are those of "pencil".
  CHECK(verify_password(*parse_credentials(text), "pencil"));
}

TEST_CASE("serialize() / parse_credentials() round trip", "[credentials]") {
  const auto c = make_credentials("pencil", 12345);
  REQUIRE(c);
  const std::string text = serialize(*c);
  const auto parsed = parse_credentials(text);
  REQUIRE(parsed);
  CHECK(*parsed == *c);
  CHECK(serialize(*parsed) == text);
  CHECK(verify_password(*parsed, "pencil"));
  // A missing final newline is tolerated.
  CHECK(parse_credentials(text.substr(0, text.size() - 1)) == parsed);
}

TEST_CASE("parse_credentials() rejects malformed text", "[credentials]") {
  const std::string salt = "QSXCR+Q6sek8bf92";
  const std::string k20 = "6dlGYMOdZcOPutkcNY8U2g7vK9Y=";
  const std::string k32 = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
  const std::string good = "scram-sha-1 4096 " + salt + " " + k20 + " " + k20 + "\n";
  REQUIRE(parse_credentials(good));
  REQUIRE(parse_credentials(good + "scram-sha-256 4096 " + salt + " " + k32 + " " + k32 + "\n"));

  for (const std::string& bad : {
           std::string(""),
           std::string("\n"),
           "scram-sha-1 4096 " + salt + " " + k20 + "\n",                         // 4 fields
           "scram-sha-1 4096 " + salt + " " + k20 + " " + k20 + " " + k20 + "\n", // 6 fields
           "scram-sha-1  4096 " + salt + " " + k20 + " " + k20 + "\n",            // empty field
           "scram-sha-1 4096 " + salt + " " + k20 + " " + k20 + " \n",            // trailing space
           "scram-sha-1\t4096 " + salt + " " + k20 + " " + k20 + "\n",            // tab
           "scram-sha-1 4096 " + salt + " " + k20 + " " + k20 + "\r\n",           // CR
           "scram-md5 4096 " + salt + " " + k20 + " " + k20 + "\n",               // unknown hash
           "SCRAM-SHA-1 4096 " + salt + " " + k20 + " " + k20 + "\n",             // wrong case
           "scram-sha-1 0 " + salt + " " + k20 + " " + k20 + "\n",                // iterations < 1
           "scram-sha-1 -1 " + salt + " " + k20 + " " + k20 + "\n",
           "scram-sha-1 +4096 " + salt + " " + k20 + " " + k20 + "\n",
           "scram-sha-1 04096 " + salt + " " + k20 + " " + k20 + "\n",
           "scram-sha-1 4096x " + salt + " " + k20 + " " + k20 + "\n",
           "scram-sha-1 99999999999 " + salt + " " + k20 + " " + k20 + "\n",    // overflow
           "scram-sha-1 4096 QSXCR+Q6sek8bf9 " + k20 + " " + k20 + "\n",        // bad base64 salt
           "scram-sha-1 4096 " + salt + " " + k20.substr(1) + " " + k20 + "\n", // bad base64 key
           "scram-sha-1 4096 " + salt + " " + k20 + " " + "6dlGYMOdZcOPutkcNY8U2g7vK9!=\n",
           "scram-sha-1 4096 " + salt + " " + k32 + " " + k20 + "\n", // wrong key length
           "scram-sha-1 4096 " + salt + " " + k20 + " " + k32 + "\n",
           "scram-sha-256 4096 " + salt + " " + k20 + " " + k20 + "\n",
           "scram-sha-512 4096 " + salt + " " + k32 + " " + k32 + "\n",
           good + good, // duplicate hash
           good + "\n", // empty line
           "\n" + good,
           good + "garbage\n",
       }) {
    INFO(bad);
    CHECK(parse_credentials(bad) == std::nullopt);
  }
}
