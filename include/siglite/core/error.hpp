// siglite::Error and the SIGLITE_CHECK macro used by every layer.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace siglite {

/// The one exception type of the library. Messages name the operation, the argument and the
/// shapes or values involved, e.g. "add: shapes [2,3] and [4] do not broadcast".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

}  // namespace siglite

/// Throws siglite::Error with the streamed message when `cond` is false.
#define SIGLITE_CHECK(cond, ...)                                    \
  do {                                                              \
    if (!(cond)) throw ::siglite::Error(::siglite::detail::cat(__VA_ARGS__)); \
  } while (0)
