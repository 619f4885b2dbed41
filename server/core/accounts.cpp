#include "server/core/accounts.hpp"

#include "server/api/jid.hpp"

namespace cg::core {

Accounts::Accounts(storage::Driver& driver, std::uint32_t scram_iterations)
    : driver_(driver), store_(driver.keyval("accounts")), iterations_(scram_iterations) {}

std::string_view Accounts::describe(Result r) {
  switch (r) {
  case Result::Ok:
    return "ok";
  case Result::Exists:
    return "the account already exists";
  case Result::NotFound:
    return "no such account";
  case Result::InvalidUsername:
    return "not a valid username (RFC 6122 nodeprep)";
  case Result::InvalidPassword:
    return "not a valid password (empty, or rejected by SASLprep)";
  }
  return "unknown";
}

bool Accounts::exists(std::string_view host, std::string_view node) {
  auto n = api::Jid::nodeprep(node);
  return n && store_->get(host, *n).has_value();
}

std::optional<sasl::Credentials> Accounts::credentials(std::string_view host, std::string_view node) {
  auto n = api::Jid::nodeprep(node);
  if (!n) {
    return std::nullopt;
  }
  auto text = store_->get(host, *n);
  if (!text) {
    return std::nullopt;
  }
  return sasl::parse_credentials(*text);
}

Accounts::Result Accounts::create(std::string_view host, std::string_view node, std::string_view password) {
  auto n = api::Jid::nodeprep(node);
  if (!n) {
    return Result::InvalidUsername;
  }
  if (store_->get(host, *n)) {
    return Result::Exists;
  }
  auto creds = sasl::make_credentials(password, iterations_);
  if (!creds) {
    return Result::InvalidPassword;
  }
  store_->set(host, *n, sasl::serialize(*creds));
  return Result::Ok;
}

Accounts::Result Accounts::set_password(std::string_view host, std::string_view node, std::string_view password) {
  auto n = api::Jid::nodeprep(node);
  if (!n) {
    return Result::InvalidUsername;
  }
  if (!store_->get(host, *n)) {
    return Result::NotFound;
  }
  auto creds = sasl::make_credentials(password, iterations_);
  if (!creds) {
    return Result::InvalidPassword;
  }
  store_->set(host, *n, sasl::serialize(*creds));
  return Result::Ok;
}

Accounts::Result Accounts::remove(std::string_view host, std::string_view node) {
  auto n = api::Jid::nodeprep(node);
  if (!n) {
    return Result::InvalidUsername;
  }
  if (!store_->get(host, *n)) {
    return Result::NotFound;
  }
  driver_.remove_user(host, *n);
  store_->remove(host, *n);
  return Result::Ok;
}

std::vector<std::string> Accounts::list(std::string_view host) {
  return store_->users(host);
}

} // namespace cg::core
