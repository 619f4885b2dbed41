// User accounts: credentials stored as SCRAM data (never passwords) in the keyval store "accounts".
// Shared by chatgroupd (authentication) and chatgroupctl (administration). Blocking: run on the storage worker.
#pragma once

#include "server/sasl/sasl.hpp"
#include "storage/store.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cg::core {

class Accounts {
public:
  Accounts(storage::Driver& driver, std::uint32_t scram_iterations);

  enum class Result { Ok, Exists, NotFound, InvalidUsername, InvalidPassword };
  static std::string_view describe(Result r);

  // `node` is normalised with nodeprep; nullopt/false/NotFound/InvalidUsername when it is not a valid localpart.
  bool exists(std::string_view host, std::string_view node);
  std::optional<sasl::Credentials> credentials(std::string_view host, std::string_view node);
  Result create(std::string_view host, std::string_view node, std::string_view password);
  Result set_password(std::string_view host, std::string_view node, std::string_view password);
  // Removes the account and everything stored for it.
  Result remove(std::string_view host, std::string_view node);
  std::vector<std::string> list(std::string_view host);

private:
  storage::Driver& driver_;
  std::shared_ptr<storage::KeyValStore> store_;
  std::uint32_t iterations_;
};

} // namespace cg::core
