// The core's options. Modules declare theirs in their ModuleInfo; the server adds them as "modules.<name>".
#include "server/config/config.hpp"

namespace cg::config {

using api::opt_bool;
using api::opt_int;
using api::opt_list;
using api::opt_string;

std::vector<api::OptionSection> core_sections(const std::vector<std::string>& default_modules) {
  const std::vector<std::string> mechanisms = {"SCRAM-SHA-512-PLUS",
                                               "SCRAM-SHA-256-PLUS",
                                               "SCRAM-SHA-1-PLUS",
                                               "SCRAM-SHA-512",
                                               "SCRAM-SHA-256",
                                               "SCRAM-SHA-1",
                                               "PLAIN"};
  std::vector<api::OptionSection> sections;

  sections.push_back(
      {"server",
       "The server: its domains and where it keeps its data.",
       {
           opt_list("hosts", {"localhost"}, "Domains this server serves (each is a virtual host with its own users)"),
           opt_string("data_dir", "data",
                      "Directory for the database, the generated certificate and other state; relative to the "
                      "working directory"),
           opt_int("threads", 0, 0, 256, "I/O threads; 0 = one per CPU core"),
           opt_int("shutdown_timeout", 5, 1, 300, "Seconds to wait for streams to close on shutdown before exiting"),
       }});

  sections.push_back(
      {"log",
       "Logging.",
       {
           opt_string("level", "info", "Lowest level written", {"trace", "debug", "info", "warn", "error", "off"}),
           opt_string("file", "", "Log file; empty = standard error"),
       }});

  sections.push_back(
      {"tls",
       "TLS for client and server-to-server connections (one certificate for every served domain). TLS 1.2 is the "
       "minimum.",
       {
           opt_string("certificate", "",
                      "PEM certificate chain; empty = a self-signed certificate made in data_dir on first start"),
           opt_string("key", "", "PEM private key for the certificate"),
           opt_string("min_version", "1.2", "Lowest TLS version accepted", {"1.2", "1.3"}),
       }});

  sections.push_back(
      {"c2s",
       "Client connections (RFC 6120).",
       {
           opt_list("addresses", {"127.0.0.1"},
                    "Addresses to listen on; use [\"0.0.0.0\", \"::\"] to accept connections from other machines"),
           opt_int("port", 5222, 0, 65535, "STARTTLS port; 0 = off"),
           opt_int("direct_tls_port", 5223, 0, 65535, "Direct TLS port (XEP-0368); 0 = off"),
           opt_bool("require_encryption", true, "Refuse to authenticate clients that have not negotiated TLS"),
           opt_int("max_stanza_size", 262144, 1024, 16777216,
                   "Largest stanza accepted, in bytes (policy-violation beyond)"),
           opt_int("max_depth", 64, 8, 1024, "Deepest element nesting accepted in a stanza"),
           opt_int("max_preauth_bytes", 65536, 4096, 1048576,
                   "Bytes a connection may send before it has authenticated"),
           opt_int("auth_timeout", 60, 5, 3600, "Seconds a connection may take to authenticate and bind"),
           opt_int("idle_timeout", 600, 30, 86400,
                   "Seconds of silence after which an authenticated connection is closed (connection-timeout)"),
           opt_int("max_send_queue", 2097152, 65536, 268435456,
                   "Bytes queued for a slow client before it is disconnected"),
           opt_int("max_connections_per_ip", 256, 0, 1000000,
                   "Simultaneous connections from one address; 0 = unlimited"),
           opt_int("rate_limit", 0, 0, 1073741824, "Bytes per second read from each connection; 0 = unlimited"),
           opt_string("resource_conflict", "kick_old",
                      "When a resource is bound twice: disconnect the old session (conflict) or refuse the new bind",
                      {"kick_old", "refuse"}),
           opt_int("max_resources", 10, 1, 1000, "Simultaneous resources per account"),
           opt_int("resume_timeout", 300, 0, 86400,
                   "Seconds a stream-managed session (XEP-0198) waits for its client to resume after the "
                   "connection drops; 0 = no resumption"),
           opt_int("max_unacked", 1000, 10, 1000000,
                   "Stanzas sent to a client that has not acknowledged them (XEP-0198) before it is disconnected"),
       }});

  sections.push_back(
      {"s2s",
       "Server-to-server connections: federation with other XMPP servers (RFC 6120, XEP-0220 dialback).",
       {
           opt_bool("enabled", true, "Federate: accept and open connections to other servers"),
           opt_list("addresses", {"127.0.0.1"},
                    "Addresses to listen on; use [\"0.0.0.0\", \"::\"] to federate with the rest of the network"),
           opt_int("port", 5269, 0, 65535, "STARTTLS port; 0 = do not accept incoming connections"),
           opt_int("direct_tls_port", 5270, 0, 65535, "Direct TLS port (XEP-0368); 0 = off"),
           opt_bool("require_encryption", true, "Refuse streams (both ways) that have not negotiated TLS"),
           opt_bool("allow_dialback", true,
                    "Authenticate peers whose certificate cannot be verified with Server Dialback (XEP-0220)"),
           opt_bool("dialback_without_tls", false,
                    "Allow dialback on unencrypted streams too (only matters when require_encryption is off)"),
           opt_string("ca_file", "", "PEM file of CAs trusted for peers' certificates, besides the system's"),
           opt_bool("system_trust", true, "Trust the system's CA certificates for peers' certificates"),
           opt_string("nameserver", "",
                      "DNS server for SRV and address lookups (\"IP\" or \"IP@port\"); empty = /etc/resolv.conf"),
           opt_bool("use_hosts_file", true, "Resolve names from /etc/hosts first"),
           opt_list("routes", {}, "Static routes that skip DNS, as \"domain=host:port\" (e.g. behind split DNS)"),
           opt_list("allow", {}, "Only these remote domains may federate with us; empty = any not denied"),
           opt_list("deny", {}, "Remote domains never federated with"),
           opt_int("max_stanza_size", 524288, 1024, 16777216,
                   "Largest stanza accepted from a server, in bytes (policy-violation beyond)"),
           opt_int("connect_timeout", 10, 1, 300, "Seconds to connect to a remote server (each address)"),
           opt_int("auth_timeout", 60, 5, 3600, "Seconds a stream may take to be secured and authenticated"),
           opt_int("idle_timeout", 600, 30, 86400, "Seconds of silence after which a server connection is closed"),
           opt_int("max_queue", 1000, 1, 1000000,
                   "Stanzas queued for a remote domain while its connection is set up (beyond: resource-constraint)"),
           opt_int("max_send_queue", 8388608, 65536, 268435456,
                   "Bytes queued for a slow server before the connection is dropped"),
           opt_int("max_connections_per_ip", 64, 0, 1000000,
                   "Simultaneous incoming server connections from one address; 0 = unlimited"),
           opt_int("max_streams_per_domain", 8, 0, 10000,
                   "Authenticated incoming streams from one remote domain at a time; 0 = unlimited"),
           opt_int("max_backoff", 300, 1, 86400,
                   "After a failed connection, stanzas to the domain are bounced at once for 1 s, doubling with each "
                   "further failure up to this many seconds"),
       }});

  sections.push_back(
      {"auth",
       "Authentication (SASL).",
       {
           opt_list("mechanisms", mechanisms,
                    "SASL mechanisms offered, strongest first (PLAIN only ever inside TLS unless allow_insecure_plain)",
                    mechanisms),
           opt_bool("allow_insecure_plain", false,
                    "Offer PLAIN on unencrypted connections (only for benchmarks on loopback)"),
           opt_int("scram_iterations", 4096, 4096, 10000000, "PBKDF2 iterations for newly set passwords"),
           opt_int("max_attempts", 3, 2, 5,
                   "Failed attempts allowed on one stream before it is closed with not-authorized (RFC 6120 §6.4.5)"),
           opt_int("failure_delay", 1, 0, 60,
                   "Seconds before answering a failed attempt; doubles with each recent failure from the same address"),
           opt_int("failure_delay_max", 16, 0, 600, "Longest such delay, in seconds"),
           opt_int("ban_after", 10, 0, 1000,
                   "Failures from one address within ban_window after which it is refused for ban_time; 0 = never"),
           opt_int("ban_window", 600, 1, 86400, "Seconds over which failures are counted"),
           opt_int("ban_time", 600, 1, 86400, "Seconds an address is refused after too many failures"),
       }});

  sections.push_back(
      {"storage",
       "Where accounts and data are kept.",
       {
           opt_string("driver", "sqlite", "Storage driver (memory keeps nothing across restarts)",
                      {"sqlite", "memory"}),
           opt_string("database", "chatgroup.sqlite", "SQLite database file, relative to data_dir"),
           opt_string("synchronous", "full",
                      "full: fsync at every commit (nothing acknowledged is lost on power failure); normal: survive "
                      "process crashes only",
                      {"full", "normal"}),
       }});

  sections.push_back({"modules",
                      "Feature modules (one per RFC/XEP).",
                      {
                          opt_list("enabled", default_modules, "Modules to load on every host"),
                      }});

  return sections;
}

} // namespace cg::config
