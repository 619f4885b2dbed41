// Asynchronous DNS for outgoing server-to-server connections: SRV lookup per RFC 6120 §3.2.1 and XEP-0368, A/AAAA
// lookup, /etc/hosts, static routes. Built on libunbound.
//
// Threads: libunbound runs its own background worker thread (ub_ctx_async(ctx, 1)); its answers arrive on a pipe
// (ub_fd) that this resolver waits on with Asio and drains with ub_process(). Every call on the ub_ctx, every
// libunbound callback and every per-query timer runs on one strand owned by the resolver, so the coroutines below may
// be awaited from any strand or thread of the io_context. (ub_ctx_async(ctx, 0) would fork a process instead, which
// would inherit the server's listening sockets and file descriptors.)
//
// Errors: lookups never throw (except std::bad_alloc). A name that does not resolve, a DNS failure or a timeout gives
// an empty result; the reason is logged (and for s2s_targets() also returned). The constructor throws
// std::runtime_error on bad options.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace cg::net {

struct ResolverOptions {
  // "" = the system's resolvers (/etc/resolv.conf; without one, full recursion from the root). Otherwise one
  // forwarder: "IP", "IP@port", "IPv4:port", "[IPv6]:port" or "IPv6@port".
  std::string nameserver;
  bool use_hosts = true;  // answer from a hosts file first (ub_ctx_hosts)
  std::string hosts_file; // "" = /etc/hosts (a missing /etc/hosts is only logged; a missing named file throws)
  // Sysadmin override, skips SRV: domain -> "host:port", "host" (port 5269), "[IPv6]:port".
  std::map<std::string, std::string> static_routes;
  std::chrono::milliseconds timeout{10000}; // per lookup (all its concurrent queries together)
  // DNSSEC validation with the trust anchor file below; bogus answers are then discarded. Off by default: a
  // forwarder that does not do DNSSEC would make every answer bogus.
  bool dnssec = false;
  std::string trust_anchor_file = "/usr/share/dns/root.key"; // only read when dnssec is on
  std::shared_ptr<spdlog::logger> logger;                    // nullptr = spdlog's default logger
};

// Where to connect, in connection order.
struct S2STarget {
  std::string host;
  std::uint16_t port = 0;
  bool direct_tls = false; // XEP-0368: TLS from the first byte (no STARTTLS)
  bool operator==(const S2STarget&) const = default;
};

enum class S2SStatus {
  srv,           // from _xmpps-server/_xmpp-server SRV records
  static_route,  // from ResolverOptions::static_routes
  fallback,      // no SRV records: {domain, 5269, STARTTLS} (RFC 6120 §3.2.2)
  not_available, // SRV target "." — the domain decidedly offers no s2s service; do not connect (targets empty)
  timeout,       // no answer within ResolverOptions::timeout (targets empty)
  failed,        // invalid domain name or resolver failure (targets empty)
};

struct S2STargets {
  std::vector<S2STarget> targets; // in connection order
  S2SStatus status = S2SStatus::failed;
  std::string reason; // why targets is empty (or why SRV was not used), for logs and bounce texts
};

// One SRV record (target without the trailing dot, "." for the RFC 2782 "not available" target).
struct SrvRecord {
  std::uint16_t priority = 0;
  std::uint16_t weight = 0;
  std::uint16_t port = 0;
  std::string target;
  bool direct_tls = false;
};

// RFC 2782 order: ascending priority; within one priority a weighted random order (weight 0 records first in the
// candidate list, each pick uniform over [0, sum of weights]). Records of both services are mixed (XEP-0368).
std::vector<SrvRecord> order_srv_records(std::vector<SrvRecord> records, std::mt19937& rng);

class Resolver {
public:
  Resolver(boost::asio::any_io_executor ex, ResolverOptions opts);
  // Pending lookups complete soon after (empty, as if timed out) if the io_context keeps running.
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // RFC 6120 §3.2.1 and XEP-0368: a static route if one is configured; otherwise SRV _xmpps-server._tcp (direct
  // TLS) and _xmpp-server._tcp, queried concurrently, merged and ordered by priority then weight; no SRV records at
  // all gives {domain, 5269, false}. Targets are host names (or IP literals): resolve each with addresses().
  // `domain` may be a Unicode (IDN) domain: it is queried by its A-labels.
  boost::asio::awaitable<S2STargets> s2s_targets(std::string domain);

  // A and AAAA, queried concurrently; IPv4 addresses first. Honours the hosts file. An IP literal (also "[v6]") is
  // returned as is without a query. Empty when the name does not resolve (the reason is logged).
  boost::asio::awaitable<std::vector<boost::asio::ip::address>> addresses(std::string host);

  struct Impl;

private:
  std::shared_ptr<Impl> impl_;
};

} // namespace cg::net
