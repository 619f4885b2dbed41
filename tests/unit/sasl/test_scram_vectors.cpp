// SCRAM server mechanisms against the RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256) example exchanges, and
// round trips with an independent client (scram_client.hpp) for every SCRAM mechanism.
#include "server/sasl/sasl.hpp"

#include "scram_client.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace cg::sasl;
using Status = Step::Status;
using sasl_test::Client;
using sasl_test::ossl_unb64;

namespace {

std::string hex(std::string_view s) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    out += digits[static_cast<unsigned char>(c) >> 4];
    out += digits[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

MechanismContext fixed_nonce(std::string nonce) {
  MechanismContext ctx;
  ctx.nonce = [nonce] { return nonce; };
  ctx.fake_salt_secret = "test fake-salt secret";
  return ctx;
}

Credentials single(const ScramCredential& c) {
  return Credentials{{c}};
}

} // namespace

TEST_CASE("RFC 5802 §5 SCRAM-SHA-1 example exchange, byte for byte", "[scram][vectors]") {
  const auto cred = derive(Hash::Sha1, "pencil", ossl_unb64("QSXCR+Q6sek8bf92"), 4096);
  REQUIRE(cred);
  // SaltedPassword = 1d96ee3a529b5a5f9e47c01f229a2cb8a6e15f7d (the RFC's example keys).
  CHECK(cred->hash == Hash::Sha1);
  CHECK(cred->iterations == 4096);
  CHECK(hex(cred->stored_key) == "e9d94660c39d65c38fbad91c358f14da0eef2bd6");
  CHECK(hex(cred->server_key) == "0fe09258b3ac852ba502cc62ba903eaacdbf7d31");

  auto m = make_mechanism("SCRAM-SHA-1", fixed_nonce("3rfcNHYJY1ZVvWVs7j"));
  REQUIRE(m);
  CHECK(m->name() == "SCRAM-SHA-1");

  Step s = m->step("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "user");
  CHECK(s.authzid.empty());

  s = m->credentials(single(*cred));
  REQUIRE(s.status == Status::Challenge);
  CHECK(s.data == "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");

  s = m->step("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
  CHECK(s.username == "user");
  CHECK(s.authzid.empty());

  // Nothing may follow success.
  CHECK(m->step("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=").status ==
        Status::Failure);
}

TEST_CASE("RFC 7677 §3 SCRAM-SHA-256 example exchange, byte for byte", "[scram][vectors]") {
  const auto cred = derive(Hash::Sha256, "pencil", ossl_unb64("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
  REQUIRE(cred);
  // Computed from SaltedPassword c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d.
  CHECK(hex(cred->stored_key) == "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6");
  CHECK(hex(cred->server_key) == "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5");

  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
  REQUIRE(m);
  Step s = m->step("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "user");

  s = m->credentials(single(*cred));
  REQUIRE(s.status == Status::Challenge);
  CHECK(s.data == "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");

  s = m->step("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  CHECK(s.username == "user");
}

TEST_CASE("RFC 5802 exchange with a wrong proof or wrong stored key fails with not-authorized", "[scram][vectors]") {
  const auto good = derive(Hash::Sha1, "pencil", ossl_unb64("QSXCR+Q6sek8bf92"), 4096);
  const auto bad = derive(Hash::Sha1, "pencil2", ossl_unb64("QSXCR+Q6sek8bf92"), 4096);
  REQUIRE(good);
  REQUIRE(bad);

  SECTION("one bit flipped in the proof") {
    auto m = make_mechanism("SCRAM-SHA-1", fixed_nonce("3rfcNHYJY1ZVvWVs7j"));
    REQUIRE(m->step("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").status == Status::NeedCredentials);
    REQUIRE(m->credentials(single(*good)).status == Status::Challenge);
    // v0X8... → w0X8...: first proof byte differs by one bit.
    const Step s = m->step("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
    CHECK(s.data.empty());
  }
  SECTION("credentials of another password") {
    auto m = make_mechanism("SCRAM-SHA-1", fixed_nonce("3rfcNHYJY1ZVvWVs7j"));
    REQUIRE(m->step("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").status == Status::NeedCredentials);
    REQUIRE(m->credentials(single(*bad)).status == Status::Challenge);
    const Step s = m->step("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "not-authorized");
  }
}

TEST_CASE("SCRAM-SHA-512 round trip against an independent OpenSSL client", "[scram]") {
  const std::string salt = "0123456789abcdef";
  const auto cred = derive(Hash::Sha512, "correct horse", salt, 5000);
  REQUIRE(cred);
  CHECK(cred->stored_key.size() == 64);
  CHECK(cred->server_key.size() == 64);

  Client client;
  client.hash = Hash::Sha512;
  client.password = "correct horse";
  client.cnonce = "abcdefghijklmnop";

  auto m = make_mechanism("SCRAM-SHA-512", fixed_nonce("ServerNonce-512"));
  REQUIRE(m);
  Step s = m->step(client.first());
  REQUIRE(s.status == Status::NeedCredentials);
  s = m->credentials(single(*cred));
  REQUIRE(s.status == Status::Challenge);
  CHECK(s.data == "r=abcdefghijklmnopServerNonce-512,s=" + sasl_test::ossl_b64(salt) + ",i=5000");
  s = m->step(client.final_message(s.data));
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == client.expected_server_final);
}

TEST_CASE("every SCRAM mechanism round-trips with credentials from make_credentials()", "[scram]") {
  const auto creds = make_credentials("p\xC3\xA4ssword", 4096); // "pässword"
  REQUIRE(creds);
  const std::string cb_data = "exporter-bytes-0123456789abcdef";
  for (const std::string& name : all_mechanisms()) {
    if (name == "PLAIN") {
      continue;
    }
    DYNAMIC_SECTION(name) {
      Client client;
      client.hash = name.find("512") != std::string::npos   ? Hash::Sha512
                    : name.find("256") != std::string::npos ? Hash::Sha256
                                                            : Hash::Sha1;
      client.password = "p\xC3\xA4ssword";
      MechanismContext ctx;
      ctx.fake_salt_secret = "s";
      if (is_plus(name)) {
        ctx.channel_bindings.push_back({"tls-exporter", cb_data});
        ctx.plus_advertised = true;
        client.gs2_header = "p=tls-exporter,,";
        client.cb_data = cb_data;
      }
      auto m = make_mechanism(name, ctx);
      REQUIRE(m);
      CHECK(m->name() == name);
      Step s = m->step(client.first());
      REQUIRE(s.status == Status::NeedCredentials);
      CHECK(s.username == "user");
      s = m->credentials(creds);
      REQUIRE(s.status == Status::Challenge);
      s = m->step(client.final_message(s.data));
      REQUIRE(s.status == Status::Success);
      CHECK(s.data == client.expected_server_final);
      CHECK(s.username == "user");
    }
  }
}

TEST_CASE("SCRAM honours the stored iteration count and salt", "[scram]") {
  const auto cred = derive(Hash::Sha256, "pencil", "some salt", 10000);
  REQUIRE(cred);
  Client client;
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
  const Step challenge = m->credentials(single(*cred));
  REQUIRE(challenge.status == Status::Challenge);
  CHECK(challenge.data == "r=" + client.cnonce + "SN,s=" + sasl_test::ossl_b64("some salt") + ",i=10000");
  const Step s = m->step(client.final_message(challenge.data));
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == client.expected_server_final);
}

TEST_CASE("SCRAM with a wrong password fails with not-authorized", "[scram]") {
  const auto creds = make_credentials("right password");
  REQUIRE(creds);
  Client client;
  client.password = "wrong password";
  auto m = make_mechanism("SCRAM-SHA-256", MechanismContext{});
  REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
  const Step challenge = m->credentials(creds);
  REQUIRE(challenge.status == Status::Challenge);
  const Step s = m->step(client.final_message(challenge.data));
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "not-authorized");
  CHECK(s.data.empty());
  CHECK_FALSE(s.text.empty());
  // Any step after a failure fails again.
  CHECK(m->step(client.final_message(challenge.data)).status == Status::Failure);
}

namespace {

// Runs an exchange for an unknown user up to the challenge; returns the server-first message.
std::string unknown_user_challenge(const std::string& mech, const std::string& user, const std::string& secret) {
  MechanismContext ctx;
  ctx.fake_salt_secret = secret;
  ctx.channel_bindings.push_back({"tls-exporter", "cb"});
  auto m = make_mechanism(mech, ctx);
  Client client;
  client.username = user;
  if (is_plus(mech)) {
    client.gs2_header = "p=tls-exporter,,";
  }
  const Step s = m->step(client.first());
  REQUIRE(s.status == Status::NeedCredentials);
  const Step c = m->credentials(std::nullopt);
  REQUIRE(c.status == Status::Challenge);
  return c.data;
}

} // namespace

TEST_CASE("SCRAM for an unknown user: plausible stable challenge, failure only at the end", "[scram]") {
  const auto existing = make_credentials("pencil");
  REQUIRE(existing);

  // The full exchange: a challenge that looks like a real one, then the same failure as a wrong password.
  Client client;
  client.username = "nobody";
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
  const Step challenge = m->credentials(std::nullopt);
  REQUIRE(challenge.status == Status::Challenge);
  auto a = sasl_test::attributes(challenge.data);
  CHECK(a['r'] == client.cnonce + "SN");
  CHECK(ossl_unb64(a['s']).size() == 16); // like make_credentials()' salts
  CHECK(a['i'] == "4096");
  const Step unknown = m->step(client.final_message(challenge.data));
  CHECK(unknown.status == Status::Failure);
  CHECK(unknown.condition == "not-authorized");

  // Same condition and text as a wrong password for an existing account.
  Client wrong;
  wrong.password = "not pencil";
  auto m2 = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m2->step(wrong.first()).status == Status::NeedCredentials);
  const Step c2 = m2->credentials(existing);
  REQUIRE(c2.status == Status::Challenge);
  const Step wrong_pw = m2->step(wrong.final_message(c2.data));
  CHECK(wrong_pw.status == Status::Failure);
  CHECK(wrong_pw.condition == unknown.condition);
  CHECK(wrong_pw.text == unknown.text);

  // Whatever password is tried, an unknown user never succeeds (the fake keys are unknown to everybody).
  Client other;
  other.username = "nobody";
  other.password = "";
  auto m3 = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m3->step(other.first()).status == Status::NeedCredentials);
  const Step c3 = m3->credentials(std::nullopt);
  CHECK(m3->step(other.final_message(c3.data)).status == Status::Failure);
}

TEST_CASE("the fake salt is stable per username and secret and hides -PLUS", "[scram]") {
  const std::string a1 = unknown_user_challenge("SCRAM-SHA-256", "nobody", "secret");
  const std::string a2 = unknown_user_challenge("SCRAM-SHA-256", "nobody", "secret");
  const auto salt = [](const std::string& challenge) { return sasl_test::attributes(challenge)['s']; };
  CHECK(salt(a1) == salt(a2));
  // A real account shows the same SHA-256 salt with and without -PLUS; so must a fake one.
  CHECK(salt(unknown_user_challenge("SCRAM-SHA-256-PLUS", "nobody", "secret")) == salt(a1));
  CHECK(salt(unknown_user_challenge("SCRAM-SHA-256", "somebody", "secret")) != salt(a1));
  CHECK(salt(unknown_user_challenge("SCRAM-SHA-256", "nobody", "other secret")) != salt(a1));
  // Different hashes have different (random) salts for real accounts, so fake ones differ too.
  CHECK(salt(unknown_user_challenge("SCRAM-SHA-1", "nobody", "secret")) != salt(a1));
  // Without a configured secret a per-process one is used: still stable.
  CHECK(salt(unknown_user_challenge("SCRAM-SHA-256", "nobody", "")) ==
        salt(unknown_user_challenge("SCRAM-SHA-256", "nobody", "")));
}

TEST_CASE("credentials without the mechanism's hash behave like an unknown user", "[scram]") {
  const auto sha1 = derive(Hash::Sha1, "pencil", "salt", 4096);
  REQUIRE(sha1);
  Client client;
  client.username = "nobody";
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
  const Step c = m->credentials(single(*sha1));
  REQUIRE(c.status == Status::Challenge);
  // The same fake salt as for a user without any account.
  CHECK(sasl_test::attributes(c.data)['s'] ==
        sasl_test::attributes(unknown_user_challenge("SCRAM-SHA-256", "nobody", "test fake-salt secret"))['s']);
  CHECK(sasl_test::attributes(c.data)['i'] == "4096");
  const Step s = m->step(client.final_message(c.data));
  CHECK(s.status == Status::Failure);
  CHECK(s.condition == "not-authorized");
}

TEST_CASE("SCRAM random server nonces are long, printable and fresh", "[scram]") {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    Client client;
    auto m = make_mechanism("SCRAM-SHA-1", MechanismContext{});
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    const Step c = m->credentials(std::nullopt);
    REQUIRE(c.status == Status::Challenge);
    const std::string r = sasl_test::attributes(c.data)['r'];
    REQUIRE(r.substr(0, client.cnonce.size()) == client.cnonce);
    const std::string server_part = r.substr(client.cnonce.size());
    CHECK(server_part.size() >= 24); // 18 random bytes in base64
    for (char ch : server_part) {
      CHECK((ch >= 0x21 && ch <= 0x7E && ch != ','));
    }
    seen.insert(server_part);
  }
  CHECK(seen.size() == 20);
}

TEST_CASE("SCRAM usernames and authzids are unescaped and the authzid is passed out", "[scram]") {
  const auto cred = derive(Hash::Sha256, "pencil", "salt", 4096);
  REQUIRE(cred);
  Client client;
  client.username = "a=2Cb=3Dc";
  client.gs2_header = "n,a=juliet@example.com=2Cx=3Dy,";
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  Step s = m->step(client.first());
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "a,b=c");
  CHECK(s.authzid == "juliet@example.com,x=y");
  s = m->credentials(single(*cred));
  REQUIRE(s.status == Status::Challenge);
  s = m->step(client.final_message(s.data));
  REQUIRE(s.status == Status::Success);
  CHECK(s.username == "a,b=c");
  CHECK(s.authzid == "juliet@example.com,x=y");
}

TEST_CASE("SCRAM usernames are SASLprep'd", "[scram]") {
  Client client;
  client.username = "I\xC2\xADX"; // I<SOFT HYPHEN>X
  auto m = make_mechanism("SCRAM-SHA-1", MechanismContext{});
  const Step s = m->step(client.first());
  REQUIRE(s.status == Status::NeedCredentials);
  CHECK(s.username == "IX");
}

TEST_CASE("SCRAM client-final extensions are ignored but covered by the proof", "[scram]") {
  const auto cred = derive(Hash::Sha256, "pencil", "salt", 4096);
  REQUIRE(cred);
  Client client;
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m->step(client.first() + ",x=client-first-ext").status == Status::NeedCredentials);
  // The independent client's bare message must include the extension too.
  client.bare += ",x=client-first-ext";
  const Step c = m->credentials(single(*cred));
  REQUIRE(c.status == Status::Challenge);
  const Step s = m->step(client.final_message(c.data, ",y=final-ext,z=a=b"));
  REQUIRE(s.status == Status::Success);
  CHECK(s.data == client.expected_server_final);
}

TEST_CASE("an empty initial response gets one empty challenge", "[scram]") {
  const auto cred = derive(Hash::Sha256, "pencil", "salt", 4096);
  REQUIRE(cred);
  Client client;
  auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  Step s = m->step("");
  REQUIRE(s.status == Status::Challenge);
  CHECK(s.data.empty());
  s = m->step(client.first());
  REQUIRE(s.status == Status::NeedCredentials);
  s = m->credentials(single(*cred));
  REQUIRE(s.status == Status::Challenge);
  CHECK(m->step(client.final_message(s.data)).status == Status::Success);

  auto m2 = make_mechanism("SCRAM-SHA-256", fixed_nonce("SN"));
  REQUIRE(m2->step("").status == Status::Challenge);
  const Step again = m2->step("");
  CHECK(again.status == Status::Failure);
  CHECK(again.condition == "malformed-request");
}

TEST_CASE("SCRAM refuses out-of-sequence calls", "[scram]") {
  Client client;
  SECTION("credentials() before the client-first message") {
    auto m = make_mechanism("SCRAM-SHA-256", MechanismContext{});
    CHECK(m->credentials(std::nullopt).status == Status::Failure);
    CHECK(m->step(client.first()).status == Status::Failure);
  }
  SECTION("a message while waiting for credentials") {
    auto m = make_mechanism("SCRAM-SHA-256", MechanismContext{});
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    CHECK(m->step(client.first()).status == Status::Failure);
    CHECK(m->credentials(std::nullopt).status == Status::Failure);
  }
  SECTION("credentials() twice") {
    auto m = make_mechanism("SCRAM-SHA-256", MechanismContext{});
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    REQUIRE(m->credentials(std::nullopt).status == Status::Challenge);
    CHECK(m->credentials(std::nullopt).status == Status::Failure);
  }
}

TEST_CASE("SCRAM fails cleanly when the injected server nonce is unusable", "[scram]") {
  for (const char* bad : {"", "has,comma", "has space"}) {
    Client client;
    auto m = make_mechanism("SCRAM-SHA-256", fixed_nonce(bad));
    REQUIRE(m->step(client.first()).status == Status::NeedCredentials);
    const Step s = m->credentials(std::nullopt);
    CHECK(s.status == Status::Failure);
    CHECK(s.condition == "temporary-auth-failure");
  }
}

TEST_CASE("mechanism registry", "[sasl]") {
  CHECK(all_mechanisms() == std::vector<std::string>{"SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
                                                     "SCRAM-SHA-512", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"});
  for (const auto& name : all_mechanisms()) {
    auto m = make_mechanism(name, MechanismContext{});
    REQUIRE(m);
    CHECK(m->name() == name);
    CHECK(is_plus(name) == (name.find("-PLUS") != std::string::npos));
  }
  CHECK(make_mechanism("DIGEST-MD5", MechanismContext{}) == nullptr);
  CHECK(make_mechanism("scram-sha-1", MechanismContext{}) == nullptr);
  CHECK(make_mechanism("SCRAM-SHA-1-PLUSX", MechanismContext{}) == nullptr);
  CHECK(make_mechanism("", MechanismContext{}) == nullptr);
  CHECK(is_plus("SCRAM-SHA-1-PLUS"));
  CHECK_FALSE(is_plus("SCRAM-SHA-1"));
  CHECK_FALSE(is_plus("PLAIN"));
  CHECK(hash_name(Hash::Sha1) == "SHA-1");
  CHECK(hash_name(Hash::Sha256) == "SHA-256");
  CHECK(hash_name(Hash::Sha512) == "SHA-512");
}
