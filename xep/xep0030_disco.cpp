// XEP-0030: Service Discovery, version 2.5rc3 (2017-10-03). The host's identities and features are collected from
// every loaded module (ModuleContext::add_feature / add_identity), never listed by hand; queries with a 'node' go
// to the module that owns the node (api::disco::NodeQuery, server/api/disco.hpp).
#include "xep/xep0030_disco.hpp"

namespace cg::xep::disco {

using api::Element;
using api::IqReply;
using api::IqRequest;

std::optional<Info> Info::parse(const Element& query) {
  if (!query.is("query", ns_info)) {
    return std::nullopt;
  }
  Info info;
  info.node = std::string(query.attr("node"));
  for (const auto* c : query.children()) {
    if (c->is("identity", ns_info)) {
      // XEP-0030 §3.1: each identity MUST have 'category' and 'type'.
      if (c->attr("category").empty() || c->attr("type").empty()) {
        return std::nullopt;
      }
      info.identities.push_back({std::string(c->attr("category")), std::string(c->attr("type")),
                                 std::string(c->attr("name")), std::string(c->attr("xml:lang"))});
    } else if (c->is("feature", ns_info)) {
      if (c->attr("var").empty()) {
        return std::nullopt;
      }
      info.features.emplace_back(c->attr("var"));
    }
  }
  return info;
}

Element Info::to_element() const {
  Element q("query", std::string(ns_info));
  if (!node.empty()) {
    q.set_attr("node", node);
  }
  for (const auto& id : identities) {
    Element& e = q.add_child("identity");
    e.set_attr("category", id.category);
    e.set_attr("type", id.type);
    if (!id.name.empty()) {
      e.set_attr("name", id.name);
    }
    if (!id.lang.empty()) {
      e.set_attr("xml:lang", id.lang);
    }
  }
  for (const auto& f : features) {
    q.add_child("feature").set_attr("var", f);
  }
  return q;
}

std::optional<Items> Items::parse(const Element& query) {
  if (!query.is("query", ns_items)) {
    return std::nullopt;
  }
  Items items;
  items.node = std::string(query.attr("node"));
  for (const auto* c : query.children("item")) {
    // XEP-0030 §4.1: the 'jid' attribute is REQUIRED.
    if (c->attr("jid").empty()) {
      return std::nullopt;
    }
    items.items.push_back({std::string(c->attr("jid")), std::string(c->attr("node")), std::string(c->attr("name"))});
  }
  return items;
}

Element Items::to_element() const {
  Element q("query", std::string(ns_items));
  if (!node.empty()) {
    q.set_attr("node", node);
  }
  for (const auto& it : items) {
    Element& e = q.add_child("item");
    e.set_attr("jid", it.jid);
    if (!it.node.empty()) {
      e.set_attr("node", it.node);
    }
    if (!it.name.empty()) {
      e.set_attr("name", it.name);
    }
  }
  return q;
}

namespace {

// Asks the modules for a node's answer. nullopt: nobody owns the node.
std::optional<IqReply> node_answer(api::ModuleContext& ctx, api::disco::NodeQuery::Kind kind, const IqRequest& req,
                                   const std::string& node) {
  api::disco::NodeQuery query{kind, req.from, req.to, node, {}, {}, {}, std::nullopt};
  if (ctx.fire(query) != api::Flow::Stop) {
    return std::nullopt;
  }
  if (query.error) {
    return IqReply::error(std::move(*query.error));
  }
  if (kind == api::disco::NodeQuery::Kind::Info) {
    Info info{node, std::move(query.identities), std::move(query.features)};
    return IqReply::result(info.to_element());
  }
  Items items{node, std::move(query.items)};
  return IqReply::result(items.to_element());
}

class DiscoModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"disco",
            "Service discovery: the server's identity and the features of every loaded module",
            {{"XEP-0030", "2.5rc3", "complete", ""}},
            {},
            {api::opt_string("name", "ChatGroup", "Name shown in the server's disco identity")},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    ctx.add_feature(std::string(ns_info));
    ctx.add_feature(std::string(ns_items));
    ctx.add_identity({"server", "im", ctx.option<std::string>("name"), ""});
    ctx.add_account_feature(std::string(ns_info));
    ctx.add_account_feature(std::string(ns_items));

    ctx.on_iq(api::IqScope::Host, api::IqType::Get, std::string(ns_info), "query",
              [&ctx](const IqRequest& req) -> boost::asio::awaitable<IqReply> {
                Info info;
                info.node = std::string(req.payload.attr("node"));
                if (!info.node.empty()) {
                  if (auto answer = node_answer(ctx, api::disco::NodeQuery::Kind::Info, req, info.node)) {
                    co_return std::move(*answer);
                  }
                  // XEP-0030 §3.2: a node the entity does not know → item-not-found.
                  co_return IqReply::error("item-not-found", "no such node");
                }
                info.identities = ctx.identities();
                info.features = ctx.features();
                co_return IqReply::result(info.to_element());
              });
    ctx.on_iq(api::IqScope::Host, api::IqType::Get, std::string(ns_items), "query",
              [&ctx](const IqRequest& req) -> boost::asio::awaitable<IqReply> {
                Items items;
                items.node = std::string(req.payload.attr("node"));
                if (!items.node.empty()) {
                  if (auto answer = node_answer(ctx, api::disco::NodeQuery::Kind::Items, req, items.node)) {
                    co_return std::move(*answer);
                  }
                  co_return IqReply::error("item-not-found", "no such node");
                }
                co_return IqReply::result(items.to_element());
              });
    // A user's bare JID: the server answers for the account (XEP-0030 §3.1 account identity). Until rosters
    // exist only the account itself may ask; anyone else gets service-unavailable, which reveals nothing.
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns_info), "query",
              [&ctx](const IqRequest& req) -> boost::asio::awaitable<IqReply> {
                if (req.from.bare() != req.to) {
                  co_return IqReply::error("service-unavailable");
                }
                if (!req.payload.attr("node").empty()) {
                  co_return IqReply::error("item-not-found", "no such node");
                }
                Info info;
                info.identities.push_back({"account", "registered", "", ""});
                info.features = ctx.account_features();
                co_return IqReply::result(info.to_element());
              });
    ctx.on_iq(api::IqScope::Account, api::IqType::Get, std::string(ns_items), "query",
              [](const IqRequest& req) -> boost::asio::awaitable<IqReply> {
                if (req.from.bare() != req.to) {
                  co_return IqReply::error("service-unavailable");
                }
                // An account has no nodes yet: an unknown node is item-not-found, as for the host and for the
                // account's disco#info (an empty result would claim that the node exists).
                if (!req.payload.attr("node").empty()) {
                  co_return IqReply::error("item-not-found", "no such node");
                }
                co_return IqReply::result(Items{}.to_element());
              });
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<DiscoModule>();
}

} // namespace cg::xep::disco
