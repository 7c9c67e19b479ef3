// The safetensors format (Hugging Face): 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the tensor
// bytes. Our own reader/writer: the reader treats files as untrusted (header length, JSON,
// dtypes, shapes, offsets, overlaps and holes are all checked) so a malformed file is a clear
// error, never a crash or an out-of-bounds read. Plain C++: torch conversion lives with the model.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "modtrain/io/files.h"

namespace modtrain::io {

// Bytes per element of a safetensors dtype ("F32" -> 4); 0 for an unknown dtype.
size_t safetensors_dtype_size(const std::string& dtype);

struct TensorBytes {
  std::string name;
  std::string dtype;  // F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL
  std::vector<int64_t> shape;
  const void* data = nullptr;  // element bytes, little-endian, row-major
  size_t bytes = 0;
};

// Writes atomically; tensors are laid out in name order. Throws on inconsistent sizes.
void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// The bytes of a whole safetensors file, validated (from memory: also what the fuzz test uses).
class SafetensorsView {
 public:
  // `source` names the file in error messages. Throws UserError("<source>: ...") when malformed.
  SafetensorsView(const uint8_t* data, size_t size, const std::string& source);

  const std::map<std::string, TensorBytes>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorBytes* find(const std::string& name) const;

 private:
  std::map<std::string, TensorBytes> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A memory-mapped, validated safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const SafetensorsView& view() const { return *view_; }

 private:
  std::unique_ptr<MappedFile> file_;
  std::unique_ptr<SafetensorsView> view_;
};

}  // namespace modtrain::io
