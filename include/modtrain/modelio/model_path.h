// A model directory as given on the command line (`eval --model`, `predict --model`, `export
// --checkpoint`): a directory, or one of the pointer files RUN/checkpoints/latest and
// RUN/checkpoints/best, which name a checkpoint directory beside them.
#pragma once

#include <string>

namespace modtrain {

std::string resolve_model_path(const std::string& path);  // throws UserError for a dangling pointer

// The directory name a pointer file holds (trailing whitespace removed); "" when there is no file.
std::string read_pointer_file(const std::string& path);

}  // namespace modtrain
