// Minimal command-line option parsing for glassbox-cli subcommands.
#include "args.h"

#include <cstdlib>

namespace gbcli {

Args::Args(int argc, char ** argv, int first, const std::set<std::string> & flags) {
    for (int i = first; i < argc; ++i) {
        std::string a = argv[i];
        if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (a[1] >= '0' && a[1] <= '9'))) {
            std::string value;
            const size_t eq = a.find('=');
            if (eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
            } else if (!flags.count(a)) {
                if (i + 1 >= argc) {
                    m_error = "option " + a + " needs a value";
                    return;
                }
                value = argv[++i];
            }
            m_opts.emplace(a, value);
        } else {
            m_positional.push_back(a);
        }
    }
}

bool Args::has(const std::string & name) const { return m_opts.count(name) > 0; }

std::optional<std::string> Args::get(const std::string & name) const {
    auto range = m_opts.equal_range(name);
    if (range.first == range.second) return std::nullopt;
    return std::prev(range.second)->second;  // last one wins
}

std::string Args::get_or(const std::string & name, const std::string & def) const {
    auto v = get(name);
    return v ? *v : def;
}

int64_t Args::get_int(const std::string & name, int64_t def) {
    auto v = get(name);
    if (!v) return def;
    char * end = nullptr;
    const long long x = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != 0) {
        if (m_error.empty()) m_error = "option " + name + " expects an integer, got \"" + *v + "\"";
        return def;
    }
    return x;
}

double Args::get_float(const std::string & name, double def) {
    auto v = get(name);
    if (!v) return def;
    char * end = nullptr;
    const double x = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != 0) {
        if (m_error.empty()) m_error = "option " + name + " expects a number, got \"" + *v + "\"";
        return def;
    }
    return x;
}

std::vector<std::string> Args::get_all(const std::string & name) const {
    std::vector<std::string> out;
    auto range = m_opts.equal_range(name);
    for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
    return out;
}

std::vector<std::string> Args::unknown(const std::set<std::string> & known) const {
    std::vector<std::string> out;
    for (const auto & [k, v] : m_opts) {
        if (!known.count(k)) out.push_back(k);
    }
    return out;
}

}  // namespace gbcli
