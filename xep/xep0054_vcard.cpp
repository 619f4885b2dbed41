// XEP-0054: vcard-temp, version 1.2 (2008-07-16). A user stores the whole <vCard xmlns='vcard-temp'/> element (keyval
// store "vcard"); the server answers for the account: the user reads and replaces it, anyone else may read it
// (XEP-0054 §5: "The vCard information published to one's Jabber server is world-readable").
#include "xep/xep0054_vcard.hpp"

#include "server/api/xml.hpp"

#include <spdlog/spdlog.h>

namespace cg::xep::vcard {

using api::Element;
using api::IqReply;
using api::IqRequest;

namespace {

// No child element and no text but whitespace.
bool is_empty(const Element& el) {
  for (const auto& node : el.nodes()) {
    const auto* text = std::get_if<std::string>(&node);
    if (text == nullptr || text->find_first_not_of(" \t\r\n") != std::string::npos) {
      return false;
    }
  }
  return true;
}

class VcardModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"vcard",
            "vcard-temp: users publish a vCard (name, nickname, avatar ...) that anyone can read",
            {{"XEP-0054", "1.2", "complete", ""}},
            {},
            {api::opt_int("max_size", 131072, 1024, 262144,
                          "Largest vCard a user can store, in bytes of XML; a larger one gets not-acceptable")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    max_size_ = static_cast<std::size_t>(ctx.option<std::int64_t>("max_size"));
    store_ = ctx.storage().keyval("vcard");
    // XEP-0054 §4: "If an entity supports the vcard-temp protocol, it MUST report that by including a service
    // discovery feature of "vcard-temp"". The server answers for its accounts too, so they report it as well.
    ctx.add_feature(std::string(ns));
    ctx.add_account_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "vCard",
              [this](const IqRequest& req) { return get(req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "vCard",
              [this](const IqRequest& req) { return set(req); });
  }

private:
  // The IQ reaches this handler for a bare JID (or none): XEP-0054 §3.3 "a compliant server MUST respond on behalf
  // of the requestor and not forward the IQ to the requestee's connected resource". (An IQ to a full JID is
  // routed to that client.)
  boost::asio::awaitable<IqReply> get(const IqRequest& req) {
    const std::string host = ctx_->host();
    const std::string user = req.to.node();
    std::optional<std::string> value;
    std::function<void()> job = [&] { value = store_->get(host, user); };
    co_await ctx_->run_blocking(std::move(job));
    std::optional<Element> card;
    if (value) {
      card = api::parse_xml(*value);
      if (!card) {
        ctx_->log().error("vcard: the stored vCard of {} is unreadable; answering as if there were none", req.to.str());
      }
    }
    if (card) {
      co_return IqReply::result(std::move(*card));
    }
    if (req.from.bare() == req.to) {
      // XEP-0054 §3.1: "If no vCard exists, the server MUST return a stanza error (which SHOULD be
      // <item-not-found/>) or an IQ-result containing an empty <vCard/> element." The user's own client gets the
      // empty vCard: it is about to fill it in, and an error would read as a failure.
      co_return IqReply::result(Element("vCard", std::string(ns)));
    }
    // XEP-0054 §3.3: "If no vCard exists or the user does not exist, the server MUST return a stanza error, which
    // SHOULD [be] <service-unavailable/> or <item-not-found/>." (An account that does not exist already gets
    // service-unavailable from the router, RFC 6121 §8.5.1.)
    co_return IqReply::error("item-not-found", "no vCard");
  }

  boost::asio::awaitable<IqReply> set(const IqRequest& req) {
    // XEP-0054 §3.2: "If a user attempts to perform an IQ set on another user's vCard (i.e., by setting a 'to'
    // address to a JID other than the sending user's bare JID), the server MUST return a stanza error, which
    // SHOULD be <forbidden/> or <not-allowed/>."
    if (req.from.bare() != req.to) {
      co_return IqReply::error("forbidden", "only its owner can change a vCard");
    }
    // The size limit: not-acceptable (RFC 6120 §8.3.3.9: the request "does not meet criteria defined by the
    // recipient or server"; type modify: a smaller vCard, e.g. a smaller photo, would be accepted). Not
    // resource-constraint, whose type 'wait' would tell the client to send the same vCard again later.
    std::string value = api::to_xml(req.payload);
    if (value.size() > max_size_) {
      co_return IqReply::error("not-acceptable", "the vCard is " + std::to_string(value.size()) +
                                                     " bytes; the limit is " + std::to_string(max_size_));
    }
    const std::string host = ctx_->host();
    const std::string user = req.to.node();
    // XEP-0054 §3.2: "the entire vCard must be sent to the server in order to update any part of the vCard": the
    // element replaces what was stored. An empty <vCard/> removes it.
    const bool remove = is_empty(req.payload);
    std::function<void()> job = [&] {
      if (remove) {
        store_->remove(host, user);
      } else {
        store_->set(host, user, value);
      }
    };
    co_await ctx_->run_blocking(std::move(job));
    co_return IqReply::result();
  }

  api::ModuleContext* ctx_ = nullptr;
  std::shared_ptr<storage::KeyValStore> store_;
  std::size_t max_size_ = 0;
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<VcardModule>();
}

} // namespace cg::xep::vcard
