#include "modtrain/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "modtrain/core/error.h"

namespace modtrain::io {

using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit
}

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2") return 1;
  return 0;
}

void write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorBytes*> order;
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorBytes* a, const TensorBytes* b) { return a->name < b->name; });
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorBytes* t : order) {
    size_t elements = 1;
    for (int64_t d : t->shape) elements *= static_cast<size_t>(d);
    if (safetensors_dtype_size(t->dtype) == 0 || elements * safetensors_dtype_size(t->dtype) != t->bytes)
      throw InternalError("safetensors: tensor " + t->name + " has " + std::to_string(t->bytes) +
                          " bytes for its shape and dtype " + t->dtype);
    header[t->name] = {{"dtype", t->dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->bytes}}};
    offset += t->bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the reference writer does
  std::string head(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) head[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  head += text;
  std::vector<std::string_view> parts = {head};  // the tensors are written from where they are, not copied
  for (const TensorBytes* t : order) parts.emplace_back(static_cast<const char*>(t->data), t->bytes);
  write_file_atomic(path, parts);
}

SafetensorsView::SafetensorsView(const uint8_t* data, size_t size, const std::string& source) {
  auto fail = [&](const std::string& what) { return UserError(source + ": malformed safetensors file: " + what); };
  if (size < 8) throw fail("shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(data[i]) << (8 * i);
  if (n > kMaxHeaderBytes) throw fail("header length " + std::to_string(n) + " is over the 100 MiB limit");
  if (n > size - 8)
    throw fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
               " bytes)");
  if (n == 0 || data[8] != '{') throw fail("the header is not a JSON object");
  // The parser keeps the last of two equal keys: a tensor named twice would lose one silently
  // (and its bytes showed up as "a gap in the data"). Count the top-level keys as they are parsed.
  int open = 0;
  std::set<std::string> names;
  std::string twice;
  json::parser_callback_t watch = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) ++open;
    else if (event == json::parse_event_t::object_end) --open;
    else if (event == json::parse_event_t::key && open == 1 && !names.insert(parsed.get<std::string>()).second &&
             twice.empty())
      twice = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(data + 8, data + 8 + n, watch, /*allow_exceptions=*/false);
  } catch (const json::exception&) {
    header = json(json::value_t::discarded);
  }
  if (header.is_discarded() || !header.is_object()) throw fail("the header is not valid JSON");
  if (!twice.empty()) throw fail("the header names tensor '" + twice + "' twice");
  const uint64_t buffer = size - 8 - n;
  const uint8_t* base = data + 8 + n;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw fail("__metadata__ must be an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw fail("__metadata__." + k + " is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!entry.is_object()) throw fail(where + "entry is not an object");
    auto dtype = entry.find("dtype");
    auto shape = entry.find("shape");
    auto offsets = entry.find("data_offsets");
    if (dtype == entry.end() || !dtype->is_string()) throw fail(where + "missing dtype");
    if (shape == entry.end() || !shape->is_array()) throw fail(where + "missing shape");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
      throw fail(where + "data_offsets must be [begin, end]");
    TensorBytes t;
    t.name = name;
    t.dtype = dtype->get<std::string>();
    size_t width = safetensors_dtype_size(t.dtype);
    if (width == 0) throw fail(where + "unknown dtype '" + t.dtype + "'");
    uint64_t elements = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned()) throw fail(where + "shape must hold non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > 0 && elements > std::numeric_limits<uint64_t>::max() / dim) throw fail(where + "shape overflows");
      elements *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      throw fail(where + "data_offsets must be non-negative integers");
    uint64_t begin = (*offsets)[0].get<uint64_t>(), end = (*offsets)[1].get<uint64_t>();
    if (begin > end || end > buffer)
      throw fail(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] outside the " +
                 std::to_string(buffer) + "-byte data");
    if (elements > std::numeric_limits<uint64_t>::max() / width || elements * width != end - begin)
      throw fail(where + "shape and dtype need " + std::to_string(elements * width) + " bytes, data_offsets give " +
                 std::to_string(end - begin));
    t.data = base + begin;
    t.bytes = static_cast<size_t>(end - begin);
    spans.emplace_back(begin, end);
    tensors_[name] = t;
  }
  // The tensors must tile the data exactly: no overlaps, no holes, nothing after the last one.
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (const auto& [begin, end] : spans) {
    if (begin != at) throw fail(begin < at ? "tensors overlap" : "a gap in the data (bytes no tensor owns)");
    at = end;
  }
  if (at != buffer) throw fail(std::to_string(buffer - at) + " trailing bytes after the last tensor");
}

const TensorBytes* SafetensorsView::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_unique<MappedFile>(path)),
      view_(std::make_unique<SafetensorsView>(file_->data(), file_->size(), path)) {}

}  // namespace modtrain::io
