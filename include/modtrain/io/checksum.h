// A fast non-cryptographic checksum of bytes (8 bytes a step, multiply-rotate mixing, several GB/s):
// what prepared shards and checkpoint pieces are verified with. It catches torn writes, truncation
// and bit rot, not tampering (safetensors files exported for others carry SHA-256 instead).
// Written here rather than taken from xxHash, which Debian packages but this project does not
// otherwise need: ten lines, and the value prepared shards already store must not change.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace modtrain::io {

inline uint64_t checksum64(const void* bytes, size_t size) {
  const auto* data = static_cast<const uint8_t*>(bytes);
  uint64_t h = 0x9E3779B97F4A7C15ULL ^ size;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h ^= w * 0xC2B2AE3D27D4EB4FULL;
    h = ((h << 31) | (h >> 33)) * 0x9E3779B97F4A7C15ULL;
  }
  for (; i < size; ++i) h = (h ^ data[i]) * 0x100000001B3ULL;
  return h ^ (h >> 29);
}

}  // namespace modtrain::io
