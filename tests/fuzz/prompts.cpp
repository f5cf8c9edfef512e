// Fuzz target: a --prompts file of siglite-eval (one template a line, with {} for the class name), read and filled.
#include <siglite/eval/zero_shot.hpp>

#include "fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::as_file(data, size, "prompts.txt");
  fuzz::result_or_error(path, [&] {
    for (const std::string& t : siglite::eval::read_templates(path)) siglite::data::format_prompt(t, "ankle boot");
  });
  return 0;
}
