#include "summarizer/openai_wire.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace cg::summarizer::wire {

using json = nlohmann::json;
using std::chrono::milliseconds;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
    s.remove_prefix(1);
  }
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
    s.remove_suffix(1);
  }
  return s;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// At most `max` bytes of `s`, cut at a UTF-8 character boundary, for messages.
std::string shorten(std::string_view s, std::size_t max = 300) {
  s = trim(s);
  if (s.size() <= max) {
    return std::string(s);
  }
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  return std::string(s.substr(0, cut)) + "…";
}

// A string or number member as text ("" when absent or null).
std::string text_of(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return {};
  }
  if (it->is_string()) {
    return it->get<std::string>();
  }
  if (it->is_number() || it->is_boolean()) {
    return it->dump();
  }
  return shorten(it->dump());
}

int int_of(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_number_integer()) {
    return it->get<int>();
  }
  return -1;
}

ErrorBody error_from_json(const json& j) {
  ErrorBody e;
  if (auto it = j.find("error"); it != j.end()) {
    if (it->is_string()) {
      e.message = it->get<std::string>();
    } else if (it->is_object()) {
      e.message = text_of(*it, "message");
      e.type = text_of(*it, "type");
      e.code = text_of(*it, "code");
      e.param = text_of(*it, "param");
    }
  }
  if (e.message.empty()) {
    e.message = text_of(j, "message");
  }
  if (e.message.empty()) {
    e.message = text_of(j, "detail");
  }
  if (e.type.empty()) {
    e.type = text_of(j, "type");
  }
  if (e.code.empty()) {
    e.code = text_of(j, "code");
  }
  return e;
}

void read_usage(const json& j, int& prompt, int& completion) {
  auto it = j.find("usage");
  if (it != j.end() && it->is_object()) {
    if (int p = int_of(*it, "prompt_tokens"); p >= 0) {
      prompt = p;
    }
    if (int c = int_of(*it, "completion_tokens"); c >= 0) {
      completion = c;
    }
  }
}

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

} // namespace

std::string request_body(const std::string& model, const Request& r, Backend::LimitParam limit, bool send_temperature,
                         bool stream) {
  json body;
  body["model"] = model;
  json messages = json::array();
  for (const auto& m : r.messages) {
    messages.push_back({{"role", m.role}, {"content", m.content}});
  }
  body["messages"] = std::move(messages);
  if (send_temperature) {
    body["temperature"] = r.temperature;
  }
  if (r.max_output_tokens > 0) {
    const char* key = limit == Backend::LimitParam::MaxTokens ? "max_tokens" : "max_completion_tokens";
    body[key] = r.max_output_tokens;
  }
  body["stream"] = stream;
  // Invalid UTF-8 in a message (a client's bytes) becomes U+FFFD rather than an exception.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

// --- SSE ---------------------------------------------------------------------------------------------------------

bool SseParser::feed(std::string_view bytes, std::vector<std::string>& events) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes[i] == '\n') { // the LF of a CRLF that arrived in two pieces
        ++i;
        continue;
      }
    }
    auto eol = bytes.find_first_of("\r\n", i);
    if (eol == std::string_view::npos) {
      line_.append(bytes.substr(i));
      break;
    }
    line_.append(bytes.substr(i, eol - i));
    after_cr_ = bytes[eol] == '\r';
    i = eol + 1;
    end_line(events);
    if (data_.size() > kMaxEvent) {
      return false;
    }
  }
  return line_.size() <= kMaxEvent && data_.size() <= kMaxEvent;
}

void SseParser::end_line(std::vector<std::string>& events) {
  if (line_.empty()) { // dispatch
    if (has_data_) {
      events.push_back(std::move(data_));
      data_.clear();
      has_data_ = false;
    }
    return;
  }
  if (line_.front() != ':') { // ":…" is a comment (keepalive)
    auto colon = line_.find(':');
    std::string_view field(line_);
    std::string_view value;
    if (colon != std::string::npos) {
      field = field.substr(0, colon);
      value = std::string_view(line_).substr(colon + 1);
      if (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
    }
    if (field == "data") {
      if (has_data_) {
        data_.push_back('\n');
      }
      data_.append(value);
      has_data_ = true;
    }
    // "event", "id", "retry" and unknown fields: nothing a chat stream needs.
  }
  line_.clear();
}

void SseParser::finish(std::vector<std::string>& events) {
  if (!line_.empty()) {
    end_line(events);
  }
  line_.clear();
  end_line(events); // the empty line the stream did not send
}

// --- errors ------------------------------------------------------------------------------------------------------

ErrorBody parse_error_body(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    ErrorBody e = error_from_json(j);
    if (!e.message.empty() || !e.code.empty() || !e.type.empty()) {
      return e;
    }
  }
  ErrorBody e;
  e.message = shorten(body);
  return e;
}

bool is_context_length(const ErrorBody& e) {
  if (e.code == "context_length_exceeded" || e.type == "exceed_context_size_error") {
    return true;
  }
  std::string m = lower(e.message);
  for (const char* phrase : {"context length", "maximum context", "context window", "context size",
                             "context_length_exceeded", "prompt is too long"}) {
    if (contains(m, phrase)) {
      return true;
    }
  }
  return false;
}

// --- the chunk stream --------------------------------------------------------------------------------------------

ChatStream::Status ChatStream::on_event(std::string_view data) {
  if (done_) {
    return Status::Ok; // nothing counts after [DONE]
  }
  ++events_;
  data = trim(data);
  if (data.empty()) {
    return Status::Ok;
  }
  if (data == "[DONE]") {
    done_ = true;
    return Status::Ok;
  }
  Status st = on_object(data);
  if (st == Status::Malformed && contains(data, "\n")) {
    // Some servers put several chunks into one event (data: lines without the empty line between them).
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start <= data.size()) {
      auto nl = data.find('\n', start);
      auto end = nl == std::string_view::npos ? data.size() : nl;
      if (auto line = trim(data.substr(start, end - start)); !line.empty()) {
        lines.push_back(line);
      }
      start = end + 1;
    }
    bool all_json =
        std::all_of(lines.begin(), lines.end(), [](std::string_view l) { return l == "[DONE]" || json::accept(l); });
    if (!all_json) {
      return st;
    }
    problem.clear();
    for (auto line : lines) {
      if (line == "[DONE]") {
        done_ = true;
        break;
      }
      if (Status s = on_object(line); s != Status::Ok) {
        return s;
      }
    }
    return Status::Ok;
  }
  return st;
}

ChatStream::Status ChatStream::on_object(std::string_view chunk) {
  json j = json::parse(chunk, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    problem = "a stream chunk is not a JSON object: " + shorten(chunk, 120);
    return Status::Malformed;
  }
  if (auto err = j.find("error"); err != j.end() && !err->is_null()) {
    stream_error = error_from_json(j);
    return Status::ServerError;
  }
  if (auto m = j.find("model"); m != j.end() && m->is_string()) {
    model = m->get<std::string>();
  }
  read_usage(j, prompt_tokens, completion_tokens);
  auto choices = j.find("choices");
  if (choices == j.end() || choices->is_null()) {
    return Status::Ok; // e.g. the usage-only chunk
  }
  if (!choices->is_array()) {
    problem = "\"choices\" is not an array";
    return Status::Malformed;
  }
  if (choices->empty()) {
    return Status::Ok;
  }
  const json& choice = (*choices)[0];
  if (!choice.is_object()) {
    problem = "a choice is not an object";
    return Status::Malformed;
  }
  saw_choice = true;
  if (auto delta = choice.find("delta"); delta != choice.end() && !delta->is_null()) {
    if (!delta->is_object()) {
      problem = "\"delta\" is not an object";
      return Status::Malformed;
    }
    if (auto content = delta->find("content"); content != delta->end() && !content->is_null()) {
      if (!content->is_string()) {
        problem = "\"delta.content\" is not a string";
        return Status::Malformed;
      }
      text += content->get_ref<const std::string&>();
    }
    // reasoning_content / reasoning: the model's thinking, not the answer.
  }
  if (auto fr = choice.find("finish_reason"); fr != choice.end() && fr->is_string()) {
    finish_reason = fr->get<std::string>();
  }
  return Status::Ok;
}

// --- the body of a 2xx answer ------------------------------------------------------------------------------------

BodyReader::BodyReader(std::string_view content_type) {
  std::string ct = lower(content_type);
  if (ct.rfind("text/event-stream", 0) == 0) {
    mode_ = Mode::Sse;
  } else if (contains(ct, "json")) {
    mode_ = Mode::Json;
  }
}

bool BodyReader::started() const {
  switch (mode_) {
  case Mode::Sse:
    return stream_.events() > 0;
  case Mode::Json:
    return !json_.empty();
  case Mode::Unknown:
    break;
  }
  return false;
}

bool BodyReader::feed(std::string_view bytes) {
  if (failed_) {
    return false;
  }
  if (mode_ == Mode::Unknown) {
    auto first = std::find_if_not(bytes.begin(), bytes.end(), is_ws);
    if (first == bytes.end()) {
      return true; // only blanks so far
    }
    mode_ = (*first == '{' || *first == '[') ? Mode::Json : Mode::Sse;
    bytes.remove_prefix(static_cast<std::size_t>(first - bytes.begin()));
  }
  if (mode_ == Mode::Json) {
    if (json_.size() + bytes.size() > kMaxJson) {
      failed_ = true;
      fail_status_ = Outcome::Status::Malformed;
      problem_ = "the answer is larger than 8 MiB";
      return false;
    }
    json_.append(bytes);
    return true;
  }
  return feed_sse(bytes);
}

bool BodyReader::feed_sse(std::string_view bytes) {
  pending_.clear();
  if (!sse_.feed(bytes, pending_)) {
    failed_ = true;
    fail_status_ = Outcome::Status::Malformed;
    problem_ = "a stream event is larger than 4 MiB";
    return false;
  }
  return take_events();
}

bool BodyReader::take_events() {
  for (const auto& ev : pending_) {
    switch (stream_.on_event(ev)) {
    case ChatStream::Status::Ok:
      break;
    case ChatStream::Status::Malformed:
      failed_ = true;
      fail_status_ = Outcome::Status::Malformed;
      problem_ = stream_.problem;
      return false;
    case ChatStream::Status::ServerError:
      failed_ = true;
      fail_status_ = Outcome::Status::ServerError;
      problem_ = stream_.stream_error.message;
      return false;
    }
  }
  pending_.clear();
  if (stream_.text.size() > kMaxJson) {
    failed_ = true;
    fail_status_ = Outcome::Status::Malformed;
    problem_ = "the answer is larger than 8 MiB";
    return false;
  }
  return true;
}

BodyReader::Outcome BodyReader::finish() {
  Outcome out;
  if (!failed_ && mode_ == Mode::Sse) {
    pending_.clear();
    sse_.finish(pending_);
    take_events();
  }
  if (failed_) {
    out.status = fail_status_;
    out.problem = problem_;
    out.error = stream_.stream_error;
    return out;
  }
  if (mode_ == Mode::Unknown) {
    out.status = Outcome::Status::Malformed;
    out.problem = "the answer is empty";
    return out;
  }
  if (mode_ == Mode::Sse) {
    if (!stream_.done() && stream_.finish_reason.empty()) {
      out.status = Outcome::Status::Incomplete;
      out.problem = "the stream ended before [DONE] or a finish_reason";
      return out;
    }
    if (!stream_.saw_choice) {
      out.status = Outcome::Status::Malformed;
      out.problem = "the stream holds no choice";
      return out;
    }
    out.text = strip_think(stream_.text);
    out.finish_reason = stream_.finish_reason;
    out.model = stream_.model;
    out.prompt_tokens = stream_.prompt_tokens;
    out.completion_tokens = stream_.completion_tokens;
    return out;
  }
  json j = json::parse(json_, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    out.status = Outcome::Status::Malformed;
    out.problem = "the answer is not a JSON object: " + shorten(json_, 120);
    return out;
  }
  if (auto err = j.find("error"); err != j.end() && !err->is_null()) {
    out.status = Outcome::Status::ServerError;
    out.error = error_from_json(j);
    out.problem = out.error.message;
    return out;
  }
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object()) {
    out.status = Outcome::Status::Malformed;
    out.problem = "the answer holds no choice";
    return out;
  }
  const json& choice = (*choices)[0];
  auto message = choice.find("message");
  if (message == choice.end() || !message->is_object()) {
    out.status = Outcome::Status::Malformed;
    out.problem = "the choice holds no message";
    return out;
  }
  if (auto content = message->find("content"); content != message->end() && !content->is_null()) {
    if (!content->is_string()) {
      out.status = Outcome::Status::Malformed;
      out.problem = "\"message.content\" is not a string";
      return out;
    }
    out.text = strip_think(content->get_ref<const std::string&>());
  }
  out.finish_reason = text_of(choice, "finish_reason");
  out.model = text_of(j, "model");
  read_usage(j, out.prompt_tokens, out.completion_tokens);
  return out;
}

// --- <think> -----------------------------------------------------------------------------------------------------

std::string strip_think(std::string_view text) {
  constexpr std::string_view open = "<think>";
  constexpr std::string_view close = "</think>";
  std::string out;
  std::size_t i = 0;
  auto first_open = text.find(open);
  auto first_close = text.find(close);
  if (first_close != std::string_view::npos && first_close < first_open) {
    i = first_close + close.size(); // "reasoning…</think>answer": the template opened the block
  }
  while (i < text.size()) {
    auto o = text.find(open, i);
    if (o == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, o - i));
    auto c = text.find(close, o + open.size());
    if (c == std::string_view::npos) {
      break; // unclosed: the rest is thinking
    }
    i = c + close.size();
  }
  auto keep = std::find_if_not(out.begin(), out.end(), is_ws);
  out.erase(out.begin(), keep);
  return out;
}

// --- rate limits -------------------------------------------------------------------------------------------------

std::optional<milliseconds> parse_duration(std::string_view text) {
  text = trim(text);
  if (text.empty()) {
    return std::nullopt;
  }
  double total_ms = 0;
  std::size_t i = 0;
  int parts = 0;
  while (i < text.size() && parts < 8) {
    double value = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), value);
    if (ec != std::errc() || value < 0) {
      return std::nullopt;
    }
    i = static_cast<std::size_t>(end - text.data());
    std::size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    std::string_view unit = text.substr(unit_start, i - unit_start);
    double factor = 0;
    if (unit == "h") {
      factor = 3600e3;
    } else if (unit == "m") {
      factor = 60e3;
    } else if (unit == "s") {
      factor = 1e3;
    } else if (unit == "ms") {
      factor = 1;
    } else if (unit == "us") {
      factor = 1e-3;
    } else if (unit == "ns") {
      factor = 1e-6;
    } else {
      return std::nullopt;
    }
    total_ms += value * factor;
    ++parts;
  }
  if (i != text.size() || !std::isfinite(total_ms) || total_ms > 1e12) {
    return std::nullopt;
  }
  return milliseconds(static_cast<long long>(std::ceil(total_ms)));
}

namespace {

std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) || v < 0 || v > 1e12) {
    return std::nullopt;
  }
  return v;
}

milliseconds until(std::chrono::system_clock::time_point when, std::chrono::system_clock::time_point now) {
  auto d = std::chrono::duration_cast<milliseconds>(when - now);
  return std::max(d, milliseconds(0));
}

std::optional<milliseconds> reset_header(const Headers& h, const char* name,
                                         std::chrono::system_clock::time_point now) {
  auto it = h.find(name);
  if (it == h.end()) {
    return std::nullopt;
  }
  if (auto n = parse_number(it->second)) {
    if (*n > 1e9) { // a Unix time
      return until(std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<long long>(*n))), now);
    }
    return milliseconds(static_cast<long long>(std::ceil(*n * 1000)));
  }
  return parse_duration(it->second);
}

} // namespace

std::optional<milliseconds> retry_after(const Headers& headers, std::chrono::system_clock::time_point now) {
  if (auto it = headers.find("retry-after-ms"); it != headers.end()) {
    if (auto n = parse_number(it->second)) {
      return milliseconds(static_cast<long long>(std::ceil(*n)));
    }
  }
  if (auto it = headers.find("retry-after"); it != headers.end()) {
    if (auto n = parse_number(it->second)) {
      return milliseconds(static_cast<long long>(std::ceil(*n * 1000)));
    }
    std::string date(trim(it->second));
    time_t t = curl_getdate(date.c_str(), nullptr); // IMF-fixdate, RFC 850 and asctime forms
    if (t != -1) {
      return until(std::chrono::system_clock::from_time_t(t), now);
    }
  }
  std::optional<milliseconds> best;
  for (const char* name : {"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-reset"}) {
    if (auto d = reset_header(headers, name, now); d && (!best || *d > *best)) {
      best = d;
    }
  }
  return best;
}

// --- classification ----------------------------------------------------------------------------------------------

Classified classify(const std::string& backend, long status, const Headers& headers, std::string_view body,
                    Backend::LimitParam sent_limit, bool sent_temperature, std::chrono::system_clock::time_point now) {
  ErrorBody eb = parse_error_body(body);
  Classified c{};
  Error& e = c.error;
  e.http_status = static_cast<int>(status);
  std::string prefix = "backend '" + backend + "': HTTP " + std::to_string(status);
  std::string detail = eb.message.empty() ? std::string() : ": " + eb.message;
  std::string m = lower(eb.message);
  const bool unsupported = eb.code == "unsupported_parameter" || eb.code == "unsupported_value" ||
                           contains(m, "unsupported") || contains(m, "not supported") ||
                           contains(m, "does not support") || contains(m, "unrecognized") || contains(m, "unknown") ||
                           contains(m, "not permitted") || contains(m, "not allowed");

  if (eb.code == "insufficient_quota" || eb.type == "insufficient_quota") {
    e.kind = Error::Kind::Quota;
    e.message = prefix + " (quota exhausted)" + detail;
  } else if (status == 429) {
    e.kind = Error::Kind::RateLimited;
    e.message = prefix + " (rate limited)" + detail;
    e.retry_after = retry_after(headers, now);
  } else if (status >= 500 || status == 408 || status == 409 || status == 425) {
    e.kind = Error::Kind::Server;
    e.message = prefix + detail;
    e.retry_after = retry_after(headers, now);
  } else if (status >= 400 && (status == 413 || is_context_length(eb))) {
    e.kind = Error::Kind::ContextLength;
    e.message = prefix + " (the prompt is too long for the model)" + detail;
  } else if (status >= 400) {
    e.kind = Error::Kind::Config;
    const char* hint = "";
    if (status == 401 || status == 403) {
      hint = " (check the backend's api_key)";
    } else if (status == 404) {
      hint = " (check the backend's base_url and model)";
    }
    e.message = prefix + hint + detail;
    if (status == 400 || status == 422) {
      std::string_view sent = sent_limit == Backend::LimitParam::MaxTokens ? "max_tokens" : "max_completion_tokens";
      if ((eb.param == sent || contains(m, sent)) && (unsupported || contains(m, "extra inputs"))) {
        c.fix = Classified::Fix::SwitchLimitParam;
      } else if (sent_temperature && (eb.param == "temperature" || contains(m, "temperature")) &&
                 (unsupported || contains(m, "only the default") || contains(m, "extra inputs"))) {
        c.fix = Classified::Fix::DropTemperature;
      }
    }
  } else {
    e.kind = Error::Kind::Protocol;
    e.message = prefix + " (unexpected status)" + detail;
  }
  return c;
}

} // namespace cg::summarizer::wire
