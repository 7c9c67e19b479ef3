#include "modtrain/data/utf8.h"

#include "unicode.h"

namespace modtrain {

size_t repair_utf8_text(std::string& text) { return unicode::repair_utf8(text); }

}  // namespace modtrain
