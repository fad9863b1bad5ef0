// Test helpers for the Prometheus text format: parse an exposition into
// samples, and sum the samples of a name whose labels include a given set.
#ifndef FETCHD_TESTS_METRICS_EXPOSITION_H_
#define FETCHD_TESTS_METRICS_EXPOSITION_H_

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"

namespace fetchd::testing {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// One sample per non-comment line: name{label="value",...} value. Label
// values in fetchd's metrics never contain quotes, so no unescaping.
inline std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    size_t pos = line.find_first_of("{ ");
    sample.name = line.substr(0, pos);
    if (pos != std::string::npos && line[pos] == '{') {
      const size_t end = line.find('}', pos);
      std::string labels = line.substr(pos + 1, end - pos - 1);
      size_t at = 0;
      while (at < labels.size()) {
        const size_t eq = labels.find('=', at);
        const size_t close = labels.find('"', eq + 2);
        sample.labels[labels.substr(at, eq - at)] =
            labels.substr(eq + 2, close - eq - 2);
        at = close + 2;  // past '"' and ','
      }
      pos = end + 1;
    }
    double value = 0;
    if (!absl::SimpleAtod(line.substr(pos + 1), &value)) continue;
    sample.value = value;
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The sum of the samples called `name` whose labels include `labels`; -1
// when there is none.
inline double Sum(const std::vector<Sample>& samples, const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) {
  double sum = 0;
  bool found = false;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      const auto it = s.labels.find(key);
      if (it == s.labels.end() || it->second != value) match = false;
    }
    if (!match) continue;
    sum += s.value;
    found = true;
  }
  return found ? sum : -1;
}

// The metric family names of the exposition (its "# TYPE" lines).
inline std::set<std::string> FamilyNames(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      names.insert(line.substr(7, line.find(' ', 7) - 7));
    }
  }
  return names;
}

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_METRICS_EXPOSITION_H_
