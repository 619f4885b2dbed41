#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace it {

namespace fs = std::filesystem;

namespace {
// The test clients write to sockets the server may have closed on purpose (stream errors, shutdown): that must be
// an error for the client, not a SIGPIPE that kills the test process.
const bool kIgnoreSigpipe = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();
} // namespace

std::string chatgroupd_path() {
  return CHATGROUPD_PATH;
}
std::string chatgroupctl_path() {
  return CHATGROUPCTL_PATH;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a free port");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Waits for a child to exit (pidfd + poll: no sleeping loop). Returns its status, or nullopt on timeout.
std::optional<int> wait_child(int pid, std::chrono::milliseconds timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    ::close(pidfd);
    if (r == 0) {
      return std::nullopt;
    }
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) {
    return std::nullopt;
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return status;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

std::pair<int, std::string> run_program(const std::vector<std::string>& argv, const std::string& input,
                                        std::chrono::milliseconds timeout) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe(in_pipe) != 0 || ::pipe(out_pipe) != 0) {
    throw std::runtime_error("pipe failed");
  }
  int pid = ::fork();
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (!input.empty()) {
    (void)!::write(in_pipe[1], input.data(), input.size());
  }
  ::close(in_pipe[1]);
  std::string out;
  auto deadline = Clock::now() + timeout;
  char buf[4096];
  while (true) {
    pollfd p{out_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      break;
    }
    auto n = ::read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out_pipe[0]);
  auto status = wait_child(pid, std::chrono::milliseconds(remaining_ms(deadline)) + 1s);
  if (!status) {
    ::kill(pid, SIGKILL);
    wait_child(pid, 5s);
    return {-1, out};
  }
  return {*status, out};
}

// ---------------------------------------------------------------------------------------------------------------

TestServer::TestServer(ServerOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/cg-it-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    throw std::runtime_error("mkdtemp failed");
  }
  dir_ = tmpl;
  port_ = free_port();
  tls_port_ = free_port();
  std::map<std::string, std::map<std::string, std::string>> cfg;
  cfg["server"]["hosts"] = "[\"localhost\"]";
  cfg["server"]["data_dir"] = "\"" + dir_ + "/data\"";
  cfg["server"]["threads"] = "2";
  cfg["log"]["level"] = "\"debug\"";
  cfg["c2s"]["port"] = std::to_string(port_);
  cfg["c2s"]["direct_tls_port"] = std::to_string(tls_port_);
  // No federation unless a test asks for it: no listener (the default ports would collide between tests) and no
  // DNS query off the machine for a remote domain.
  cfg["s2s"]["enabled"] = "false";
  cfg["s2s"]["port"] = "0";
  cfg["s2s"]["direct_tls_port"] = "0";
  // Tests log in and fail many times from 127.0.0.1: keep the defaults' delays out of the way unless a test
  // sets them.
  cfg["auth"]["failure_delay"] = "0";
  cfg["auth"]["ban_after"] = "0";
  for (const auto& [section, values] : options_.settings) {
    for (const auto& [key, value] : values) {
      cfg[section][key] = value;
    }
  }
  std::ofstream out(config_path());
  for (const auto& [section, values] : cfg) {
    out << "[" << section << "]\n";
    for (const auto& [key, value] : values) {
      out << key << " = " << value << "\n";
    }
    out << "\n";
  }
}

TestServer::~TestServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, 5s);
  }
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
  }
  if (std::getenv("CG_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string TestServer::log() const {
  return read_file(dir_ + "/server.log");
}

std::pair<int, std::string> TestServer::ctl(const std::vector<std::string>& args, const std::string& input) const {
  std::vector<std::string> argv{chatgroupctl_path(), "-c", config_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, input);
}

void TestServer::add_user(const std::string& node, const std::string& password) const {
  auto [status, out] =
      ctl({"adduser", node.find('@') == std::string::npos ? node + "@" + options_.domain : node}, password + "\n");
  if (status != 0) {
    throw std::runtime_error("chatgroupctl adduser failed: " + out);
  }
}

void TestServer::start() {
  // The users are created once; a restart (stop() or a kill, then start()) keeps the data directory.
  if (!users_added_) {
    for (const auto& [node, password] : options_.users) {
      add_user(node, password);
    }
    users_added_ = true;
  }
  if (stdout_fd_ >= 0) {
    ::close(stdout_fd_);
    stdout_fd_ = -1;
  }
  int out_pipe[2];
  if (::pipe(out_pipe) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out_pipe[1], 1);
    int log_fd = ::open((dir_ + "/server.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(log_fd, 2);
    ::close(out_pipe[0]);
    std::string bin = chatgroupd_path();
    std::string cfg = config_path();
    char* args[] = {bin.data(), const_cast<char*>("-c"), cfg.data(), nullptr};
    ::execv(args[0], args);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  stdout_fd_ = out_pipe[0];
  std::string out;
  auto deadline = Clock::now() + 30s;
  char buf[1024];
  while (out.find("chatgroupd: ready") == std::string::npos) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      throw std::runtime_error("chatgroupd did not become ready; log:\n" + log());
    }
    auto n = ::read(stdout_fd_, buf, sizeof buf);
    if (n <= 0) {
      auto status = wait_child(pid_, 5s);
      pid_ = -1;
      throw std::runtime_error("chatgroupd exited with status " + std::to_string(status.value_or(-1)) +
                               " before it was ready; output:\n" + out + "\nlog:\n" + log());
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

void TestServer::signal(int sig) {
  if (pid_ > 0) {
    ::kill(pid_, sig);
  }
}

std::optional<int> TestServer::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return std::nullopt;
  }
  auto status = wait_child(pid_, timeout);
  if (status) {
    pid_ = -1;
  }
  return status;
}

bool TestServer::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int TestServer::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return -1;
  }
  ::kill(pid_, SIGTERM);
  auto status = wait_child(pid_, timeout);
  if (!status) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, 5s);
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  return *status;
}

// ---------------------------------------------------------------------------------------------------------------

RawClient::RawClient() = default;

RawClient::~RawClient() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
  }
  if (ctx_ != nullptr) {
    SSL_CTX_free(ctx_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void RawClient::connect(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("connect to port " + std::to_string(port) + " failed: " + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void RawClient::start_tls(int max_version, const std::string& alpn) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (max_version != 0) {
    SSL_CTX_set_max_proto_version(ctx_, max_version);
  }
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  ssl_ = SSL_new(ctx_);
  SSL_set_tlsext_host_name(ssl_, "localhost");
  if (!alpn.empty()) {
    std::string wire(1, static_cast<char>(alpn.size()));
    wire += alpn;
    SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  }
  SSL_set_fd(ssl_, fd_);
  if (SSL_connect(ssl_) != 1) {
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    throw std::runtime_error(std::string("TLS handshake failed: ") + buf);
  }
}

void RawClient::send(const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    long n = ssl_ != nullptr ? SSL_write(ssl_, data.data() + off, static_cast<int>(data.size() - off))
                             : ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      closed_ = true;
      return;
    }
    off += static_cast<std::size_t>(n);
  }
}

void RawClient::open_stream(const std::string& to, const std::string& extra_attrs) {
  parser_.reset();
  send("<?xml version='1.0'?><stream:stream to='" + to +
       "' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " + extra_attrs + ">");
}

void RawClient::open_server_stream(const std::string& from, const std::string& to) {
  parser_.reset();
  send("<?xml version='1.0'?><stream:stream from='" + from + "' to='" + to +
       "' xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
       "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
}

bool RawClient::fill(Clock::time_point deadline) {
  if (closed_) {
    return false;
  }
  if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      return false;
    }
  }
  char buf[16384];
  long n = ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof buf) : ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  raw_.append(buf, static_cast<std::size_t>(n));
  parser_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  return true;
}

std::optional<cg::xml::StreamEvent> RawClient::next(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!parser_.has_event()) {
    if (!fill(deadline)) {
      return std::nullopt;
    }
  }
  auto ev = parser_.next_event();
  if (ev.kind == cg::xml::StreamEvent::Kind::Stanza && ev.element.is("error", cg::xml::ns::streams)) {
    for (const auto* c : ev.element.children()) {
      if (c->ns() == cg::xml::ns::stream_errors) {
        if (c->name() == "text") {
          stream_error_text_ = c->text();
        } else {
          stream_error_ = c->name();
        }
      }
    }
  }
  return ev;
}

std::optional<Element> RawClient::next_element(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto ev = next(std::chrono::milliseconds(remaining_ms(deadline)));
    if (!ev) {
      return std::nullopt;
    }
    if (ev->kind == cg::xml::StreamEvent::Kind::Stanza) {
      return std::move(ev->element);
    }
    if (ev->kind != cg::xml::StreamEvent::Kind::Open) {
      return std::nullopt;
    }
  }
}

std::optional<Element> RawClient::wait_for(const std::function<bool(const Element&)>& pred,
                                           std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto el = next_element(std::chrono::milliseconds(remaining_ms(deadline)));
    if (!el) {
      return std::nullopt;
    }
    if (pred(*el)) {
      return el;
    }
    skipped.push_back(std::move(*el));
  }
}

bool RawClient::wait_closed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!closed_) {
    while (parser_.has_event()) {
      next(0ms);
    }
    if (!fill(deadline) && !closed_) {
      return false;
    }
  }
  while (parser_.has_event()) {
    next(0ms);
  }
  return true;
}

Element RawClient::starttls_and_reopen(const std::string& to, int max_version) {
  open_stream(to);
  auto features = next_element();
  if (!features || !features->child("starttls", cg::xml::ns::tls)) {
    throw std::runtime_error("no STARTTLS offered; received: " + raw_);
  }
  send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto proceed = next_element();
  if (!proceed || proceed->name() != "proceed") {
    throw std::runtime_error("no <proceed/>; received: " + raw_);
  }
  start_tls(max_version);
  open_stream(to);
  auto f2 = next_element();
  if (!f2) {
    throw std::runtime_error("no features after TLS; received: " + raw_);
  }
  return *f2;
}

namespace {

const EVP_MD* scram_md(const std::string& mech) {
  if (mech.rfind("SCRAM-SHA-1", 0) == 0 && (mech.size() == 11 || mech[11] == '-')) {
    return EVP_sha1();
  }
  if (mech.rfind("SCRAM-SHA-256", 0) == 0) {
    return EVP_sha256();
  }
  return EVP_sha512();
}

std::string b64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(raw.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string unb64(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) {
    throw std::runtime_error("bad base64 from server");
  }
  std::size_t len = static_cast<std::size_t>(n);
  if (!text.empty() && text.back() == '=') {
    --len;
  }
  if (text.size() >= 2 && text[text.size() - 2] == '=') {
    --len;
  }
  out.resize(len);
  return out;
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
       out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::map<char, std::string> scram_attrs(const std::string& msg) {
  std::map<char, std::string> out;
  std::size_t start = 0;
  while (start <= msg.size()) {
    auto comma = msg.find(',', start);
    std::string part = msg.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (part.size() >= 2 && part[1] == '=') {
      out[part[0]] = part.substr(2);
    }
    if (comma == std::string::npos) {
      break;
    }
    start = comma + 1;
  }
  return out;
}

} // namespace

std::string client_tls_exporter(SSL* ssl) {
  static constexpr char kLabel[] = "EXPORTER-Channel-Binding";
  unsigned char out[32];
  if (SSL_export_keying_material(ssl, out, sizeof out, kLabel, sizeof kLabel - 1, nullptr, 0, 0) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string client_tls_server_end_point(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) {
    return {};
  }
  int nid = NID_undef;
  X509_get_signature_info(cert, &nid, nullptr, nullptr, nullptr);
  if (nid == NID_md5 || nid == NID_sha1) {
    nid = NID_sha256;
  }
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_get_digestbynid(nid), buf, &len);
  X509_free(cert);
  return std::string(reinterpret_cast<char*>(buf), len);
}

std::string client_tls_unique(SSL* ssl) {
  char buf[EVP_MAX_MD_SIZE];
  std::size_t n =
      SSL_session_reused(ssl) ? SSL_get_peer_finished(ssl, buf, sizeof buf) : SSL_get_finished(ssl, buf, sizeof buf);
  return std::string(buf, n);
}

Element RawClient::authenticate(const std::string& mechanism, const std::string& user, const std::string& password,
                                const std::string& cb_type) {
  auto is_final = [](const Element& e) { return e.name() == "success" || e.name() == "failure"; };
  if (mechanism == "PLAIN") {
    std::string msg = std::string("\0", 1) + user + std::string("\0", 1) + password;
    send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" + b64(msg) + "</auth>");
    auto reply = wait_for(is_final);
    if (!reply) {
      throw std::runtime_error("no SASL outcome; received: " + raw_);
    }
    return *reply;
  }
  const EVP_MD* md = scram_md(mechanism);
  unsigned char nonce_raw[18];
  RAND_bytes(nonce_raw, sizeof nonce_raw);
  const std::string cnonce = b64(std::string(reinterpret_cast<char*>(nonce_raw), sizeof nonce_raw));
  const std::string gs2 = cb_type.empty() ? "n,," : "p=" + cb_type + ",,";
  const std::string first_bare = "n=" + user + ",r=" + cnonce;
  send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mechanism + "'>" + b64(gs2 + first_bare) +
       "</auth>");
  auto challenge = next_element();
  if (!challenge) {
    throw std::runtime_error("no SASL challenge; received: " + raw_);
  }
  if (challenge->name() != "challenge") {
    return *challenge;
  }
  const std::string server_first = unb64(challenge->text());
  auto attrs = scram_attrs(server_first);
  if (attrs['r'].rfind(cnonce, 0) != 0) {
    throw std::runtime_error("server nonce does not extend ours");
  }
  const std::string salt = unb64(attrs['s']);
  const int iterations = std::stoi(attrs['i']);
  std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations, md,
                    static_cast<int>(salted.size()), reinterpret_cast<unsigned char*>(salted.data()));
  const std::string client_key = hmac(md, salted, "Client Key");
  const std::string stored_key = digest(md, client_key);
  std::string cb_data;
  if (cb_type == "tls-exporter") {
    cb_data = client_tls_exporter(ssl_);
  } else if (cb_type == "tls-server-end-point") {
    cb_data = client_tls_server_end_point(ssl_);
  } else if (cb_type == "tls-unique") {
    cb_data = client_tls_unique(ssl_);
  }
  const std::string final_without_proof = "c=" + b64(gs2 + cb_data) + ",r=" + attrs['r'];
  const std::string auth_message = first_bare + "," + server_first + "," + final_without_proof;
  std::string proof = hmac(md, stored_key, auth_message);
  for (std::size_t i = 0; i < proof.size(); ++i) {
    proof[i] = static_cast<char>(proof[i] ^ client_key[i]);
  }
  send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(final_without_proof + ",p=" + b64(proof)) +
       "</response>");
  auto outcome = wait_for(is_final);
  if (!outcome) {
    throw std::runtime_error("no SASL outcome; received: " + raw_);
  }
  if (outcome->name() == "success") {
    // RFC 5802 §3: the client MUST verify the server signature.
    auto v = scram_attrs(unb64(outcome->text()))['v'];
    const std::string expected = b64(hmac(md, hmac(md, salted, "Server Key"), auth_message));
    if (v != expected) {
      throw std::runtime_error("server signature does not verify");
    }
  }
  return *outcome;
}

std::string RawClient::bind(const std::string& resource) {
  open_stream();
  auto features = next_element();
  if (!features || !features->child("bind", cg::xml::ns::bind)) {
    throw std::runtime_error("no bind feature; received: " + raw_);
  }
  std::string payload =
      resource.empty() ? "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                       : "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + resource + "</resource></bind>";
  auto reply = iq("<iq type='set' id='bind1'>" + payload + "</iq>", "bind1");
  if (!reply || reply->attr("type") != "result") {
    throw std::runtime_error("bind failed; received: " + raw_);
  }
  return reply->child("bind", cg::xml::ns::bind)->child_text("jid");
}

std::string RawClient::login(int port, const std::string& user, const std::string& password,
                             const std::string& resource) {
  connect(port);
  starttls_and_reopen();
  auto outcome = authenticate("SCRAM-SHA-256", user, password);
  if (outcome.name() != "success") {
    throw std::runtime_error("login failed for " + user + "; received: " + raw_);
  }
  return bind(resource);
}

std::optional<Element> RawClient::iq(const std::string& xml, const std::string& id, std::chrono::milliseconds timeout) {
  send(xml);
  return wait_for(
      [&](const Element& e) {
        return e.name() == "iq" && e.attr("id") == id && (e.attr("type") == "result" || e.attr("type") == "error");
      },
      timeout);
}

// ---------------------------------------------------------------------------------------------------------------

namespace {

void strophe_conn_cb(xmpp_conn_t*, xmpp_conn_event_t status, int error, xmpp_stream_error_t* stream_error,
                     void* userdata) {
  static_cast<StropheClient*>(userdata)->on_conn(status, error, stream_error);
}

int strophe_stanza_cb(xmpp_conn_t*, xmpp_stanza_t* stanza, void* userdata) {
  static_cast<StropheClient*>(userdata)->on_stanza(stanza);
  return 1; // keep the handler
}

} // namespace

StropheClient::StropheClient(const std::string& jid, const std::string& password) {
  static bool initialised = [] {
    xmpp_initialize();
    return true;
  }();
  (void)initialised;
  xmpp_log_t* log = std::getenv("CG_STROPHE_LOG") != nullptr ? xmpp_get_default_logger(XMPP_LEVEL_DEBUG) : nullptr;
  ctx_ = xmpp_ctx_new(nullptr, log);
  conn_ = xmpp_conn_new(ctx_);
  xmpp_conn_set_jid(conn_, jid.c_str());
  xmpp_conn_set_pass(conn_, password.c_str());
  xmpp_handler_add(conn_, strophe_stanza_cb, nullptr, nullptr, nullptr, this);
}

StropheClient::~StropheClient() {
  if (state_ == State::Connected) {
    disconnect(2s);
  }
  xmpp_conn_release(conn_);
  xmpp_ctx_free(ctx_);
}

void StropheClient::run_once() {
  xmpp_run_once(ctx_, 20);
}

bool StropheClient::connect(int port, const std::string& cafile, bool direct_tls, std::chrono::milliseconds timeout) {
  xmpp_conn_set_flags(conn_, direct_tls ? XMPP_CONN_FLAG_LEGACY_SSL : XMPP_CONN_FLAG_MANDATORY_TLS);
  xmpp_conn_set_cafile(conn_, cafile.c_str());
  state_ = State::Connecting;
  if (xmpp_connect_client(conn_, "127.0.0.1", static_cast<unsigned short>(port), strophe_conn_cb, this) != XMPP_EOK) {
    state_ = State::Failed;
    return false;
  }
  auto deadline = Clock::now() + timeout;
  while (state_ == State::Connecting && Clock::now() < deadline) {
    run_once();
  }
  return state_ == State::Connected;
}

void StropheClient::disconnect(std::chrono::milliseconds timeout) {
  if (state_ != State::Connected) {
    return;
  }
  xmpp_disconnect(conn_);
  auto deadline = Clock::now() + timeout;
  while (state_ == State::Connected && Clock::now() < deadline) {
    run_once();
  }
}

void StropheClient::on_conn(xmpp_conn_event_t status, int error, xmpp_stream_error_t* err) {
  if (status == XMPP_CONN_CONNECT) {
    state_ = State::Connected;
    return;
  }
  disconnect_error = error;
  if (err != nullptr && err->stanza != nullptr) {
    for (xmpp_stanza_t* c = xmpp_stanza_get_children(err->stanza); c != nullptr; c = xmpp_stanza_get_next(c)) {
      const char* name = xmpp_stanza_get_name(c);
      if (name != nullptr && std::strcmp(name, "text") != 0) {
        stream_error = name;
        break;
      }
    }
  }
  state_ = state_ == State::Connecting ? State::Failed : State::Disconnected;
}

void StropheClient::on_stanza(xmpp_stanza_t* stanza) {
  char* text = nullptr;
  size_t len = 0;
  if (xmpp_stanza_to_text(stanza, &text, &len) != XMPP_EOK) {
    return;
  }
  std::string xml(text, len);
  xmpp_free(ctx_, text);
  Element el;
  std::string error;
  if (!cg::xml::parse_element(xml, el, error)) {
    return;
  }
  if (answer_pings_ && el.name() == "iq" && el.attr("type") == "get" && el.child("ping", "urn:xmpp:ping")) {
    send("<iq type='result' id='" + std::string(el.attr("id")) + "' to='" + std::string(el.attr("from")) + "'/>");
  }
  received.push_back(std::move(el));
}

void StropheClient::send(const std::string& xml) {
  xmpp_send_raw_string(conn_, "%s", xml.c_str());
  // libstrophe writes its queue from the event loop: run it once so the data leaves now.
  xmpp_run_once(ctx_, 1);
}

std::optional<Element> StropheClient::wait_for(const std::function<bool(const Element&)>& pred,
                                               std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    for (auto it = received.begin(); it != received.end(); ++it) {
      if (pred(*it)) {
        Element found = std::move(*it);
        received.erase(it);
        return found;
      }
    }
    if (Clock::now() >= deadline || state_ != State::Connected) {
      return std::nullopt;
    }
    run_once();
  }
}

std::optional<Element> StropheClient::iq(const std::string& xml, const std::string& id,
                                         std::chrono::milliseconds timeout) {
  send(xml);
  return wait_for(
      [&](const Element& e) {
        return e.name() == "iq" && e.attr("id") == id && (e.attr("type") == "result" || e.attr("type") == "error");
      },
      timeout);
}

bool StropheClient::wait_disconnected(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (state_ == State::Connected && Clock::now() < deadline) {
    run_once();
  }
  return state_ != State::Connected;
}

std::string StropheClient::bound_jid() const {
  const char* j = xmpp_conn_get_bound_jid(conn_);
  return j != nullptr ? j : "";
}

// ---------------------------------------------------------------------------------------------------------------

std::function<bool(const Element&)> is_stanza(std::string name, std::string attr, std::string value) {
  return [name = std::move(name), attr = std::move(attr), value = std::move(value)](const Element& e) {
    return e.name() == name && (attr.empty() || e.attr(attr) == value);
  };
}

bool has_child(const Element& el, std::string_view name, std::string_view ns) {
  for (const auto* c : el.children()) {
    if (c->name() == name && c->ns() == ns) {
      return true;
    }
  }
  return false;
}

std::string error_condition(const Element& stanza) {
  for (const auto* c : stanza.children()) {
    if (c->name() == "error") {
      for (const auto* cond : c->children()) {
        if (cond->ns() == cg::xml::ns::stanza_errors && cond->name() != "text") {
          return cond->name();
        }
      }
    }
  }
  return {};
}

} // namespace it

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the routing, module and administration tests (appended).

namespace it {

Element login_unbound(RawClient& client, int port, const std::string& user, const std::string& password) {
  client.connect(port);
  client.starttls_and_reopen();
  auto outcome = client.authenticate("SCRAM-SHA-256", user, password);
  if (outcome.name() != "success") {
    throw std::runtime_error("login failed for " + user + "; received: " + client.raw_received());
  }
  client.open_stream();
  auto features = client.next_element();
  if (!features || !features->child("bind", cg::xml::ns::bind)) {
    throw std::runtime_error("no bind feature; received: " + client.raw_received());
  }
  return *features;
}

std::optional<Element> request_bind(RawClient& client, const std::string& resource_xml, const std::string& id) {
  std::string payload = resource_xml.empty() ? "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                                             : "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" +
                                                   resource_xml + "</resource></bind>";
  return client.iq("<iq type='set' id='" + id + "'>" + payload + "</iq>", id);
}

bool sync_ping(RawClient& client, const std::string& id) {
  auto r = client.iq("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", id);
  return r && r->attr("type") == "result";
}

bool sync_ping(StropheClient& client, const std::string& id) {
  auto r = client.iq("<iq type='get' id='" + id + "' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>", id);
  return r && r->attr("type") == "result";
}

std::string cert_fingerprint(const std::string& pem_path) {
  auto [status, out] = run_program({"/usr/bin/openssl", "x509", "-in", pem_path, "-noout", "-fingerprint", "-sha256"});
  return status == 0 ? out : std::string();
}

Daemon::Daemon(const std::vector<std::string>& argv, const std::string& cwd) {
  int out_pipe[2];
  if (::pipe(out_pipe) != 0) {
    throw std::runtime_error("pipe failed");
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(out_pipe[1], 2);
    ::close(out_pipe[0]);
    if (::chdir(cwd.c_str()) != 0) {
      ::_exit(126);
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  fd_ = out_pipe[0];
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, 5s);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

bool Daemon::wait_output(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  char buf[1024];
  while (out_.find(needle) == std::string::npos) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      return false;
    }
    auto n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) {
      return false;
    }
    out_.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<int> Daemon::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) {
    return std::nullopt;
  }
  ::kill(pid_, sig);
  auto status = wait_child(pid_, timeout);
  if (!status) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, 5s);
  }
  pid_ = -1;
  // Whatever it printed on the way out.
  char buf[1024];
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) {
      break;
    }
    auto n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    out_.append(buf, static_cast<std::size_t>(n));
  }
  return status;
}

} // namespace it

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the stream, TLS and SASL tests (appended).

#include <sys/inotify.h>

namespace it {

void RawClient::start_tls_with(const std::function<void(SSL_CTX*)>& configure) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  configure(ctx_);
  ssl_ = SSL_new(ctx_);
  SSL_set_tlsext_host_name(ssl_, "localhost");
  SSL_set_fd(ssl_, fd_);
  ERR_clear_error();
  if (SSL_connect(ssl_) != 1) {
    std::string reason;
    unsigned long e = 0;
    while ((e = ERR_get_error()) != 0) {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      reason += reason.empty() ? "" : "; ";
      reason += buf;
    }
    SSL_free(ssl_);
    ssl_ = nullptr;
    throw std::runtime_error("TLS handshake failed: " + (reason.empty() ? std::string("connection closed") : reason));
  }
}

Element RawClient::authenticate_scram(const std::string& mechanism, const std::string& user,
                                      const std::string& password, const std::string& gs2_header,
                                      const std::string& cb_data) {
  const EVP_MD* md = scram_md(mechanism);
  unsigned char nonce_raw[18];
  RAND_bytes(nonce_raw, sizeof nonce_raw);
  const std::string cnonce = b64(std::string(reinterpret_cast<char*>(nonce_raw), sizeof nonce_raw));
  const std::string first_bare = "n=" + user + ",r=" + cnonce;
  send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + mechanism + "'>" + b64(gs2_header + first_bare) +
       "</auth>");
  auto challenge = next_element();
  if (!challenge) {
    throw std::runtime_error("no SASL challenge; received: " + raw_);
  }
  if (challenge->name() != "challenge") {
    return *challenge;
  }
  const std::string server_first = unb64(challenge->text());
  auto attrs = scram_attrs(server_first);
  const std::string salt = unb64(attrs['s']);
  const int iterations = std::stoi(attrs['i']);
  std::string salted(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()), iterations, md,
                    static_cast<int>(salted.size()), reinterpret_cast<unsigned char*>(salted.data()));
  const std::string client_key = hmac(md, salted, "Client Key");
  const std::string stored_key = digest(md, client_key);
  const std::string final_without_proof = "c=" + b64(gs2_header + cb_data) + ",r=" + attrs['r'];
  const std::string auth_message = first_bare + "," + server_first + "," + final_without_proof;
  std::string proof = hmac(md, stored_key, auth_message);
  for (std::size_t i = 0; i < proof.size(); ++i) {
    proof[i] = static_cast<char>(proof[i] ^ client_key[i]);
  }
  send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + b64(final_without_proof + ",p=" + b64(proof)) +
       "</response>");
  auto outcome = wait_for([](const Element& e) { return e.name() == "success" || e.name() == "failure"; });
  if (!outcome) {
    throw std::runtime_error("no SASL outcome; received: " + raw_);
  }
  return *outcome;
}

std::optional<Element> RawClient::next_element_then_restart(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!parser_.has_event()) {
    if (!fill(deadline)) {
      return std::nullopt;
    }
  }
  // fill() feeds the parser all it receives, so the parser's input began this far into raw_.
  const std::size_t base = raw_.size() - static_cast<std::size_t>(parser_.bytes_fed());
  auto ev = next(0ms);
  if (!ev || ev->kind != cg::xml::StreamEvent::Kind::Stanza) {
    return std::nullopt;
  }
  const std::size_t end = base + static_cast<std::size_t>(ev->end_offset);
  parser_.reset();
  if (end < raw_.size()) {
    parser_.feed(std::string_view(raw_).substr(end));
  }
  return std::move(ev->element);
}

bool wait_for_log(const TestServer& server, const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) {
    throw std::runtime_error("inotify_init1 failed");
  }
  // Watch first, then look: a line written in between still wakes the poll below.
  ::inotify_add_watch(fd, (server.dir() + "/server.log").c_str(), IN_MODIFY);
  bool found = false;
  while (!(found = server.log().find(needle) != std::string::npos)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
      break;
    }
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  }
  ::close(fd);
  return found;
}

} // namespace it
