// cg::net::Resolver against real DNS over UDP: libunbound forwards to a python3-dnslib stub (dns_stub.py) on a free
// loopback port, which answers from the zone below. Nothing resolves through the machine's own DNS.
#include "server/net/resolver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace asio = boost::asio;
using namespace cg::net;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kZone = R"($TTL 300
; priorities given out of order
_xmpp-server._tcp.prio.test.       IN SRV 20 0 5270 b.prio.test.
_xmpp-server._tcp.prio.test.       IN SRV 10 0 5269 a.prio.test.
_xmpp-server._tcp.prio.test.       IN SRV 30 0 5271 c.prio.test.
; weights within one priority (and a better priority with weight 0)
_xmpp-server._tcp.weight.test.     IN SRV 10 10 5269 light.weight.test.
_xmpp-server._tcp.weight.test.     IN SRV 10 90 5269 heavy.weight.test.
_xmpp-server._tcp.weight.test.     IN SRV 5 0 5269 best.weight.test.
; XEP-0368: both services, mixed by priority
_xmpps-server._tcp.mix.test.       IN SRV 5 0 5223 tls.mix.test.
_xmpp-server._tcp.mix.test.        IN SRV 0 0 5269 first.mix.test.
_xmpp-server._tcp.mix.test.        IN SRV 10 0 5269 last.mix.test.
; "." targets
_xmpp-server._tcp.nope.test.       IN SRV 0 0 0 .
nope.test.                         IN A 192.0.2.9
_xmpps-server._tcp.nodirect.test.  IN SRV 0 0 0 .
nodirect.test.                     IN A 192.0.2.10
_xmpps-server._tcp.starttls.test.  IN SRV 0 0 0 .
_xmpp-server._tcp.starttls.test.   IN SRV 0 0 5269 xmpp.starttls.test.
; no SRV records
plain.test.                        IN A 192.0.2.11
; addresses
dual.test.                         IN A 192.0.2.1
dual.test.                         IN AAAA 2001:db8::1
dual.test.                         IN A 192.0.2.2
; overridden by a static route
_xmpp-server._tcp.routed.test.     IN SRV 0 0 5269 dns.routed.test.
; an IDN: bücher.test
_xmpp-server._tcp.xn--bcher-kva.test. IN SRV 0 0 5269 xmpp.xn--bcher-kva.test.
)";

// dns_stub.py as a child process with the zone above; started once for the whole test binary.
class DnsStub {
public:
  DnsStub() {
    dir_ = std::filesystem::temp_directory_path() / ("cg-dns-stub-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    auto zone = dir_ / "zone";
    std::ofstream(zone) << kZone;
    int to_child[2];
    int from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe failed");
    }
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(to_child[0], 0);
      ::dup2(from_child[1], 1);
      // Debian's python3 with python3-dnslib: argv[0] is a full path (a bare "python3" makes Python derive its
      // prefix from the first python3 on PATH, e.g. a pyenv one); -I ignores PYTHON* variables and user packages.
      ::execl("/usr/bin/python3", "/usr/bin/python3", "-I", CG_DNS_STUB, zone.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    // Wait (bounded) for "port N\n".
    std::string line;
    auto deadline = Clock::now() + 20s;
    while (line.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      pollfd p{from_child[0], POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
        throw std::runtime_error("dns_stub.py did not report its port");
      }
      char buf[128];
      auto n = ::read(from_child[0], buf, sizeof buf);
      if (n <= 0) {
        throw std::runtime_error("dns_stub.py exited before reporting its port");
      }
      line.append(buf, static_cast<std::size_t>(n));
    }
    ::close(from_child[0]);
    if (line.rfind("port ", 0) != 0) {
      throw std::runtime_error("dns_stub.py said: " + line);
    }
    port_ = std::stoi(line.substr(5));
  }
  ~DnsStub() {
    ::close(stdin_); // the stub exits on EOF
    int status = 0;
    ::waitpid(pid_, &status, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string nameserver() const { return "127.0.0.1@" + std::to_string(port_); }

private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

const DnsStub& stub() {
  static DnsStub instance;
  return instance;
}

ResolverOptions stub_options() {
  ResolverOptions o;
  o.nameserver = stub().nameserver();
  o.use_hosts = false;
  o.timeout = 5000ms;
  return o;
}

// Runs `aw` on `io` (bounded) and returns its result.
template <typename T>
T run(asio::io_context& io, asio::awaitable<T> aw, std::chrono::milliseconds limit = 10000ms) {
  std::optional<T> result;
  std::exception_ptr error;
  asio::co_spawn(io, std::move(aw), [&](std::exception_ptr e, T value) {
    error = e;
    result = std::move(value);
  });
  io.restart();
  io.run_for(limit);
  if (error) {
    std::rethrow_exception(error);
  }
  if (!result) {
    throw std::runtime_error("lookup did not complete in time");
  }
  return std::move(*result);
}

// A UDP "nameserver" on loopback that never answers.
struct SilentServer {
  explicit SilentServer(asio::io_context& io)
      : socket(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
  std::string nameserver() const { return "127.0.0.1:" + std::to_string(socket.local_endpoint().port()); }
  asio::ip::udp::socket socket;
};

std::string str(const std::vector<asio::ip::address>& addrs) {
  std::string s;
  for (const auto& a : addrs) {
    s += a.to_string() + " ";
  }
  return s;
}

} // namespace

TEST_CASE("resolver: SRV records are ordered by priority", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  auto r = run(io, resolver.s2s_targets("prio.test"));
  CHECK(r.status == S2SStatus::srv);
  CHECK(r.targets == std::vector<S2STarget>{
                         {"a.prio.test", 5269, false}, {"b.prio.test", 5270, false}, {"c.prio.test", 5271, false}});
}

TEST_CASE("resolver: SRV records of one priority are ordered by weighted random choice", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  constexpr int kRuns = 400;
  int heavy_first = 0;
  for (int i = 0; i < kRuns; ++i) {
    auto r = run(io, resolver.s2s_targets("weight.test"));
    REQUIRE(r.targets.size() == 3);
    REQUIRE(r.targets[0].host == "best.weight.test"); // priority 5 before priority 10, whatever its weight
    if (r.targets[1].host == "heavy.weight.test") {
      ++heavy_first;
    } else {
      REQUIRE(r.targets[1].host == "light.weight.test");
    }
  }
  // Weight 90 against 10: the heavy target comes first in about 90% of the orders (360 of 400, sd 6).
  CHECK(heavy_first > 320);
  CHECK(heavy_first < 392);
}

TEST_CASE("resolver: xmpps-server and xmpp-server records are merged by priority", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  auto r = run(io, resolver.s2s_targets("mix.test"));
  CHECK(r.status == S2SStatus::srv);
  CHECK(r.targets == std::vector<S2STarget>{{"first.mix.test", 5269, false},
                                            {"tls.mix.test", 5223, true},
                                            {"last.mix.test", 5269, false}});
}

TEST_CASE("resolver: a '.' SRV target means the service is not available", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());

  // RFC 6120 §3.2.1: "." for _xmpp-server — no connection, no A/AAAA fallback.
  auto nope = run(io, resolver.s2s_targets("nope.test"));
  CHECK(nope.status == S2SStatus::not_available);
  CHECK(nope.targets.empty());
  CHECK_FALSE(nope.reason.empty());

  // XEP-0368: "." for _xmpps-server and no _xmpp-server records — no fallback either.
  auto nodirect = run(io, resolver.s2s_targets("nodirect.test"));
  CHECK(nodirect.status == S2SStatus::not_available);
  CHECK(nodirect.targets.empty());

  // "." for _xmpps-server only: the _xmpp-server records are used.
  auto starttls = run(io, resolver.s2s_targets("starttls.test"));
  CHECK(starttls.status == S2SStatus::srv);
  CHECK(starttls.targets == std::vector<S2STarget>{{"xmpp.starttls.test", 5269, false}});
}

TEST_CASE("resolver: without SRV records the domain itself on port 5269 is the target", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  auto plain = run(io, resolver.s2s_targets("plain.test"));
  CHECK(plain.status == S2SStatus::fallback);
  CHECK(plain.targets == std::vector<S2STarget>{{"plain.test", 5269, false}});
  // Also for a domain that does not exist at all (the connection attempt then fails on the address lookup).
  auto unknown = run(io, resolver.s2s_targets("unknown.test"));
  CHECK(unknown.status == S2SStatus::fallback);
  CHECK(unknown.targets == std::vector<S2STarget>{{"unknown.test", 5269, false}});
}

TEST_CASE("resolver: A and AAAA records are both returned with IPv4 first", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  auto addrs = run(io, resolver.addresses("dual.test"));
  INFO(str(addrs));
  REQUIRE(addrs.size() == 3);
  CHECK(addrs[0].is_v4());
  CHECK(addrs[1].is_v4());
  std::vector<std::string> v4{addrs[0].to_string(), addrs[1].to_string()};
  std::sort(v4.begin(), v4.end());
  CHECK(v4 == std::vector<std::string>{"192.0.2.1", "192.0.2.2"});
  CHECK(addrs[2] == asio::ip::make_address("2001:db8::1"));
  CHECK(run(io, resolver.addresses("unknown.test")).empty());
}

TEST_CASE("resolver: a hosts file is honoured", "[resolver]") {
  auto path = std::filesystem::temp_directory_path() / ("cg-resolver-hosts-" + std::to_string(::getpid()));
  std::ofstream(path) << "# test hosts file\n198.51.100.7 hosted.test alias.hosted.test\n2001:db8::7 hosted.test\n";
  asio::io_context io;
  auto opts = stub_options();
  opts.use_hosts = true;
  opts.hosts_file = path.string();
  {
    Resolver resolver(io.get_executor(), opts);
    auto addrs = run(io, resolver.addresses("hosted.test"));
    INFO(str(addrs));
    CHECK(addrs == std::vector<asio::ip::address>{asio::ip::make_address("198.51.100.7"),
                                                  asio::ip::make_address("2001:db8::7")});
    CHECK(run(io, resolver.addresses("alias.hosted.test")) ==
          std::vector<asio::ip::address>{asio::ip::make_address("198.51.100.7")});
    // Names that are not in the file still go to DNS.
    CHECK(run(io, resolver.addresses("plain.test")) ==
          std::vector<asio::ip::address>{asio::ip::make_address("192.0.2.11")});
  }
  opts.use_hosts = false;
  {
    Resolver resolver(io.get_executor(), opts);
    CHECK(run(io, resolver.addresses("hosted.test")).empty());
  }
  std::filesystem::remove(path);
}

TEST_CASE("resolver: a static route overrides SRV", "[resolver]") {
  asio::io_context io;
  auto opts = stub_options();
  opts.static_routes = {{"routed.test", "127.0.0.1:15269"}, {"Other.Test", "[::1]:5999"}, {"third.test", "relay.test"}};
  Resolver resolver(io.get_executor(), opts);
  auto routed = run(io, resolver.s2s_targets("routed.test"));
  CHECK(routed.status == S2SStatus::static_route);
  CHECK(routed.targets == std::vector<S2STarget>{{"127.0.0.1", 15269, false}});
  CHECK(run(io, resolver.s2s_targets("other.test")).targets == std::vector<S2STarget>{{"::1", 5999, false}});
  CHECK(run(io, resolver.s2s_targets("third.test")).targets == std::vector<S2STarget>{{"relay.test", 5269, false}});
  // Without a route, DNS as usual.
  Resolver plain(io.get_executor(), stub_options());
  CHECK(run(io, plain.s2s_targets("routed.test")).targets == std::vector<S2STarget>{{"dns.routed.test", 5269, false}});
}

TEST_CASE("resolver: a nameserver that does not answer ends the lookup at the timeout", "[resolver]") {
  asio::io_context io;
  SilentServer silent(io);
  ResolverOptions opts;
  opts.nameserver = silent.nameserver();
  opts.use_hosts = false;
  opts.timeout = 300ms;
  Resolver resolver(io.get_executor(), opts);

  auto start = Clock::now();
  auto addrs = run(io, resolver.addresses("dual.test"));
  auto elapsed = Clock::now() - start;
  CHECK(addrs.empty());
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 3s);

  start = Clock::now();
  auto targets = run(io, resolver.s2s_targets("prio.test"));
  elapsed = Clock::now() - start;
  CHECK(targets.status == S2SStatus::timeout);
  CHECK(targets.targets.empty());
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 3s);
}

TEST_CASE("resolver: destroying the resolver ends its pending lookups", "[resolver]") {
  asio::io_context io;
  SilentServer silent(io);
  ResolverOptions opts;
  opts.nameserver = silent.nameserver();
  opts.use_hosts = false;
  opts.timeout = 20s;
  auto resolver = std::make_unique<Resolver>(io.get_executor(), opts);

  // Once the query reaches the silent server, drop the resolver.
  std::array<char, 512> buf;
  asio::ip::udp::endpoint from;
  silent.socket.async_receive_from(asio::buffer(buf), from,
                                   [&](boost::system::error_code, std::size_t) { resolver.reset(); });
  auto start = Clock::now();
  auto addrs = run(io, resolver->addresses("dual.test"), 5000ms);
  CHECK(addrs.empty());
  CHECK(Clock::now() - start < 3s);
}

TEST_CASE("resolver: an IP literal is returned without a query", "[resolver]") {
  asio::io_context io;
  SilentServer silent(io); // any query would time out
  ResolverOptions opts;
  opts.nameserver = silent.nameserver();
  opts.timeout = 5s;
  Resolver resolver(io.get_executor(), opts);
  auto start = Clock::now();
  CHECK(run(io, resolver.addresses("192.0.2.55")) ==
        std::vector<asio::ip::address>{asio::ip::make_address("192.0.2.55")});
  CHECK(run(io, resolver.addresses("2001:db8::5")) ==
        std::vector<asio::ip::address>{asio::ip::make_address("2001:db8::5")});
  CHECK(run(io, resolver.addresses("[2001:db8::6]")) ==
        std::vector<asio::ip::address>{asio::ip::make_address("2001:db8::6")});
  CHECK(Clock::now() - start < 1s);
}

TEST_CASE("resolver: an IDN domain is looked up by its A-labels", "[resolver]") {
  asio::io_context io;
  Resolver resolver(io.get_executor(), stub_options());
  auto r = run(io, resolver.s2s_targets("b\u00fccher.test")); // UTF-8
  CHECK(r.status == S2SStatus::srv);
  CHECK(r.targets == std::vector<S2STarget>{{"xmpp.xn--bcher-kva.test", 5269, false}});
}

TEST_CASE("resolver: bad options are rejected with a clear message", "[resolver]") {
  asio::io_context io;
  auto expect_error = [&](ResolverOptions opts, const std::string& fragment) {
    try {
      Resolver resolver(io.get_executor(), std::move(opts));
      FAIL("no exception; expected one mentioning " << fragment);
    } catch (const std::runtime_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
  };
  ResolverOptions o;
  o.nameserver = "dns.example.net";
  expect_error(o, "not an IP address");
  o.nameserver = "127.0.0.1:99999";
  expect_error(o, "port");
  o.nameserver = "[::1";
  expect_error(o, "]");
  o = {};
  o.nameserver = "127.0.0.1";
  o.hosts_file = "/nonexistent/cg-hosts";
  expect_error(o, "/nonexistent/cg-hosts");
  o = {};
  o.nameserver = "127.0.0.1";
  o.static_routes = {{"a.test", "host:http"}};
  expect_error(o, "a.test");
  o = {};
  o.nameserver = "127.0.0.1";
  o.timeout = 0ms;
  expect_error(o, "timeout");
  o = {};
  o.nameserver = "127.0.0.1";
  o.dnssec = true;
  o.trust_anchor_file = "/nonexistent/root.key";
  expect_error(o, "/nonexistent/root.key");
}
