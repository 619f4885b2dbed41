// The mechanism registry: names, strongest first, and the factory.
#include "server/sasl/internal.hpp"

namespace cg::sasl {

const std::vector<std::string>& all_mechanisms() {
  static const std::vector<std::string> names = {
      "SCRAM-SHA-512-PLUS",
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-512",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "PLAIN",
  };
  return names;
}

bool is_plus(std::string_view mechanism) {
  return mechanism.ends_with("-PLUS");
}

std::unique_ptr<ServerMechanism> make_mechanism(std::string_view name, MechanismContext ctx) {
  if (name == "PLAIN") {
    return detail::make_plain(std::move(ctx));
  }
  for (Hash h : {Hash::Sha1, Hash::Sha256, Hash::Sha512}) {
    const std::string base = "SCRAM-" + std::string(hash_name(h));
    if (name == base) {
      return detail::make_scram(h, false, std::move(ctx));
    }
    if (name == base + "-PLUS") {
      return detail::make_scram(h, true, std::move(ctx));
    }
  }
  return nullptr;
}

} // namespace cg::sasl
