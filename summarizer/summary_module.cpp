// The 'summary' module: the 'Summarize a conversation' ad-hoc command (summarizer/summary_module.hpp).
#include "summarizer/summary_module.hpp"

#include "server/api/adhoc.hpp"
#include "server/api/dataforms.hpp"
#include "server/api/datetime.hpp"
#include "server/api/xml.hpp"
#include "summarizer/llm_client.hpp"
#include "summarizer/transcript.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace cg::summarizer {

namespace {

namespace asio = boost::asio;
namespace adhoc = api::adhoc;
namespace df = api::dataforms;
using adhoc::Action;
using adhoc::CommandRequest;
using adhoc::CommandResponse;
using adhoc::NoteType;
using api::Jid;

constexpr std::size_t kRecentScan = 200;          // newest archive items scanned for the correspondents list
constexpr std::size_t kRecentCorrespondents = 10; // offered in the form
constexpr int kMaxOutputTokens = 1024;

const std::string kNotConfigured = "The summary service is not configured correctly; the administrator has been told.";

struct State {
  explicit State(api::ModuleContext& c) : ctx(c), archive(c.storage().archive(archive_store)) {}
  api::ModuleContext& ctx;
  std::shared_ptr<storage::ArchiveStore> archive;
  std::string problem; // why the service is not usable ("" when it is)
  std::string host;    // where the data goes (the endpoint's host)
  std::string model;
  std::size_t context_tokens = 8192;
  std::size_t max_messages = 500;
  std::unique_ptr<LlmClient> llm;
};

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r\n");
  auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool valid_lang(std::string_view s) {
  return !s.empty() && s.size() <= 35 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string destination(const State& st) {
  return "Messages of the conversation you choose (except end-to-end encrypted ones) are sent to the AI service at " +
         st.host + " (model " + st.model + ").";
}

// The bare JIDs the caller corresponded with most recently, newest first.
asio::awaitable<std::vector<std::string>> recent_correspondents(std::shared_ptr<State> st, Jid owner) {
  std::vector<storage::ArchiveItem> items;
  std::string failure;
  const std::string host = st->ctx.host();
  std::function<void()> job = [&] {
    try {
      storage::ArchiveQuery q;
      q.limit = kRecentScan;
      q.from_end = true;
      items = st->archive->query(host, owner.node(), q).items;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  co_await st->ctx.run_blocking(std::move(job));
  if (!failure.empty()) {
    st->ctx.log().error("summary: reading the archive of {} failed: {}", owner.bare_str(), failure);
  }
  std::vector<std::string> out;
  for (auto it = items.rbegin(); it != items.rend() && out.size() < kRecentCorrespondents; ++it) {
    if (it->with.empty() || it->kind == "groupchat" || it->kind == "error") {
      continue;
    }
    if (std::find(out.begin(), out.end(), it->with) == out.end()) {
      out.push_back(it->with);
    }
  }
  co_return out;
}

df::Form make_form(const State& st, const std::vector<std::string>& recent, const std::string& lang) {
  df::Form form;
  form.type = df::FormType::Form;
  form.title = "Summarize a conversation";
  form.instructions.push_back(destination(st));
  form.add(df::Field::hidden("FORM_TYPE", std::string(summarize_node)));
  auto& conv = form.add(df::Field::make(df::FieldType::ListSingle, "conversation", "Conversation"));
  for (const auto& jid : recent) {
    conv.with_option(jid, jid);
  }
  if (!recent.empty()) {
    conv.with_value(recent.front());
  }
  form.add(df::Field::make(df::FieldType::JidSingle, "jid", "Or another address")
               .with_desc("Used instead of the conversation above when given"));
  form.add(df::Field::make(df::FieldType::ListSingle, "scope", "Scope")
               .with_option("last-hours", "The last hours")
               .with_option("last-messages", "The last messages")
               .with_value("last-hours"));
  df::Validation range;
  range.datatype = "xs:integer";
  range.method = df::Validation::Method::Range;
  range.min = "1";
  range.max = "100000";
  form.add(df::Field::make(df::FieldType::TextSingle, "count", "How many hours or messages")
               .with_value("24")
               .with_validation(range));
  form.add(df::Field::make(df::FieldType::ListSingle, "style", "Style")
               .with_option("brief", "Brief")
               .with_option("standard", "Standard")
               .with_option("detailed", "Detailed")
               .with_option("action-items", "Action items")
               .with_value("standard"));
  form.add(df::Field::make(df::FieldType::TextSingle, "language", "Language of the summary").with_value(lang));
  return form;
}

// What the caller asked for: the form's values, the definition's defaults for anything not submitted.
struct Choice {
  std::string with;
  bool by_hours = true;
  std::int64_t count = 24;
  Style style = Style::Standard;
  std::string language = "en";
};

std::string value_of(const df::Form& definition, const std::optional<df::Form>& submitted, std::string_view var) {
  if (submitted) {
    if (const auto* f = submitted->field(var); f != nullptr && f->value() != nullptr) {
      return trim(*f->value());
    }
  }
  const auto* f = definition.field(var);
  return f == nullptr || f->value() == nullptr ? std::string() : *f->value();
}

std::variant<Choice, std::string> read_choice(const df::Form& definition, const std::optional<df::Form>& submitted) {
  Choice c;
  const std::string jid_text = value_of(definition, submitted, "jid");
  if (!jid_text.empty()) {
    auto jid = Jid::parse(jid_text);
    if (!jid || !jid->has_node()) {
      return std::string("'" + jid_text + "' is not an address of a person");
    }
    c.with = jid->bare_str();
  } else {
    c.with = value_of(definition, submitted, "conversation");
  }
  if (c.with.empty()) {
    return std::string("You have no recent conversation in your archive; give an address.");
  }
  c.by_hours = value_of(definition, submitted, "scope") != "last-messages";
  try {
    c.count = std::stoll(value_of(definition, submitted, "count"));
  } catch (const std::exception&) {
    return std::string("'count' is not a number");
  }
  if (c.count < 1) {
    return std::string("'count' must be at least 1");
  }
  const std::string style = value_of(definition, submitted, "style");
  for (Style s : {Style::Brief, Style::Standard, Style::Detailed, Style::ActionItems}) {
    if (style == to_string(s)) {
      c.style = s;
    }
  }
  const std::string lang = value_of(definition, submitted, "language");
  c.language = valid_lang(lang) ? lang : "en";
  return c;
}

std::string error_text(const Error& e) {
  switch (e.kind) {
  case Error::Kind::Config:
    return kNotConfigured;
  case Error::Kind::RateLimited:
  case Error::Kind::Quota:
    return "The summary service is busy right now (rate limit reached); please try again later.";
  case Error::Kind::ContextLength:
    return "The conversation is too long for the model; try a shorter period or fewer messages.";
  case Error::Kind::Timeout:
    return "The summary service did not answer in time; please try again later.";
  case Error::Kind::Server:
  case Error::Kind::Network:
  case Error::Kind::Protocol:
    return "The summary service is unavailable right now; please try again later.";
  case Error::Kind::Cancelled:
    return "The summary was cancelled (the server is shutting down); please try again later.";
  }
  return "The summary failed.";
}

asio::awaitable<CommandResponse> summarize(std::shared_ptr<State> st, CommandRequest req) {
  const Jid owner = req.requester.bare();
  if (!st->problem.empty()) {
    co_return CommandResponse::completed().with_note(NoteType::Error, kNotConfigured).with_lang("en");
  }
  const std::string lang = valid_lang(req.lang) ? req.lang : std::string("en");
  if (req.action == Action::Execute) {
    auto recent = co_await recent_correspondents(st, owner);
    df::Form form = make_form(*st, recent, lang);
    df::Form copy = form;
    co_return CommandResponse::executing(std::move(form), {Action::Complete})
        .with_state(std::move(copy))
        .with_note(NoteType::Info, destination(*st));
  }

  // The next stage: the submitted form (or none: the defaults).
  const auto* definition = std::any_cast<df::Form>(&req.state);
  if (definition == nullptr) {
    co_return CommandResponse::failed(adhoc::bad_payload("no form was offered"));
  }
  if (req.form) {
    if (auto problem = df::validate(*definition, *req.form); problem) {
      co_return CommandResponse::failed(problem->error);
    }
  }
  auto parsed = read_choice(*definition, req.form);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    co_return CommandResponse::failed(adhoc::bad_payload(*why));
  }
  const Choice choice = std::get<Choice>(parsed);

  // Only the caller's own archive, with that correspondent.
  storage::ArchiveQuery q;
  q.with = choice.with;
  q.from_end = true;
  q.limit = st->max_messages;
  if (choice.by_hours) {
    q.start = api::now_micros() - choice.count * 3600LL * 1000000LL;
  } else {
    q.limit = std::min<std::size_t>(st->max_messages, static_cast<std::size_t>(choice.count));
  }
  std::vector<storage::ArchiveItem> items;
  std::string failure;
  const std::string host = st->ctx.host();
  std::function<void()> job = [&] {
    try {
      items = st->archive->query(host, owner.node(), q).items;
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  co_await st->ctx.run_blocking(std::move(job));
  if (!failure.empty()) {
    st->ctx.log().error("summary: reading the archive of {} failed: {}", owner.bare_str(), failure);
    co_return CommandResponse::completed().with_note(NoteType::Error, "Your message archive could not be read.");
  }

  // The transcript's share of the context window (about 3 characters a token, the output and instructions apart).
  const std::size_t budget_tokens = st->context_tokens > static_cast<std::size_t>(kMaxOutputTokens) + 1000
                                        ? st->context_tokens - kMaxOutputTokens - 600
                                        : 400;
  Transcript t = build_transcript(items, owner, choice.with, random_token(), budget_tokens * 3);
  CommandResponse done = CommandResponse::completed();
  done.lang = lang;
  if (t.encrypted > 0) {
    done.with_note(NoteType::Info, std::to_string(t.encrypted) +
                                       " end-to-end encrypted message(s) were not sent to the AI service and are not "
                                       "in the summary.");
  }
  if (t.dropped_oldest > 0) {
    done.with_note(NoteType::Warn, std::to_string(t.dropped_oldest) +
                                       " older message(s) did not fit the model's context and are not in the summary.");
  }
  if (t.lines.empty()) {
    co_return done.with_note(NoteType::Info,
                             "There is no message with " + choice.with + " to summarize in the chosen period.");
  }

  Prompt prompt = build_prompt(t, choice.style, choice.language);
  Request request;
  request.messages.push_back({"system", std::move(prompt.system)});
  request.messages.push_back({"user", std::move(prompt.user)});
  request.max_output_tokens = kMaxOutputTokens;
  Result result = co_await st->llm->complete(std::move(request));
  if (const auto* err = std::get_if<Error>(&result)) {
    if (err->kind == Error::Kind::Config) {
      st->ctx.log().error("summary: the LLM endpoint refused the request (HTTP {}): {} — check modules.summary",
                          err->http_status, err->message);
    } else {
      st->ctx.log().warn("summary: the LLM request of {} failed (HTTP {}): {}", owner.bare_str(), err->http_status,
                         err->message);
    }
    co_return done.with_note(NoteType::Error, error_text(*err));
  }
  const auto& response = std::get<Response>(result);
  const std::string model = response.model.empty() ? st->model : response.model;
  std::vector<std::string> lines = sanitize_output(response.text, t.refs, t.token);

  df::Form form;
  form.type = df::FormType::Result;
  form.title = "Conversation summary";
  form.add(df::Field::hidden("FORM_TYPE", std::string(summarize_node)));
  const std::string label = "AI-generated summary of " + std::to_string(t.lines.size()) + " messages with " +
                            choice.with + ", from " + api::format_datetime(t.first_when(), 0) + " to " +
                            api::format_datetime(t.last_when(), 0) + " (model " + model + ")";
  form.add(df::Field::make(df::FieldType::Fixed, "label").with_value(label));
  form.add(df::Field::make(df::FieldType::TextMulti, "summary", "Summary").with_values(lines));
  done.with_form(std::move(form));
  done.notes.insert(done.notes.begin(), {NoteType::Info, label + ". Sent to " + st->host + "."});
  if (response.truncated) {
    done.with_note(NoteType::Warn, "The summary was cut short by the model's output limit.");
  }
  if (lines.empty()) {
    done.with_note(NoteType::Warn, "The model gave no usable answer.");
  }
  co_return done;
}

std::string read_key_file(const std::string& path, std::string& problem) {
  std::ifstream in(path);
  if (!in) {
    problem = "cannot read modules.summary.api_key_file '" + path + "'";
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string key = trim(ss.str());
  if (key.empty()) {
    problem = "modules.summary.api_key_file '" + path + "' is empty";
  }
  return key;
}

class SummaryModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {
        "summary",
        "AI summaries of conversations (an ad-hoc command; sends the chosen messages to an OpenAI-compatible endpoint)",
        {},
        {"adhoc"},
        {api::opt_string("base_url", "",
                         "OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (\"/chat/completions\" is "
                         "appended); conversations are sent there; empty: the command answers 'not configured'"),
         api::opt_string("model", "", "The model to ask"),
         api::opt_string("api_key_file", "", "A file holding the API key (the key is never written in this file)"),
         api::opt_string("api_key_env", "", "An environment variable holding the API key (when no api_key_file)"),
         api::opt_int("context_tokens", 8192, 1024, 10000000, "The model's context window, in tokens"),
         api::opt_bool("stream", true, "Stream the answer (server-sent events)"),
         api::opt_int("timeout", 120, 5, 3600, "Seconds the whole request to the model may take"),
         api::opt_int("max_messages", 500, 1, 100000, "Most archived messages read for one summary")},
        false};
  }

  void load(api::ModuleContext& ctx) override {
    auto st = std::make_shared<State>(ctx);
    const auto base_url = ctx.option<std::string>("base_url");
    st->model = ctx.option<std::string>("model");
    st->host = url_host(base_url);
    st->context_tokens = static_cast<std::size_t>(ctx.option<std::int64_t>("context_tokens"));
    st->max_messages = static_cast<std::size_t>(ctx.option<std::int64_t>("max_messages"));
    Backend backend;
    backend.name = st->host;
    backend.base_url = base_url;
    backend.model = st->model;
    backend.context_tokens = st->context_tokens;
    backend.stream = ctx.option<bool>("stream");
    backend.total_timeout = std::chrono::seconds(ctx.option<std::int64_t>("timeout"));
    backend.first_token_timeout = std::min(backend.first_token_timeout, backend.total_timeout);
    if (base_url.empty() || st->model.empty()) {
      st->problem = "modules.summary.base_url and modules.summary.model must be set";
    } else if (st->host.empty()) {
      st->problem = "modules.summary.base_url '" + base_url + "' is not an http:// or https:// URL";
    } else if (const auto file = ctx.option<std::string>("api_key_file"); !file.empty()) {
      backend.api_key = read_key_file(file, st->problem);
    } else if (const auto env = ctx.option<std::string>("api_key_env"); !env.empty()) {
      const char* value = std::getenv(env.c_str());
      if (value == nullptr || *value == '\0') {
        st->problem = "the environment variable " + env + " (modules.summary.api_key_env) is not set";
      } else {
        backend.api_key = trim(value);
      }
    }
    if (st->problem.empty()) {
      st->llm = std::make_unique<LlmClient>(ctx.executor(), std::vector<Backend>{backend});
      ctx.log().info("summary: conversations are summarised by {} at {}", st->model, st->host);
    } else {
      ctx.log().error("summary: the summary command is not usable: {}", st->problem);
    }
    adhoc::add_command(ctx, {std::string(summarize_node), "Summarize a conversation", adhoc::local_users(ctx.host()),
                             [st](CommandRequest r) { return summarize(st, std::move(r)); }});
  }
};

} // namespace

std::string url_host(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    return {};
  }
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    rest = rest.substr(at + 1); // never show credentials in a URL
  }
  return std::string(rest);
}

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<SummaryModule>();
}

} // namespace cg::summarizer
