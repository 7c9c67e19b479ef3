// Invalid UTF-8 replaced by U+FFFD, as every reader of raw text does (data/raw_reader.h): for text
// that arrives another way (`modtrain serve`'s request bodies).
#pragma once

#include <cstddef>
#include <string>

namespace modtrain {

// Replaces each invalid sequence in place; returns how many were replaced.
size_t repair_utf8_text(std::string& text);

}  // namespace modtrain
