// The fake host itself: what later module tests (roster, MAM, ad-hoc commands ...) rely on.
#include "tests/xep/fake_host.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

using cg::api::Element;
using cg::api::Flow;
using cg::api::IqReply;
using cg::api::IqRequest;
using cg::api::IqScope;
using cg::api::IqType;
using cg::api::Jid;
using cg::test::FakeHost;

namespace {

// A module-defined extension point (DESIGN.md §4).
struct CarbonQuestion {
  std::string to;
  bool copy = true;
};

// Exercises the parts of ModuleContext the XEP modules of this tier do not: options of every type, stanza
// handlers, typed events, storage through run_blocking, user_exists, sessions, send.
class ProbeModule final : public cg::api::Module {
public:
  cg::api::ModuleInfo info() const override {
    return {"probe",
            "test module",
            {{"XEP-0000", "1.0", "complete", ""}},
            {},
            {cg::api::opt_bool("flag", false, "a flag"), cg::api::opt_int("count", 3, 1, 10, "a count"),
             cg::api::opt_float("ratio", 0.5, 0.0, 1.0, "a ratio"),
             cg::api::opt_string("mode", "fast", "a mode", {"fast", "slow"}),
             cg::api::opt_list("tags", {"a"}, "tags", {"a", "b"})},
            true};
  }

  void load(cg::api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    ctx.on_stanza(
        cg::api::StanzaKind::Message, cg::api::Route::Bare,
        [this](cg::api::StanzaEvent&) {
          order.push_back("low");
          return Flow::Continue;
        },
        -5);
    ctx.on_stanza(
        cg::api::StanzaKind::Message, cg::api::Route::Bare,
        [this](cg::api::StanzaEvent& ev) {
          order.push_back("high");
          ev.stanza.set_attr("seen", "yes");
          return ev.stanza.attr("stop") == "1" ? Flow::Stop : Flow::Continue;
        },
        10);
    ctx.on<CarbonQuestion>([](CarbonQuestion& q) {
      if (q.to == "private@example.com") {
        q.copy = false;
        return Flow::Stop;
      }
      return Flow::Continue;
    });
    // IQ handler for any element of a namespace ("" name), storing through run_blocking.
    ctx.on_iq(IqScope::Account, IqType::Set, "urn:test:store", "",
              [&ctx](const IqRequest& req) -> boost::asio::awaitable<IqReply> {
                std::string user = req.to.node();
                std::string value = req.payload.text();
                std::function<void()> job = [&ctx, user, value] {
                  ctx.storage().keyval("probe")->set(ctx.host(), user, value);
                };
                co_await ctx.run_blocking(std::move(job));
                bool exists = co_await ctx.user_exists(user);
                if (!exists) {
                  co_return IqReply::error("item-not-found");
                }
                co_return IqReply::result();
              });
    ctx.on_iq(IqScope::Host, IqType::Get, "urn:test:fail", "fail",
              [](const IqRequest&) -> boost::asio::awaitable<IqReply> {
                throw std::runtime_error("handler failure");
                co_return IqReply::result();
              });
  }

  cg::api::ModuleContext* ctx_ = nullptr;
  std::vector<std::string> order;
};

} // namespace

TEST_CASE("fake host: options are the declared defaults with overrides", "[fake]") {
  ProbeModule probe;
  FakeHost host;
  host.load(probe, {{"count", std::int64_t{7}}, {"tags", std::vector<std::string>{"a", "b"}}});
  CHECK(host.option<bool>("flag") == false);
  CHECK(host.option<std::int64_t>("count") == 7);
  CHECK(host.option<double>("ratio") == 0.5);
  CHECK(host.option<std::string>("mode") == "fast");
  CHECK(host.option<std::vector<std::string>>("tags") == std::vector<std::string>{"a", "b"});

  FakeHost bad;
  CHECK_THROWS_AS(bad.load(probe, {{"count", std::int64_t{11}}}), std::invalid_argument);
  CHECK_THROWS_AS(bad.load(probe, {{"ratio", 1.5}}), std::invalid_argument);
  CHECK_THROWS_AS(bad.load(probe, {{"mode", std::string("medium")}}), std::invalid_argument);
  CHECK_THROWS_AS(bad.load(probe, {{"tags", std::vector<std::string>{"c"}}}), std::invalid_argument);
}

TEST_CASE("fake host: stanza handlers run by priority until one stops", "[fake]") {
  ProbeModule probe;
  FakeHost host;
  host.load(probe);
  Element msg("message", "jabber:client");
  const Jid from = *Jid::parse("romeo@example.net/orchard");
  const Jid to = *Jid::parse("juliet@example.com");
  const cg::api::Origin origin{cg::api::OriginKind::Server, *Jid::parse("example.net")};
  cg::api::StanzaEvent ev{msg, from, to, origin, cg::api::StanzaKind::Message, cg::api::Route::Bare};
  CHECK(host.run_stanza(ev) == Flow::Continue);
  CHECK(probe.order == std::vector<std::string>{"high", "low"});
  CHECK(msg.attr("seen") == "yes");

  probe.order.clear();
  msg.set_attr("stop", "1");
  CHECK(host.run_stanza(ev) == Flow::Stop);
  CHECK(probe.order == std::vector<std::string>{"high"});

  // Other routes are not affected.
  cg::api::StanzaEvent full{msg, from, to, origin, cg::api::StanzaKind::Message, cg::api::Route::Full};
  probe.order.clear();
  CHECK(host.run_stanza(full) == Flow::Continue);
  CHECK(probe.order.empty());
}

TEST_CASE("fake host: typed events reach the module's handlers", "[fake]") {
  ProbeModule probe;
  FakeHost host;
  host.load(probe);
  CHECK(host.event_handler_count(typeid(CarbonQuestion)) == 1);
  CarbonQuestion q{"juliet@example.com"};
  CHECK(host.fire(q) == Flow::Continue);
  CHECK(q.copy);
  CarbonQuestion p{"private@example.com"};
  CHECK(host.fire(p) == Flow::Stop);
  CHECK_FALSE(p.copy);
}

TEST_CASE("fake host: call_iq runs a coroutine handler with storage and user lookups", "[fake]") {
  ProbeModule probe;
  FakeHost host;
  host.load(probe);
  host.add_user("juliet");
  IqReply ok = host.call_iq(IqScope::Account, "<iq type='set' from='juliet@example.com/balcony' id='1'>"
                                              "<anything xmlns='urn:test:store'>hello</anything></iq>");
  CHECK_FALSE(ok.is_error());
  CHECK(host.blocking_runs() == 1);
  CHECK(host.storage().keyval("probe")->get("example.com", "juliet") == "hello");

  IqReply missing = host.call_iq(IqScope::Account, "<iq type='set' from='juliet@example.com/balcony' "
                                                   "to='nobody@example.com' id='2'>"
                                                   "<x xmlns='urn:test:store'>v</x></iq>");
  REQUIRE(missing.is_error());
  CHECK(missing.error_value().condition == "item-not-found");

  // No handler: what the router answers.
  IqReply none = host.call_iq(IqScope::Host, "<iq type='get' from='juliet@example.com/balcony' id='3'>"
                                             "<query xmlns='urn:test:none'/></iq>");
  REQUIRE(none.is_error());
  CHECK(none.error_value().condition == "service-unavailable");

  // A handler's exception reaches the test.
  CHECK_THROWS_WITH(host.call_iq(IqScope::Host, "<iq type='get' from='juliet@example.com/balcony' id='4'>"
                                                "<fail xmlns='urn:test:fail'/></iq>"),
                    "handler failure");
  // A malformed request is the test's mistake.
  CHECK_THROWS_AS(host.call_iq(IqScope::Host, "<iq type='result' from='a@example.com/r' id='5'><x xmlns='u'/></iq>"),
                  std::invalid_argument);
  CHECK_THROWS_AS(host.call_iq(IqScope::Host, "<iq type='get' id='6'><x xmlns='u'/></iq>"), std::invalid_argument);
  CHECK_THROWS_AS(host.call_iq(IqScope::Host, "<iq type='get' from='a@example.com/r' id='7'/>"), std::invalid_argument);
}

TEST_CASE("fake host: send stamps 'from', send_iq answers from the script and restores the id", "[fake]") {
  FakeHost host("example.com");
  Element msg("message", "jabber:client");
  msg.set_attr("to", "juliet@example.com");
  host.send(msg);
  REQUIRE(host.sent().size() == 1);
  CHECK(host.sent().front().attr("from") == "example.com");

  std::optional<Element> answer;
  Element iq("iq", "jabber:client");
  iq.set_attr("type", "get");
  iq.set_attr("id", "mine");
  iq.set_attr("to", "juliet@example.com/balcony");
  iq.add_child("ping", "urn:xmpp:ping");
  host.respond_to_iqs([](const Element& sent) { return FakeHost::result_for(sent); });
  boost::asio::co_spawn(
      host.executor(),
      [&]() -> boost::asio::awaitable<void> {
        Element request = iq;
        answer = co_await host.send_iq(std::move(request), std::chrono::seconds(3));
      },
      boost::asio::detached);
  host.run();
  REQUIRE(answer);
  CHECK(answer->attr("id") == "mine");
  CHECK(answer->attr("type") == "result");
  CHECK(answer->attr("from") == "juliet@example.com/balcony");
  REQUIRE(host.sent_iqs().size() == 1);
  CHECK(host.sent_iqs().front().iq.attr("id") != "mine");
  CHECK(host.sent_iqs().front().iq.attr("from") == "example.com");
  CHECK(host.sent_iqs().front().timeout == std::chrono::seconds(3));

  host.clear_records();
  CHECK(host.sent().empty());
  CHECK(host.sent_iqs().empty());
}

TEST_CASE("fake host: sessions, siblings and disco collections", "[fake]") {
  FakeHost host("example.com");
  cg::api::SessionInfo s;
  s.jid = *Jid::parse("juliet@example.com/balcony");
  s.available = true;
  host.add_session(s);
  s.jid = *Jid::parse("juliet@example.com/chamber");
  host.add_session(s);
  s.jid = *Jid::parse("romeo@example.com/orchard");
  host.add_session(s);
  CHECK(host.sessions(*Jid::parse("juliet@example.com")).size() == 2);
  CHECK(host.sessions(*Jid::parse("nurse@example.com")).empty());

  FakeHost& other = host.sibling();
  other.add_feature("urn:b");
  host.add_feature("urn:a");
  other.add_feature("urn:a");
  other.add_identity({"server", "im", "X", ""});
  host.add_identity({"server", "im", "X", ""});
  CHECK(host.features() == std::vector<std::string>{"urn:a", "urn:b"});
  CHECK(other.features() == host.features());
  CHECK(host.registered_features().size() == 3);
  CHECK(host.identities().size() == 1);
  CHECK(&other.storage() == &host.storage());
  CHECK(other.host() == "example.com");
}
