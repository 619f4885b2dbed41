#include "tests/xep/fake_host.hpp"

#include "server/xml/stream_parser.hpp"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace cg::test {

namespace asio = boost::asio;

namespace {

// Keeps every log line as "level: message".
class RecordingSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit RecordingSink(std::vector<std::string>& lines) : lines_(lines) {}

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line(level.data(), level.size());
    line += ": ";
    line.append(msg.payload.data(), msg.payload.size());
    lines_.push_back(std::move(line));
  }
  void flush_() override {}

private:
  std::vector<std::string>& lines_;
};

std::size_t variant_index(api::OptionType t) {
  // The order of api::OptionValue's alternatives.
  switch (t) {
  case api::OptionType::Bool:
    return 0;
  case api::OptionType::Int:
    return 1;
  case api::OptionType::Float:
    return 2;
  case api::OptionType::String:
    return 3;
  case api::OptionType::StringList:
    return 4;
  }
  return 5;
}

bool is_whitespace(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

asio::awaitable<void> invoke_iq(const api::IqHandler& handler, const api::IqRequest& req,
                                std::optional<api::IqReply>& out) {
  api::IqReply reply = co_await handler(req);
  out.emplace(std::move(reply));
}

} // namespace

std::string check_option(const api::OptionSpec& spec, const api::OptionValue& value) {
  if (value.index() != variant_index(spec.type)) {
    return "is not of type " + std::string(api::type_name(spec.type));
  }
  auto in_bounds = [&](double x) -> std::string {
    if (std::isnan(x)) {
      return "is not a number";
    }
    if (spec.min && x < *spec.min) {
      return "is below the minimum " + std::to_string(*spec.min);
    }
    if (spec.max && x > *spec.max) {
      return "is above the maximum " + std::to_string(*spec.max);
    }
    return "";
  };
  auto allowed = [&](const std::string& s) {
    return spec.choices.empty() || std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end();
  };
  switch (spec.type) {
  case api::OptionType::Bool:
    return "";
  case api::OptionType::Int:
    return in_bounds(static_cast<double>(std::get<std::int64_t>(value)));
  case api::OptionType::Float:
    return in_bounds(std::get<double>(value));
  case api::OptionType::String:
    return allowed(std::get<std::string>(value)) ? ""
                                                 : "'" + std::get<std::string>(value) + "' is not an allowed choice";
  case api::OptionType::StringList:
    for (const auto& item : std::get<std::vector<std::string>>(value)) {
      if (!allowed(item)) {
        return "'" + item + "' is not an allowed choice";
      }
    }
    return "";
  }
  return "has an unknown type";
}

Element parse_xml(std::string_view xml) {
  Element el;
  std::string error;
  if (!xml::parse_element(xml, el, error)) {
    throw std::invalid_argument("parse_xml: " + error + " in: " + std::string(xml));
  }
  return el;
}

namespace {
void default_ns(Element& el, const std::string& ns) {
  if (el.ns().empty()) {
    el.set_ns(ns);
  }
  for (auto& node : el.nodes()) {
    if (auto* child = std::get_if<Element>(&node)) {
      default_ns(*child, ns);
    }
  }
}
} // namespace

Element parse_stanza(std::string_view xml) {
  Element el = parse_xml(xml);
  default_ns(el, std::string(xml::ns::client));
  return el;
}

Element canonical(Element el) {
  Element out(el.name(), el.ns());
  auto attrs = el.attrs();
  std::sort(attrs.begin(), attrs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  for (auto& a : attrs) {
    out.set_attr(a.name, std::move(a.value));
  }
  for (auto& node : el.nodes()) {
    if (auto* text = std::get_if<std::string>(&node)) {
      if (!is_whitespace(*text)) {
        out.add_text(std::move(*text));
      }
    } else {
      out.add(canonical(std::move(std::get<Element>(node))));
    }
  }
  return out;
}

struct FakeHost::State {
  struct EventEntry {
    std::type_index type;
    int priority;
    std::uint64_t seq;
    std::shared_ptr<void> handler;
  };

  explicit State(std::string name) : host(std::move(name)) {
    server_info = {"ChatGroup", "0.0.0-test", {host}};
    logger = std::make_shared<spdlog::logger>("fake-host", std::make_shared<RecordingSink>(log_lines));
    logger->set_level(spdlog::level::trace);
    storage = storage::make_memory_driver();
  }

  std::string host;
  api::ServerInfo server_info;
  std::vector<std::string> log_lines;
  std::shared_ptr<spdlog::logger> logger;
  std::unique_ptr<storage::Driver> storage;

  std::uint64_t seq = 0;
  std::vector<std::string> features;
  std::vector<std::string> account_features;
  std::vector<std::pair<api::StreamStage, api::Element>> stream_features;
  std::vector<api::Identity> identities;
  std::map<IqKey, api::IqHandler> iq_handlers;
  std::vector<StanzaHandlerEntry> stanza_handlers;
  std::vector<std::pair<api::SessionEventKind, api::SessionHandler>> session_handlers;
  std::vector<std::chrono::seconds> idle_requests;
  std::vector<EventEntry> event_handlers;

  std::vector<Element> sent;
  std::vector<SentIq> sent_iqs;
  std::uint64_t iq_seq = 0;
  IqResponder responder;
  std::vector<ClosedSession> closed;
  std::vector<api::SessionInfo> sessions;
  std::set<std::string> users;
  std::map<std::string, std::string> passwords;
  int blocking_runs = 0;

  // Last, so that it is destroyed first: work still queued (e.g. a coroutine never resumed) is destroyed while
  // everything it might touch still exists.
  asio::io_context io;
};

FakeHost::FakeHost(std::string host) : state_(std::make_shared<State>(std::move(host))) {}

FakeHost::FakeHost(std::shared_ptr<State> state) : state_(std::move(state)) {}

FakeHost::~FakeHost() = default;

void FakeHost::load(api::Module& module, const OptionOverrides& overrides) {
  api::ModuleInfo info = module.info();
  if (!module_name_.empty()) {
    throw std::logic_error("FakeHost: this context already holds module '" + module_name_ + "'; load '" + info.name +
                           "' into sibling()");
  }
  std::map<std::string, api::OptionValue, std::less<>> options;
  for (const auto& spec : info.options) {
    if (auto why = check_option(spec, spec.default_value); !why.empty()) {
      throw std::invalid_argument("module " + info.name + ": the default of option '" + spec.key + "' " + why);
    }
    if (!options.emplace(spec.key, spec.default_value).second) {
      throw std::invalid_argument("module " + info.name + " declares option '" + spec.key + "' twice");
    }
  }
  for (const auto& [key, value] : overrides) {
    auto spec = std::find_if(info.options.begin(), info.options.end(), [&](const auto& s) { return s.key == key; });
    if (spec == info.options.end()) {
      throw std::invalid_argument("module " + info.name + " declares no option '" + key + "'");
    }
    if (auto why = check_option(*spec, value); !why.empty()) {
      throw std::invalid_argument("module " + info.name + ": the value given for option '" + key + "' " + why);
    }
    options[key] = value;
  }
  module_name_ = info.name;
  options_ = std::move(options);
  module.load(*this);
}

FakeHost& FakeHost::sibling() {
  siblings_.push_back(std::unique_ptr<FakeHost>(new FakeHost(state_)));
  return *siblings_.back();
}

api::ServerInfo& FakeHost::mutable_server_info() {
  return state_->server_info;
}

void FakeHost::add_session(api::SessionInfo session) {
  state_->sessions.push_back(std::move(session));
}

void FakeHost::add_user(std::string node) {
  state_->users.insert(std::move(node));
}

void FakeHost::respond_to_iqs(IqResponder responder) {
  state_->responder = std::move(responder);
}

Element FakeHost::result_for(const Element& iq) {
  return api::make_iq_result(iq);
}

Element FakeHost::error_for(const Element& iq, std::string condition) {
  return api::make_error_reply(iq, std::move(condition));
}

const api::IqHandler* FakeHost::find_iq_handler(api::IqScope scope, api::IqType type, std::string_view ns,
                                                std::string_view name) const {
  const auto& handlers = state_->iq_handlers;
  auto it = handlers.find(IqKey{scope, type, std::string(ns), std::string(name)});
  if (it == handlers.end()) {
    it = handlers.find(IqKey{scope, type, std::string(ns), std::string()});
  }
  return it == handlers.end() ? nullptr : &it->second;
}

api::IqReply FakeHost::call_iq(api::IqScope scope, api::IqType type, const Element& iq_stanza, const api::Jid& from,
                               const api::Jid& to, std::optional<api::Origin> origin) {
  const Element* payload = iq_stanza.first_child();
  if (payload == nullptr) {
    throw std::invalid_argument("call_iq: the IQ has no payload element");
  }
  const api::IqHandler* handler = find_iq_handler(scope, type, payload->ns(), payload->name());
  if (handler == nullptr) {
    return api::IqReply::error("service-unavailable");
  }
  const api::Origin o = origin ? *origin : api::Origin{api::OriginKind::Client, from};
  const api::IqRequest req{iq_stanza, *payload, from, to, type, o};
  std::optional<api::IqReply> reply;
  std::exception_ptr failure;
  asio::co_spawn(state_->io, invoke_iq(*handler, req, reply), [&failure](std::exception_ptr e) { failure = e; });
  run();
  if (failure) {
    std::rethrow_exception(failure);
  }
  if (!reply) {
    throw std::logic_error("call_iq: the handler did not complete (is it awaiting something that never comes?)");
  }
  return std::move(*reply);
}

api::IqReply FakeHost::call_iq(api::IqScope scope, const Element& iq_stanza) {
  api::IqType type;
  if (iq_stanza.attr("type") == "get") {
    type = api::IqType::Get;
  } else if (iq_stanza.attr("type") == "set") {
    type = api::IqType::Set;
  } else {
    throw std::invalid_argument("call_iq: the IQ's type is not get or set");
  }
  auto from = api::Jid::parse(iq_stanza.attr("from"));
  if (!from) {
    throw std::invalid_argument("call_iq: the IQ needs a valid 'from' (the router stamps one)");
  }
  api::Jid to;
  if (iq_stanza.has_attr("to")) {
    auto parsed = api::Jid::parse(iq_stanza.attr("to"));
    if (!parsed) {
      throw std::invalid_argument("call_iq: the IQ's 'to' is not a valid JID");
    }
    to = scope == api::IqScope::Account ? parsed->bare() : *parsed;
  } else if (scope == api::IqScope::Account) {
    to = from->bare();
  } else {
    to = *api::Jid::parse(state_->host);
  }
  return call_iq(scope, type, iq_stanza, *from, to);
}

api::IqReply FakeHost::call_iq(api::IqScope scope, std::string_view iq_xml) {
  return call_iq(scope, parse_stanza(iq_xml));
}

Element FakeHost::reply_stanza(const Element& iq_stanza, const api::IqReply& reply) {
  if (reply.is_error()) {
    return api::make_error_reply(iq_stanza, reply.error_value());
  }
  return api::make_iq_result(iq_stanza, reply.payload());
}

void FakeHost::fire_session(const api::SessionEvent& ev) {
  // Copied first: a handler may register another.
  auto handlers = state_->session_handlers;
  for (const auto& [kind, handler] : handlers) {
    if (kind == ev.kind) {
      handler(ev);
    }
  }
  run();
}

api::Flow FakeHost::run_stanza(api::StanzaEvent& ev) {
  std::vector<const StanzaHandlerEntry*> matching;
  for (const auto& e : state_->stanza_handlers) {
    if (e.kind == ev.kind && e.route == ev.route) {
      matching.push_back(&e);
    }
  }
  std::stable_sort(matching.begin(), matching.end(),
                   [](const auto* a, const auto* b) { return a->priority > b->priority; });
  for (const auto* e : matching) {
    if (e->handler(ev) == api::Flow::Stop) {
      return api::Flow::Stop;
    }
  }
  return api::Flow::Continue;
}

std::size_t FakeHost::run() {
  state_->io.restart();
  return state_->io.run();
}

const std::vector<std::string>& FakeHost::registered_features() const {
  return state_->features;
}

const std::vector<std::string>& FakeHost::registered_account_features() const {
  return state_->account_features;
}

const std::map<FakeHost::IqKey, api::IqHandler>& FakeHost::iq_handlers() const {
  return state_->iq_handlers;
}

bool FakeHost::has_iq_handler(api::IqScope scope, api::IqType type, std::string_view ns, std::string_view name) const {
  return state_->iq_handlers.contains(IqKey{scope, type, std::string(ns), std::string(name)});
}

const std::vector<FakeHost::StanzaHandlerEntry>& FakeHost::stanza_handlers() const {
  return state_->stanza_handlers;
}

std::size_t FakeHost::session_handler_count(api::SessionEventKind kind) const {
  return static_cast<std::size_t>(std::count_if(state_->session_handlers.begin(), state_->session_handlers.end(),
                                                [&](const auto& h) { return h.first == kind; }));
}

const std::vector<std::chrono::seconds>& FakeHost::idle_requests() const {
  return state_->idle_requests;
}

std::optional<std::chrono::seconds> FakeHost::idle_after() const {
  const auto& r = state_->idle_requests;
  if (r.empty()) {
    return std::nullopt;
  }
  return *std::min_element(r.begin(), r.end());
}

std::size_t FakeHost::event_handler_count(std::type_index type) const {
  return static_cast<std::size_t>(std::count_if(state_->event_handlers.begin(), state_->event_handlers.end(),
                                                [&](const auto& e) { return e.type == type; }));
}

const std::vector<Element>& FakeHost::sent() const {
  return state_->sent;
}

const std::vector<FakeHost::SentIq>& FakeHost::sent_iqs() const {
  return state_->sent_iqs;
}

const std::vector<FakeHost::ClosedSession>& FakeHost::closed_sessions() const {
  return state_->closed;
}

const std::vector<std::string>& FakeHost::logged() const {
  return state_->log_lines;
}

int FakeHost::blocking_runs() const {
  return state_->blocking_runs;
}

void FakeHost::clear_records() {
  state_->sent.clear();
  state_->sent_iqs.clear();
  state_->closed.clear();
  state_->log_lines.clear();
}

const std::string& FakeHost::host() const {
  return state_->host;
}

const api::ServerInfo& FakeHost::server_info() const {
  return state_->server_info;
}

spdlog::logger& FakeHost::log() {
  return *state_->logger;
}

api::asio::any_io_executor FakeHost::executor() {
  return state_->io.get_executor();
}

const api::OptionValue& FakeHost::option_value(std::string_view key) const {
  auto it = options_.find(key);
  if (it == options_.end()) {
    throw std::out_of_range("module " + module_name_ + " read undeclared option '" + std::string(key) + "'");
  }
  return it->second;
}

void FakeHost::add_feature(std::string feature) {
  state_->features.push_back(std::move(feature));
}

void FakeHost::add_identity(api::Identity identity) {
  state_->identities.push_back(std::move(identity));
}

void FakeHost::add_stream_feature(api::StreamStage stage, api::Element feature) {
  state_->stream_features.emplace_back(stage, std::move(feature));
}

std::vector<api::Element> FakeHost::registered_stream_features(api::StreamStage stage) const {
  std::vector<api::Element> out;
  for (const auto& [s, f] : state_->stream_features) {
    if (s == stage) {
      out.push_back(f);
    }
  }
  return out;
}

void FakeHost::add_account_feature(std::string feature) {
  state_->account_features.push_back(std::move(feature));
}

namespace {
std::vector<std::string> sorted_unique(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}
} // namespace

std::vector<std::string> FakeHost::features() const {
  return sorted_unique(state_->features);
}

std::vector<api::Identity> FakeHost::identities() const {
  // Like the real host: registration order, duplicates dropped.
  std::vector<api::Identity> out;
  for (const auto& id : state_->identities) {
    if (std::find(out.begin(), out.end(), id) == out.end()) {
      out.push_back(id);
    }
  }
  return out;
}

std::vector<std::string> FakeHost::account_features() const {
  return sorted_unique(state_->account_features);
}

void FakeHost::on_stanza(api::StanzaKind kind, api::Route route, api::StanzaHandler handler, int priority) {
  state_->stanza_handlers.push_back({kind, route, priority, state_->seq++, std::move(handler)});
}

void FakeHost::on_iq(api::IqScope scope, api::IqType type, std::string payload_ns, std::string payload_name,
                     api::IqHandler handler) {
  IqKey key{scope, type, std::move(payload_ns), std::move(payload_name)};
  if (state_->iq_handlers.contains(key)) {
    // The real host refuses this too: two modules claiming one IQ is a programming error.
    throw std::logic_error("two handlers for IQ <" + key.name + " xmlns='" + key.ns + "'/>");
  }
  state_->iq_handlers.emplace(std::move(key), std::move(handler));
}

void FakeHost::on_session(api::SessionEventKind kind, api::SessionHandler handler) {
  state_->session_handlers.emplace_back(kind, std::move(handler));
}

void FakeHost::request_idle_events(std::chrono::seconds after) {
  state_->idle_requests.push_back(after);
}

void FakeHost::send(Element stanza) {
  if (!stanza.has_attr("from")) {
    stanza.set_attr("from", state_->host);
  }
  state_->sent.push_back(std::move(stanza));
}

api::asio::awaitable<std::optional<Element>> FakeHost::send_iq(Element iq, std::chrono::milliseconds timeout) {
  // As the real host does: a unique id while in flight, the caller's id restored on the reply.
  std::string caller_id(iq.attr("id"));
  iq.set_attr("id", "fake-iq-" + std::to_string(++state_->iq_seq));
  if (!iq.has_attr("from")) {
    iq.set_attr("from", state_->host);
  }
  state_->sent_iqs.push_back({std::move(iq), timeout});
  std::optional<Element> reply;
  if (state_->responder) {
    reply = state_->responder(state_->sent_iqs.back().iq);
  }
  if (reply) {
    reply->set_attr("id", caller_id);
  }
  co_return reply;
}

void FakeHost::close_session(const api::Jid& full_jid, std::string condition, std::string text) {
  state_->closed.push_back({full_jid, std::move(condition), std::move(text)});
}

std::vector<api::SessionInfo> FakeHost::sessions(const api::Jid& bare_jid) const {
  std::vector<api::SessionInfo> out;
  for (const auto& s : state_->sessions) {
    if (s.jid.bare() == bare_jid) {
      out.push_back(s);
    }
  }
  return out;
}

storage::Driver& FakeHost::storage() {
  return *state_->storage;
}

api::asio::awaitable<void> FakeHost::run_blocking(std::function<void()> work) {
  // A fake: the work runs inline, on the calling thread.
  ++state_->blocking_runs;
  work();
  co_return;
}

api::asio::awaitable<bool> FakeHost::user_exists(std::string_view node) {
  co_return state_->users.contains(std::string(node));
}

api::asio::awaitable<FakeHost::AccountResult> FakeHost::create_account(std::string node, std::string password) {
  if (node.empty()) {
    co_return AccountResult::InvalidUsername;
  }
  if (password.empty()) {
    co_return AccountResult::InvalidPassword;
  }
  if (state_->users.contains(node)) {
    co_return AccountResult::Exists;
  }
  state_->users.insert(node);
  state_->passwords[node] = password;
  co_return AccountResult::Ok;
}

api::asio::awaitable<FakeHost::AccountResult> FakeHost::set_password(std::string node, std::string password) {
  if (!state_->users.contains(node)) {
    co_return AccountResult::NotFound;
  }
  if (password.empty()) {
    co_return AccountResult::InvalidPassword;
  }
  state_->passwords[node] = password;
  co_return AccountResult::Ok;
}

api::asio::awaitable<FakeHost::AccountResult> FakeHost::delete_account(std::string node) {
  if (state_->users.erase(node) == 0) {
    co_return AccountResult::NotFound;
  }
  state_->passwords.erase(node);
  co_return AccountResult::Ok;
}

std::string FakeHost::password_of(const std::string& node) const {
  auto it = state_->passwords.find(node);
  return it == state_->passwords.end() ? std::string() : it->second;
}

void FakeHost::add_event_handler(std::type_index type, std::shared_ptr<void> handler, int priority) {
  state_->event_handlers.push_back({type, priority, state_->seq++, std::move(handler)});
}

void FakeHost::for_each_event_handler(std::type_index type,
                                      const std::function<bool(const std::shared_ptr<void>&)>& visit) {
  std::vector<const State::EventEntry*> matching;
  for (const auto& e : state_->event_handlers) {
    if (e.type == type) {
      matching.push_back(&e);
    }
  }
  std::stable_sort(matching.begin(), matching.end(),
                   [](const auto* a, const auto* b) { return a->priority > b->priority; });
  for (const auto* e : matching) {
    if (visit(e->handler)) {
      return;
    }
  }
}

} // namespace cg::test
