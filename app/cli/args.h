// Minimal command-line option parsing for glassbox-cli subcommands.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace gbcli {

class Args {
  public:
    // flags: options that take no value (e.g. "--greedy").
    Args(int argc, char ** argv, int first, const std::set<std::string> & flags);

    bool ok() const { return m_error.empty(); }
    const std::string & error() const { return m_error; }

    bool has(const std::string & name) const;
    std::optional<std::string> get(const std::string & name) const;
    std::string get_or(const std::string & name, const std::string & def) const;
    // Numeric getters record an error (see ok()) on malformed values.
    int64_t  get_int(const std::string & name, int64_t def);
    double   get_float(const std::string & name, double def);
    std::vector<std::string> get_all(const std::string & name) const;
    const std::vector<std::string> & positional() const { return m_positional; }
    // Options given but never queried (typos): reported by the caller.
    std::vector<std::string> unknown(const std::set<std::string> & known) const;

  private:
    std::multimap<std::string, std::string> m_opts;
    std::vector<std::string> m_positional;
    std::string m_error;
};

}  // namespace gbcli
