// The command-line parser the sample programs share: flags with one value (--steps 100), switches
// (--skip-bad), lists (--texts "a cat" "a dog": every argument up to the next one starting with
// "--"), and --help / -h, which prints the usage and exits. A --threads N flag sets the number of OpenMP
// threads; device() reads --device. Every mistake is a siglite::Error naming the program ("siglite-eval:
// unknown argument '--lmit' (see --help)").
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "siglite/backends/backend.hpp"
#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/precision.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace siglite::cli {

/// What a program accepts. Names are written without the leading "--".
struct Spec {
  std::string program;  // for messages: "siglite-train"
  std::string usage;  // printed by --help
  std::vector<std::string> values;  // flags that take one value
  std::vector<std::string> switches;  // flags that take none
  std::vector<std::string> lists;  // flags that take one or more values
  std::vector<std::string> required;  // flags that must be given
};

/// The parsed command line.
class Args {
 public:
  explicit Args(std::string program) : program_(std::move(program)) {}

  const std::string& program() const { return program_; }
  bool has(const std::string& k) const { return values_.count(k) > 0 || lists_.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def) const {
    return values_.count(k) ? values_.at(k) : def;
  }
  /// The values of a list flag; empty when it was not given.
  std::vector<std::string> list(const std::string& k) const {
    return lists_.count(k) ? lists_.at(k) : std::vector<std::string>{};
  }
  /// A flag's value as a number, `def` when absent.
  double num(const std::string& k, double def) const {
    if (!values_.count(k)) return def;
    try {
      size_t used = 0;
      const double v = std::stod(values_.at(k), &used);
      if (used == values_.at(k).size()) return v;
    } catch (const std::exception&) {
    }
    throw Error(program_ + ": --" + k + " needs a number, got '" + values_.at(k) + "'");
  }
  /// A flag's value as a whole number, `def` when absent.
  int64_t integer(const std::string& k, int64_t def) const {
    if (!values_.count(k)) return def;
    const double v = num(k, 0);
    SIGLITE_CHECK(v == std::floor(v) && std::fabs(v) < 9e15, program_, ": --", k, " needs a whole number, got '",
                  values_.at(k), "'");
    return static_cast<int64_t>(v);
  }

 private:
  friend Args parse(const Spec& spec, int argc, char** argv);
  std::string program_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> lists_;
};

/// Parses argv against `spec`. A flag given twice is an error, as is a value flag without a value
/// or a list flag without any.
inline Args parse(const Spec& spec, int argc, char** argv) {
  const auto is = [](const std::vector<std::string>& names, const std::string& name) {
    for (const std::string& n : names)
      if (n == name) return true;
    return false;
  };
  Args a(spec.program);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << spec.usage;
      std::exit(0);
    }
    const std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2) : "";
    const bool value = is(spec.values, name), sw = is(spec.switches, name), list = is(spec.lists, name);
    SIGLITE_CHECK(value || sw || list, spec.program, ": unknown argument '", arg, "' (see --help)");
    SIGLITE_CHECK(!a.has(name), spec.program, ": ", arg, " is given twice");
    if (sw) {
      a.values_[name] = "1";
    } else if (value) {
      SIGLITE_CHECK(i + 1 < argc, spec.program, ": ", arg, " needs a value");
      a.values_[name] = argv[++i];
    } else {
      std::vector<std::string>& items = a.lists_[name];
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) items.push_back(argv[++i]);
      SIGLITE_CHECK(!items.empty(), spec.program, ": ", arg, " needs at least one value");
    }
  }
  for (const std::string& r : spec.required)
    SIGLITE_CHECK(a.has(r), spec.program, ": --", r, " is required (see --help)");
  if (a.has("threads")) {
    const int64_t threads = a.integer("threads", 0);
    SIGLITE_CHECK(threads >= 1, spec.program, ": --threads needs at least 1, got ", threads);
#ifdef _OPENMP
    omp_set_num_threads(static_cast<int>(threads));
#endif
  }
  return a;
}

/// The device of --device (cpu when absent: "cpu", "cuda", "cuda:1"), checked to be there: a device this build
/// or this machine lacks is an Error naming the program and what is missing.
inline Device device(const Args& args) {
  const std::string text = args.get("device", "cpu");
  try {
    const Device d = Device::parse(text);
    backends::of(d);
    return d;
  } catch (const Error& e) {
    throw Error(args.program() + ": --device " + text + ": " + e.what());
  }
}

/// --precision fp32|tf32|bf16 (default fp32): sets float32_matmul_precision() for the run. tf32 lets a GPU multiply
/// float32 matrices on TF32 tensor cores; the CPU computes float32 either way.
inline void precision(const Args& args) {
  const std::string text = args.get("precision", "fp32");
  if (text == "fp32") {
    set_float32_matmul_precision(MatmulPrecision::Highest);
  } else if (text == "tf32") {
    set_float32_matmul_precision(MatmulPrecision::High);
  } else if (text == "bf16") {
    throw Error(args.program() + ": --precision bf16: bf16 mixed precision is not implemented yet; fp32 and tf32 are");
  } else {
    throw Error(args.program() + ": --precision " + text + ": not one of fp32, tf32, bf16");
  }
}

}  // namespace siglite::cli
