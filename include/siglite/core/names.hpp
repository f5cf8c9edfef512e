// Enums with text names: a choice among a few things is an enum in the code and a word at the edges (the
// command line, config files, messages), parsed once there. Each enum lists its names in a specialisation:
//
//   template <> struct EnumNames<Color> {
//     static constexpr const char* what = "color";
//     static constexpr std::pair<Color, const char*> values[] = {{Color::Red, "red"}, {Color::Blue, "blue"}};
//   };
#pragma once
#include <string>
#include <utility>

#include "siglite/core/error.hpp"

namespace siglite {

template <typename E>
struct EnumNames;

/// The name of e.
template <typename E, typename = decltype(EnumNames<E>::values)>
std::string to_string(E e) {
  for (const auto& [value, name] : EnumNames<E>::values)
    if (value == e) return name;
  throw Error(detail::cat(EnumNames<E>::what, ": value ", static_cast<int>(e), " has no name"));
}

/// The value named `text`; an Error naming the text and every name otherwise ("loss 'hinge' is not naive, tiled
/// or softmax").
template <typename E, typename = decltype(EnumNames<E>::values)>
E parse(const std::string& text) {
  std::string names;
  const size_t n = std::size(EnumNames<E>::values);
  for (size_t i = 0; i < n; ++i) {
    const auto& [value, name] = EnumNames<E>::values[i];
    if (text == name) return value;
    names += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(name);
  }
  throw Error(detail::cat(EnumNames<E>::what, " '", text, "' is not ", names));
}

}  // namespace siglite
