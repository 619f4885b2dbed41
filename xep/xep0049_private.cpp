// XEP-0049: Private XML Storage, version 1.2 (2004-03-01). A user keeps arbitrary XML on the server, one element per
// (namespace, name), in map store "private" keyed "{namespace}name"; only the user's own resources can read or write
// it.
#include "xep/xep0049_private.hpp"

#include "server/api/xml.hpp"

#include <spdlog/spdlog.h>

#include <set>

namespace cg::xep {

using api::Element;
using api::IqReply;
using api::IqRequest;

namespace priv {

bool is_reserved_namespace(std::string_view ns) {
  return ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == "vcard-temp";
}

std::string key_of(const Element& el) {
  return "{" + el.ns() + "}" + el.name();
}

namespace {

// An element with nothing in it but its namespace: storing it is the same as storing nothing (a client clears its
// data that way, e.g. XEP-0048 bookmarks with an empty <storage/>), so it removes the entry.
bool is_empty(const Element& el) {
  if (!el.attrs().empty()) {
    return false;
  }
  for (const auto& node : el.nodes()) {
    const auto* text = std::get_if<std::string>(&node);
    if (text == nullptr || text->find_first_not_of(" \t\r\n") != std::string::npos) {
      return false;
    }
  }
  return true;
}

class PrivateModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"private",
            "Private XML storage: clients keep their settings and bookmarks on the server (jabber:iq:private)",
            {{"XEP-0049", "1.2", "complete", ""}},
            {},
            {api::opt_int("max_size", 131072, 256, 262144,
                          "Largest element a user can store, in bytes of XML; larger ones get not-acceptable"),
             api::opt_int("max_items", 100, 1, 100000,
                          "Most elements (namespace and name pairs) one user can store; more get not-acceptable")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx_ = &ctx;
    max_size_ = static_cast<std::size_t>(ctx.option<std::int64_t>("max_size"));
    max_items_ = static_cast<std::size_t>(ctx.option<std::int64_t>("max_items"));
    store_ = ctx.storage().map("private");
    // XEP-0049 defines no disco feature; servers (Prosody, ejabberd) advertise the namespace, and clients look for
    // it on the server before they keep bookmarks there.
    ctx.add_feature(std::string(ns));
    ctx.add_account_feature(std::string(ns));
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns), "query",
              [this](const IqRequest& req) { return get(req); });
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "query",
              [this](const IqRequest& req) { return set(req); });
  }

private:
  // The checks that get and set share; nullopt when the request may go ahead.
  static std::optional<IqReply> refuse(const IqRequest& req) {
    // XEP-0049 §2.3: "If a user attempts to get or set jabber:iq:private data that belongs to another user, the
    // server MUST return a "Forbidden" or "Service Unavailable" error to the sender (... the former is
    // preferable)"; §5: "A server MUST NOT allow any entity other than an authorized resource of the user to
    // create, update, or delete private XML stored on behalf of that user."
    if (req.from.bare() != req.to) {
      return IqReply::error("forbidden", "private XML belongs to its owner only");
    }
    auto children = req.payload.children();
    // XEP-0049 §2.3: "At least one child element with a proper namespace MUST be included; otherwise the server
    // MUST respond with a "Not Acceptable" error".
    if (children.empty()) {
      return IqReply::error("not-acceptable", "name the element to get or set");
    }
    for (const Element* child : children) {
      // XEP-0049 §2.3: a reserved namespace ('jabber:*', 'http://jabber.org/*', 'vcard-temp') → "Not
      // Acceptable". A child without its own namespace is in jabber:iq:private, reserved too.
      if (is_reserved_namespace(child->ns())) {
        return IqReply::error("not-acceptable", "the namespace " + child->ns() + " is reserved");
      }
    }
    return std::nullopt;
  }

  boost::asio::awaitable<IqReply> get(const IqRequest& req) {
    if (auto refused = refuse(req)) {
      co_return std::move(*refused);
    }
    auto children = req.payload.children();
    // XEP-0049 §2.3: "A client MUST NOT query for more than [one] namespace in a single IQ get request."
    for (const Element* child : children) {
      if (child->ns() != children.front()->ns()) {
        co_return IqReply::error("bad-request", "one namespace per request");
      }
    }
    std::vector<std::optional<std::string>> values;
    const std::string host = ctx_->host();
    const std::string user = req.to.node();
    std::function<void()> job = [&] {
      for (const Element* child : children) {
        values.push_back(store_->get(host, user, key_of(*child)));
      }
    };
    co_await ctx_->run_blocking(std::move(job));
    Element query("query", std::string(ns));
    for (std::size_t i = 0; i < children.size(); ++i) {
      std::optional<Element> stored;
      if (values[i]) {
        stored = api::parse_xml(*values[i]);
        if (!stored) {
          ctx_->log().error("private: the stored {} of {} is unreadable; answering as if empty", key_of(*children[i]),
                            req.to.str());
        }
      }
      if (stored) {
        query.add(std::move(*stored));
      } else {
        // Nothing stored: the element as requested, empty (what clients of XEP-0048 bookmarks expect).
        query.add(Element(children[i]->name(), children[i]->ns()));
      }
    }
    co_return IqReply::result(std::move(query));
  }

  boost::asio::awaitable<IqReply> set(const IqRequest& req) {
    if (auto refused = refuse(req)) {
      co_return std::move(*refused);
    }
    auto children = req.payload.children();
    std::vector<std::string> values;
    for (const Element* child : children) {
      values.push_back(api::to_xml(*child));
      if (values.back().size() > max_size_) {
        co_return IqReply::error("not-acceptable", key_of(*child) + " is " + std::to_string(values.back().size()) +
                                                       " bytes; the limit is " + std::to_string(max_size_));
      }
    }
    // XEP-0049 §2.3: "an IQ set or result MAY contain multiple elements": each is stored under its own key (a
    // later one with the same key replaces an earlier one of the same request).
    const std::string host = ctx_->host();
    const std::string user = req.to.node();
    bool too_many = false;
    std::function<void()> job = [&] {
      std::set<std::string> adding;
      for (const Element* child : children) {
        if (!is_empty(*child) && !store_->get(host, user, key_of(*child))) {
          adding.insert(key_of(*child));
        }
      }
      if (!adding.empty() && store_->all(host, user).size() + adding.size() > max_items_) {
        too_many = true;
        return;
      }
      for (std::size_t i = 0; i < children.size(); ++i) {
        if (is_empty(*children[i])) {
          store_->remove(host, user, key_of(*children[i]));
        } else {
          store_->set(host, user, key_of(*children[i]), values[i]);
        }
      }
    };
    co_await ctx_->run_blocking(std::move(job));
    if (too_many) {
      co_return IqReply::error("not-acceptable",
                               "no more than " + std::to_string(max_items_) + " private elements per user");
    }
    co_return IqReply::result();
  }

  api::ModuleContext* ctx_ = nullptr;
  std::shared_ptr<storage::MapStore> store_;
  std::size_t max_size_ = 0;
  std::size_t max_items_ = 0;
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<PrivateModule>();
}

} // namespace priv

} // namespace cg::xep
