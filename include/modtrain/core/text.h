// Small text helpers used by error messages: edit distance for "did you mean" suggestions,
// shortest round-trip formatting of doubles, joining.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace modtrain::text {

// Levenshtein distance (insert, delete, substitute each cost 1).
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, or "" when none is close enough to be a plausible typo.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Shortest decimal text that parses back to exactly `value` ("0.0005", "1e-08", "3").
std::string format_double(double value);

std::string join(const std::vector<std::string>& parts, const std::string& sep);

// 64-bit FNV-1a hash: stable across processes and machines (unlike std::hash).
uint64_t fnv1a64(const std::string& bytes);

std::string hex64(uint64_t value);

}  // namespace modtrain::text
