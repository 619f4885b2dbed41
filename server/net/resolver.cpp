#include "server/net/resolver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <idna.h>
#include <spdlog/spdlog.h>
#include <unbound.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <stdexcept>

namespace cg::net {

namespace asio = boost::asio;

namespace {

constexpr int kTypeA = 1;
constexpr int kTypeAAAA = 28;
constexpr int kTypeSRV = 33;
constexpr int kClassIN = 1;
constexpr std::uint16_t kDefaultS2SPort = 5269;

struct ResultDeleter {
  void operator()(ub_result* r) const { ub_resolve_free(r); }
};
using ResultPtr = std::unique_ptr<ub_result, ResultDeleter>;

struct CtxDeleter {
  void operator()(ub_ctx* c) const { ub_ctx_delete(c); }
};
using CtxPtr = std::unique_ptr<ub_ctx, CtxDeleter>;

std::string ascii_lower(std::string s) {
  for (auto& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<std::uint16_t>(value);
}

// An IP literal, also in brackets ("[::1]").
std::optional<asio::ip::address> ip_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return std::nullopt;
  }
  return addr;
}

// "host", "host:port", "[v6]", "[v6]:port", "host@port", "v6@port", "v6" -> host and optional port. `host` keeps no
// brackets. Throws on a malformed port or a missing host.
std::pair<std::string, std::optional<std::uint16_t>> split_host_port(const std::string& spec, const char* what) {
  auto bad = [&](const char* why) { return std::runtime_error(std::string(what) + " \"" + spec + "\": " + why); };
  std::string host;
  std::string port;
  bool has_port = false;
  if (!spec.empty() && spec.front() == '[') {
    auto close = spec.find(']');
    if (close == std::string::npos) {
      throw bad("missing ']'");
    }
    host = spec.substr(1, close - 1);
    std::string rest = spec.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':' && rest[0] != '@') {
        throw bad("expected ':port' after ']'");
      }
      port = rest.substr(1);
      has_port = true;
    }
  } else if (auto at = spec.rfind('@'); at != std::string::npos) {
    host = spec.substr(0, at);
    port = spec.substr(at + 1);
    has_port = true;
  } else if (std::count(spec.begin(), spec.end(), ':') == 1) {
    auto colon = spec.find(':');
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
    has_port = true;
  } else {
    host = spec;
  }
  if (host.empty()) {
    throw bad("no host");
  }
  if (host.find_first_of(" \t\r\n/") != std::string::npos) {
    throw bad("not a host name or address");
  }
  std::optional<std::uint16_t> p;
  if (has_port) {
    p = parse_port(port);
    if (!p) {
      throw bad("the port must be a number from 1 to 65535");
    }
  }
  return {host, p};
}

// The name as libunbound wants it: ASCII (IDNA A-labels), no trailing dot. nullopt if it is no valid DNS name.
std::optional<std::string> query_name(std::string name) {
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  if (name.empty() || name.find('\0') != std::string::npos) {
    return std::nullopt;
  }
  if (!is_ascii(name)) {
    char* out = nullptr;
    int rc = idna_to_ascii_8z(name.c_str(), &out, IDNA_ALLOW_UNASSIGNED);
    std::unique_ptr<char, decltype(&std::free)> owned(out, &std::free);
    if (rc != IDNA_SUCCESS || out == nullptr) {
      return std::nullopt;
    }
    name = out;
  }
  if (name.size() > 253) {
    return std::nullopt;
  }
  return ascii_lower(std::move(name));
}

// SRV RDATA (RFC 2782): priority, weight, port (16 bits each), then the target as an uncompressed wire-format name.
std::optional<SrvRecord> parse_srv(const char* data, int len, bool direct_tls) {
  if (data == nullptr || len < 7) {
    return std::nullopt;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  SrvRecord r;
  r.priority = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
  r.weight = static_cast<std::uint16_t>(p[2] << 8 | p[3]);
  r.port = static_cast<std::uint16_t>(p[4] << 8 | p[5]);
  r.direct_tls = direct_tls;
  int pos = 6;
  for (;;) {
    if (pos >= len) {
      return std::nullopt;
    }
    unsigned label = p[pos++];
    if (label == 0) {
      break;
    }
    if ((label & 0xC0) != 0 || pos + static_cast<int>(label) > len) {
      return std::nullopt; // compression pointers do not occur in libunbound's rdata
    }
    if (!r.target.empty()) {
      r.target += '.';
    }
    r.target.append(data + pos, label);
    pos += static_cast<int>(label);
  }
  if (r.target.empty()) {
    r.target = ".";
  }
  return r;
}

} // namespace

std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, std::mt19937& rng) {
  std::stable_sort(records.begin(), records.end(),
                   [](const SrvRecord& a, const SrvRecord& b) { return a.priority < b.priority; });
  std::vector<SrvRecord> out;
  out.reserve(records.size());
  auto group_begin = records.begin();
  while (group_begin != records.end()) {
    auto group_end = std::find_if(group_begin, records.end(),
                                  [&](const SrvRecord& r) { return r.priority != group_begin->priority; });
    // RFC 2782: "arrange all SRV RRs (that have not been ordered yet) in any order, except that all those with
    // weight 0 are placed at the beginning of the list."
    std::vector<SrvRecord> group(group_begin, group_end);
    std::stable_partition(group.begin(), group.end(), [](const SrvRecord& r) { return r.weight == 0; });
    while (!group.empty()) {
      std::uint32_t sum = 0;
      for (const auto& r : group) {
        sum += r.weight;
      }
      // "Then choose a uniform random number between 0 and the sum computed (inclusive), and select the RR whose
      // running sum value is the first in the selected order which is greater than or equal to the random number
      // selected."
      std::uniform_int_distribution<std::uint32_t> pick(0, sum);
      std::uint32_t chosen = pick(rng);
      std::uint32_t running = 0;
      auto it = group.begin();
      for (; it != group.end(); ++it) {
        running += it->weight;
        if (running >= chosen) {
          break;
        }
      }
      out.push_back(std::move(*it));
      group.erase(it);
    }
    group_begin = group_end;
  }
  return out;
}

namespace {

// One answered (or not) query.
struct Answer {
  bool answered = false; // false: no answer before the deadline (or the resolver was shut down)
  int err = 0;           // libunbound error (UB_*), 0 when a DNS answer arrived
  ResultPtr result;
};

struct Question {
  std::string name;
  int type = 0;
};

} // namespace

struct Resolver::Impl : std::enable_shared_from_this<Impl> {
  using Strand = asio::strand<asio::any_io_executor>;

  // One lookup's concurrent queries; lives in the lookup coroutine's frame, touched only on the strand.
  struct Batch;
  struct Pending {
    Impl* impl = nullptr;
    Batch* batch = nullptr;
    int async_id = 0;
    bool in_flight = false;
    Answer answer;
  };
  struct Batch {
    explicit Batch(const Strand& s) : timer(s) {}
    asio::steady_timer timer;
    std::size_t outstanding = 0;
  };

  Impl(asio::any_io_executor ex, ResolverOptions o);
  ~Impl();

  asio::awaitable<std::vector<Answer>> run_queries(std::vector<Question> questions);
  void arm();
  void on_readable(boost::system::error_code ec);
  void shutdown();
  static void on_result(void* data, int err, ub_result* result);
  std::string describe(const Answer& a) const;

  static asio::awaitable<std::vector<asio::ip::address>> lookup_addresses(std::shared_ptr<Impl> self, std::string host);
  static asio::awaitable<S2STargets> lookup_s2s(std::shared_ptr<Impl> self, std::string domain);

  ResolverOptions opts;
  std::shared_ptr<spdlog::logger> log;
  std::map<std::string, S2STarget> routes; // normalised domain -> target
  Strand strand;
  CtxPtr ctx;
  asio::posix::stream_descriptor fd;
  // Strand-only state.
  std::size_t in_flight = 0; // queries started and neither answered nor cancelled
  bool waiting = false;      // an async_wait on fd is pending
  bool closed = false;
  std::set<Batch*> batches;
  std::mt19937 rng{std::random_device{}()};
};

namespace {

void set_option(ub_ctx* ctx, const char* option, const char* value) {
  int rc = ub_ctx_set_option(ctx, option, value);
  if (rc != 0) {
    throw std::runtime_error(std::string("resolver: cannot set libunbound option ") + option + " " + value + ": " +
                             ub_strerror(rc));
  }
}

CtxPtr make_context(const ResolverOptions& opts, spdlog::logger& log) {
  if (opts.timeout <= std::chrono::milliseconds::zero()) {
    throw std::runtime_error("resolver: the timeout must be positive");
  }
  CtxPtr ctx(ub_ctx_create());
  if (!ctx) {
    throw std::runtime_error("resolver: cannot create a libunbound context");
  }
  ub_ctx* c = ctx.get();
  // A worker thread of libunbound's own (not a forked process); answers come back through ub_fd().
  if (int rc = ub_ctx_async(c, 1); rc != 0) {
    throw std::runtime_error(std::string("resolver: ub_ctx_async: ") + ub_strerror(rc));
  }
  // Forwarders and resolv.conf entries may well be on loopback (127.0.0.53, a local unbound, a test stub).
  set_option(c, "do-not-query-localhost:", "no");
  if (opts.dnssec) {
    std::ifstream probe(opts.trust_anchor_file);
    if (!probe) {
      throw std::runtime_error("resolver: dnssec is on but the trust anchor file \"" + opts.trust_anchor_file +
                               "\" cannot be read (Debian package dns-root-data)");
    }
    if (int rc = ub_ctx_add_ta_file(c, opts.trust_anchor_file.c_str()); rc != 0) {
      throw std::runtime_error("resolver: trust anchor file \"" + opts.trust_anchor_file + "\": " + ub_strerror(rc));
    }
  } else {
    // No validation at all (not even "insecure" bookkeeping): a forwarder without DNSSEC must not make answers bogus.
    set_option(c, "module-config:", "iterator");
  }

  if (opts.nameserver.empty()) {
    if (int rc = ub_ctx_resolvconf(c, nullptr); rc != 0) {
      log.warn("resolver: cannot use /etc/resolv.conf ({}); resolving from the root servers", ub_strerror(rc));
    }
  } else {
    auto [host, port] = split_host_port(opts.nameserver, "resolver: nameserver");
    auto addr = ip_literal(host);
    if (!addr) {
      throw std::runtime_error("resolver: nameserver \"" + opts.nameserver + "\": not an IP address");
    }
    std::string fwd = addr->to_string();
    if (port) {
      fwd += "@" + std::to_string(*port);
    }
    if (int rc = ub_ctx_set_fwd(c, fwd.c_str()); rc != 0) {
      throw std::runtime_error("resolver: nameserver \"" + opts.nameserver + "\": " + ub_strerror(rc));
    }
    if (addr->is_v4()) {
      set_option(c, "do-ip6:", "no"); // only an IPv4 forwarder to talk to
    }
    // libunbound answers the RFC 6761 "test." zone itself (NXDOMAIN) by default. With a nameserver of the admin's
    // choosing (a lab or test DNS), ask it instead; with the system's resolvers .test names never leave the machine.
    // ("test. nodefault" would be the documented way, but libunbound 1.17 stores that option's whole value as the
    // zone name, so it has no effect; a transparent zone of our own replaces the default one.)
    set_option(c, "local-zone:", "test. transparent");
  }

  if (opts.use_hosts) {
    const char* file = opts.hosts_file.empty() ? nullptr : opts.hosts_file.c_str();
    if (int rc = ub_ctx_hosts(c, file); rc != 0) {
      if (file != nullptr) {
        throw std::runtime_error("resolver: hosts file \"" + opts.hosts_file + "\": " + ub_strerror(rc));
      }
      log.warn("resolver: cannot read /etc/hosts ({})", ub_strerror(rc));
    }
  }
  return ctx;
}

} // namespace

Resolver::Impl::Impl(asio::any_io_executor ex, ResolverOptions o)
    : opts(std::move(o)), log(opts.logger ? opts.logger : spdlog::default_logger()), strand(asio::make_strand(ex)),
      ctx(make_context(opts, *log)), fd(strand) {
  for (const auto& [domain, spec] : opts.static_routes) {
    auto key = query_name(domain);
    if (!key) {
      throw std::runtime_error("resolver: static route for \"" + domain + "\": not a domain name");
    }
    auto [host, port] = split_host_port(spec, ("resolver: static route for " + domain).c_str());
    routes[*key] = S2STarget{host, port.value_or(kDefaultS2SPort), false};
  }
  int descriptor = ub_fd(ctx.get());
  if (descriptor < 0) {
    throw std::runtime_error("resolver: libunbound has no file descriptor to wait on");
  }
  fd.assign(descriptor);
}

Resolver::Impl::~Impl() {
  // The descriptor belongs to libunbound: take it out of Asio's reactor without closing it.
  if (fd.is_open()) {
    fd.release();
  }
  // ctx's deleter then stops and joins libunbound's worker thread.
}

void Resolver::Impl::on_result(void* data, int err, ub_result* result) {
  auto* p = static_cast<Pending*>(data);
  p->answer.answered = true;
  p->answer.err = err;
  p->answer.result.reset(result);
  p->in_flight = false;
  --p->impl->in_flight;
  if (--p->batch->outstanding == 0) {
    p->batch->timer.cancel();
  }
}

void Resolver::Impl::arm() {
  if (waiting || closed) {
    return;
  }
  waiting = true;
  // Asio re-arms epoll for a wait (EPOLL_CTL_MOD), so answers already in the pipe complete it at once.
  fd.async_wait(asio::posix::stream_descriptor::wait_read,
                [self = shared_from_this()](boost::system::error_code ec) { self->on_readable(ec); });
}

void Resolver::Impl::on_readable(boost::system::error_code ec) {
  waiting = false;
  if (closed) {
    return;
  }
  if (ec && ec != asio::error::operation_aborted) {
    log->error("resolver: waiting for libunbound failed: {}", ec.message());
    return; // pending lookups end at their deadline
  }
  if (!ec) {
    if (int rc = ub_process(ctx.get()); rc != 0) {
      log->error("resolver: ub_process: {}", ub_strerror(rc));
    }
  }
  if (in_flight > 0) {
    arm();
  }
}

void Resolver::Impl::shutdown() {
  closed = true;
  for (auto* b : batches) {
    b->timer.cancel();
  }
  if (waiting) {
    fd.cancel();
  }
}

asio::awaitable<std::vector<Answer>> Resolver::Impl::run_queries(std::vector<Question> questions) {
  // Runs on the strand.
  Batch batch(strand);
  std::vector<std::unique_ptr<Pending>> pending;
  for (const auto& q : questions) {
    auto p = std::make_unique<Pending>();
    p->impl = this;
    p->batch = &batch;
    if (!closed) {
      int rc = ub_resolve_async(ctx.get(), q.name.c_str(), q.type, kClassIN, p.get(), &Impl::on_result, &p->async_id);
      if (rc == 0) {
        p->in_flight = true;
        ++in_flight;
        ++batch.outstanding;
      } else {
        p->answer.answered = true;
        p->answer.err = rc;
      }
    }
    pending.push_back(std::move(p));
  }
  if (batch.outstanding > 0) {
    batches.insert(&batch);
    arm();
    batch.timer.expires_after(opts.timeout);
    boost::system::error_code ec;
    co_await batch.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    batches.erase(&batch);
  }
  // Whatever is still unanswered is given up: after ub_cancel its callback is never called (libunbound delivers
  // callbacks only from ub_process, which runs on this strand).
  for (auto& p : pending) {
    if (p->in_flight) {
      ub_cancel(ctx.get(), p->async_id);
      p->in_flight = false;
      --in_flight;
    }
  }
  if (in_flight == 0 && waiting) {
    fd.cancel(); // nothing left to wait for: do not keep the io_context busy
  }
  std::vector<Answer> answers;
  answers.reserve(pending.size());
  for (auto& p : pending) {
    answers.push_back(std::move(p->answer));
  }
  co_return answers;
}

std::string Resolver::Impl::describe(const Answer& a) const {
  if (!a.answered) {
    return closed ? "resolver shut down" : "timed out after " + std::to_string(opts.timeout.count()) + " ms";
  }
  if (a.err != 0) {
    return ub_strerror(a.err);
  }
  if (a.result->bogus) {
    return std::string("DNSSEC validation failed: ") + (a.result->why_bogus ? a.result->why_bogus : "bogus");
  }
  if (a.result->nxdomain) {
    return "no such domain";
  }
  switch (a.result->rcode) {
  case 0:
    return a.result->havedata ? "answered" : "no records";
  case 2:
    return "server failure";
  case 5:
    return "query refused";
  default:
    return "DNS error code " + std::to_string(a.result->rcode);
  }
}

asio::awaitable<std::vector<asio::ip::address>> Resolver::Impl::lookup_addresses(std::shared_ptr<Impl> self,
                                                                                 std::string host) {
  std::vector<asio::ip::address> out;
  auto name = query_name(host);
  if (!name) {
    self->log->info("resolver: \"{}\" is not a valid host name", host);
    co_return out;
  }
  std::vector<Question> questions{{*name, kTypeA}, {*name, kTypeAAAA}};
  auto answers = co_await self->run_queries(std::move(questions));
  for (const auto& a : answers) {
    bool usable = a.answered && a.err == 0 && a.result->havedata && !a.result->bogus;
    if (!usable) {
      continue;
    }
    for (int i = 0; a.result->data[i] != nullptr; ++i) {
      if (a.result->qtype == kTypeA && a.result->len[i] == 4) {
        asio::ip::address_v4::bytes_type bytes;
        std::copy_n(reinterpret_cast<const unsigned char*>(a.result->data[i]), 4, bytes.begin());
        out.emplace_back(asio::ip::address_v4(bytes));
      } else if (a.result->qtype == kTypeAAAA && a.result->len[i] == 16) {
        asio::ip::address_v6::bytes_type bytes;
        std::copy_n(reinterpret_cast<const unsigned char*>(a.result->data[i]), 16, bytes.begin());
        out.emplace_back(asio::ip::address_v6(bytes));
      }
    }
  }
  if (out.empty()) {
    self->log->info("resolver: no address for {}: A: {}, AAAA: {}", *name, self->describe(answers[0]),
                    self->describe(answers[1]));
  } else {
    self->log->debug("resolver: {} has {} address(es)", *name, out.size());
  }
  co_return out;
}

asio::awaitable<S2STargets> Resolver::Impl::lookup_s2s(std::shared_ptr<Impl> self, std::string domain) {
  S2STargets out;
  auto name = query_name(domain);
  if (!name) {
    out.status = S2SStatus::failed;
    out.reason = "not a valid domain name";
    self->log->info("resolver: s2s \"{}\": {}", domain, out.reason);
    co_return out;
  }
  // XEP-0368: look up both services; RFC 6120 §3.2.1 for _xmpp-server.
  const std::string services[2] = {"_xmpps-server._tcp." + *name, "_xmpp-server._tcp." + *name};
  std::vector<Question> questions{{services[0], kTypeSRV}, {services[1], kTypeSRV}};
  auto answers = co_await self->run_queries(std::move(questions));

  std::vector<SrvRecord> records;
  bool dot[2] = {false, false};
  bool timed_out = false;
  for (int i = 0; i < 2; ++i) {
    const Answer& a = answers[i];
    if (!a.answered) {
      timed_out = true;
      continue;
    }
    bool usable = a.err == 0 && a.result->havedata && !a.result->bogus;
    if (!usable) {
      if (a.err != 0 || a.result->bogus || (a.result->rcode != 0 && !a.result->nxdomain)) {
        self->log->info("resolver: SRV {}: {}", services[i], self->describe(a));
      }
      continue;
    }
    std::vector<SrvRecord> got;
    for (int j = 0; a.result->data[j] != nullptr; ++j) {
      if (auto r = parse_srv(a.result->data[j], a.result->len[j], i == 0)) {
        got.push_back(std::move(*r));
      }
    }
    // RFC 2782: 'A Target of "." means that the service is decidedly not available at this domain.'
    if (got.size() == 1 && got[0].target == ".") {
      dot[i] = true;
      continue;
    }
    for (auto& r : got) {
      if (r.target != "." && r.port != 0) {
        records.push_back(std::move(r));
      }
    }
  }

  if (!records.empty()) {
    // XEP-0368: "Both 'xmpp-' and 'xmpps-' records SHOULD be treated as the same record with regard to connection
    // order as specified by RFC 2782, in that all priorities and weights are mixed."
    for (auto& r : order_srv_records(std::move(records), self->rng)) {
      out.targets.push_back(S2STarget{std::move(r.target), r.port, r.direct_tls});
    }
    out.status = S2SStatus::srv;
    if (timed_out) {
      out.reason = "one SRV query timed out";
    }
  } else if (dot[0] || dot[1]) {
    // RFC 6120 §3.2.1: target "." — "the initiating entity MUST abort processing the SRV records and MUST NOT
    // attempt to connect"; XEP-0368: after an xmpps "." the initiating party "MUST NOT perform A/AAAA fallback".
    out.status = S2SStatus::not_available;
    out.reason = dot[1] ? "the domain's _xmpp-server SRV record says the service is not available"
                        : "the domain's _xmpps-server SRV record says direct TLS is not available and it has no "
                          "_xmpp-server records";
  } else if (timed_out) {
    out.status = S2SStatus::timeout;
    out.reason = "SRV lookup " + self->describe(answers[0].answered ? answers[1] : answers[0]);
  } else {
    // RFC 6120 §3.2.2: no SRV records — fall back to the domain itself on the default port.
    out.targets.push_back(S2STarget{*name, kDefaultS2SPort, false});
    out.status = S2SStatus::fallback;
    out.reason = "no SRV records";
  }
  if (out.targets.empty()) {
    self->log->info("resolver: s2s {}: {}", *name, out.reason);
  } else {
    self->log->debug("resolver: s2s {}: {} target(s)", *name, out.targets.size());
  }
  co_return out;
}

Resolver::Resolver(asio::any_io_executor ex, ResolverOptions opts)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(opts))) {}

Resolver::~Resolver() {
  auto impl = impl_;
  asio::post(impl->strand, [impl] { impl->shutdown(); });
}

asio::awaitable<S2STargets> Resolver::s2s_targets(std::string domain) {
  std::shared_ptr<Impl> impl = impl_;
  if (auto key = query_name(domain)) {
    if (auto it = impl->routes.find(*key); it != impl->routes.end()) {
      S2STargets out;
      out.targets.push_back(it->second);
      out.status = S2SStatus::static_route;
      impl->log->debug("resolver: s2s {}: static route to {}:{}", *key, it->second.host, it->second.port);
      co_return out;
    }
  }
  auto lookup = Impl::lookup_s2s(impl, std::move(domain));
  co_return co_await asio::co_spawn(impl->strand, std::move(lookup), asio::use_awaitable);
}

asio::awaitable<std::vector<asio::ip::address>> Resolver::addresses(std::string host) {
  if (auto literal = ip_literal(host)) {
    co_return std::vector<asio::ip::address>{*literal};
  }
  std::shared_ptr<Impl> impl = impl_;
  auto lookup = Impl::lookup_addresses(impl, std::move(host));
  co_return co_await asio::co_spawn(impl->strand, std::move(lookup), asio::use_awaitable);
}

} // namespace cg::net
