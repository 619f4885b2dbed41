// XEP-0199: XMPP Ping, version 2.0.1 (2019-03-26). Answers pings to the server, and pings clients that have been
// silent for a while, closing those that do not answer (XEP-0199 §4.2 server-to-client pings).
#include "xep/xep0199_ping.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

namespace cg::xep::ping {

using api::Element;
using api::IqReply;

namespace {

class PingModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"ping",
            "XMPP Ping: answers pings and pings clients that have been silent, closing those that do not answer",
            {{"XEP-0199", "2.0.1", "complete", ""}},
            {},
            {api::opt_int("idle", 300, 0, 86400, "Seconds of silence after which a client is pinged; 0 = never"),
             api::opt_int("timeout", 60, 1, 3600, "Seconds to wait for the answer before closing the connection")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx.add_feature(std::string(ns));
    ctx.add_account_feature(std::string(ns));
    // XEP-0199 §4.1: "If the server supports the ping namespace, it MUST return an IQ-result".
    ctx.on_iq(api::IqScope::Host, api::IqType::Get, std::string(ns), "ping",
              [](const api::IqRequest&) -> boost::asio::awaitable<IqReply> { co_return IqReply::result(); });
    // The account advertises urn:xmpp:ping in its disco#info (add_account_feature above), so it must answer one:
    // XEP-0030 §3.1 "the target entity MUST return ... the features it supports", and XEP-0199 §4.2 "If the
    // client supports the ping namespace, it MUST return an IQ-result" — the server answers for the account (a
    // ping with no 'to', or to the own bare JID, RFC 6120 §10.3.3). Like disco#info on an account, only the
    // account itself is answered; anyone else gets service-unavailable, which reveals nothing.
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "ping",
              [](const api::IqRequest& req) -> boost::asio::awaitable<IqReply> {
                if (req.from.bare() != req.to) {
                  co_return IqReply::error("service-unavailable");
                }
                co_return IqReply::result();
              });
    auto idle = ctx.option<std::int64_t>("idle");
    if (idle <= 0) {
      return;
    }
    auto timeout = std::chrono::seconds(ctx.option<std::int64_t>("timeout"));
    ctx.request_idle_events(std::chrono::seconds(idle));
    ctx.on_session(api::SessionEventKind::Idle, [&ctx, timeout](const api::SessionEvent& ev) {
      boost::asio::co_spawn(ctx.executor(), ping_client(ctx, ev.jid, timeout), boost::asio::detached);
    });
  }

private:
  static boost::asio::awaitable<void> ping_client(api::ModuleContext& ctx, api::Jid jid, std::chrono::seconds timeout) {
    Element iq("iq", std::string(api::ns::client));
    iq.set_attr("type", "get");
    iq.set_attr("to", jid.str());
    iq.set_attr("from", ctx.host());
    iq.add_child("ping", std::string(ns));
    auto reply = co_await ctx.send_iq(std::move(iq), timeout);
    // Any answer — a result, or an error such as service-unavailable from a client without ping support
    // (XEP-0199 §4.2) — shows the connection is alive. Only a missing answer closes it.
    if (!reply) {
      ctx.log().info("ping: {} did not answer within {} s; closing", jid.str(), timeout.count());
      ctx.close_session(jid, "connection-timeout", "no answer to ping");
    }
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<PingModule>();
}

} // namespace cg::xep::ping
