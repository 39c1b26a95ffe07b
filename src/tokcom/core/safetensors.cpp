#include "tokcom/core/safetensors.h"

#include "tokcom/core/atomic_file.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"

// The format stores little-endian values; we copy bytes straight into tensors.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

namespace tokcom {
namespace {

using json = nlohmann::json;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as Hugging Face's reader (MAX_HEADER_SIZE)
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
  uint64_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", c10::kDouble, 8},    {"F32", c10::kFloat, 4}, {"F16", c10::kHalf, 2},
    {"BF16", c10::kBFloat16, 2}, {"I64", c10::kLong, 8},  {"I32", c10::kInt, 4},
    {"I16", c10::kShort, 2},     {"I8", c10::kChar, 1},   {"U8", c10::kByte, 1},
    {"BOOL", c10::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// One tensor entry of the header, validated.
struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

[[noreturn]] void fail(const std::string& origin, const std::string& what) {
  throw FormatError(origin + ": " + what);
}

// A JSON value for a message, cut short: a hostile header must not make a megabyte-long error.
std::string brief(const json& v) {
  std::string s = v.dump();
  return s.size() <= 64 ? s : s.substr(0, 60) + " ...";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  if (shape.size() <= 8) return "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
  return fmt::format("[{}, ... ({} dims)]", fmt::join(shape.begin(), shape.begin() + 4, ", "),
                     shape.size());
}

// The reference reader (serde_json) refuses JSON nested deeper than 128 levels; the format itself
// never nests deeper than 3 (header → tensor → shape).
constexpr int kMaxHeaderDepth = 128;

// Parses the JSON header; a parser callback rejects duplicate keys (nlohmann keeps the last one)
// and nesting beyond kMaxHeaderDepth (printing such a value in an error recursed the stack away).
// A UTF-8 byte-order mark is refused, as the reference refuses it.
json parse_header(const char* first, const char* last, const std::string& origin) {
  if (last - first >= 3 && static_cast<unsigned char>(first[0]) == 0xEF &&
      static_cast<unsigned char>(first[1]) == 0xBB && static_cast<unsigned char>(first[2]) == 0xBF)
    fail(origin, "header starts with a UTF-8 byte-order mark, expected '{'");
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxHeaderDepth)
      fail(origin, fmt::format("header nests deeper than {} levels", kMaxHeaderDepth));
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second)
        fail(origin, "duplicate key '" + key + "' in the header");
    }
    return true;
  };
  try {
    return json::parse(first, last, callback);
  } catch (const json::exception& e) {
    fail(origin, std::string("header is not valid JSON: ") + e.what());
  }
}

uint64_t non_negative_int(const json& v, const std::string& origin, const std::string& what) {
  if (!v.is_number_unsigned())
    fail(origin, what + " is " + brief(v) + ", expected a non-negative integer");
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const json& v, const std::string& origin) {
  const std::string where = "tensor '" + name + "'";
  if (!v.is_object())
    fail(origin, where + " is " + std::string(v.type_name()) + ", expected an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(origin, where + " has no \"" + key + "\"");
  Entry e;
  e.name = name;
  const json& dtype = v["dtype"];
  if (!dtype.is_string())
    fail(origin, where + " has dtype " + brief(dtype) + ", expected a string");
  e.dtype = dtype_by_name(dtype.get<std::string>());
  if (!e.dtype)
    fail(origin, where + " has unknown dtype " + brief(dtype) +
                     " (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  const json& shape = v["shape"];
  if (!shape.is_array())
    fail(origin, where + " has shape " + brief(shape) + ", expected a list of integers");
  // Product of the non-zero dims must fit, even when another dim is 0: no absurd shapes.
  uint64_t numel = 1;
  bool has_zero = false;
  for (const json& dim : shape) {
    const uint64_t d = non_negative_int(dim, origin, where + " shape entry");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (d != 0 && __builtin_mul_overflow(numel, d, &numel)))
      fail(origin, where + " has shape " + brief(shape) + " whose element count overflows");
    has_zero = has_zero || d == 0;
    e.shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(has_zero ? 0 : numel, e.dtype->size, &nbytes) ||
      nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(origin, where + " has shape " + brief(shape) + " whose byte size overflows");
  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail(origin, where + " has data_offsets " + brief(offsets) + ", expected [begin, end]");
  e.begin = non_negative_int(offsets[0], origin, where + " data_offsets begin");
  e.end = non_negative_int(offsets[1], origin, where + " data_offsets end");
  if (e.begin > e.end)
    fail(origin,
         fmt::format("{} has data_offsets [{}, {}] with begin > end", where, e.begin, e.end));
  if (e.end - e.begin != nbytes)
    fail(origin,
         fmt::format("{} has {} {} = {} bytes but data_offsets [{}, {}] hold {} bytes", where,
                     e.dtype->name, shape_text(e.shape), nbytes, e.begin, e.end, e.end - e.begin));
  return e;
}

// Sorted by begin, the tensors must tile [0, buffer_size) exactly: no overlap, gap or tail.
void check_tiling(std::vector<const Entry*> entries,
                  uint64_t buffer_size,
                  const std::string& origin) {
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : entries) {
    if (e->end > buffer_size)
      fail(origin,
           fmt::format("tensor '{}' data_offsets end {} is beyond the data buffer ({} bytes)",
                       e->name, e->end, buffer_size));
    if (e->begin < cursor)
      fail(origin, fmt::format("tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", e->name,
                               e->begin, e->end, previous->name, previous->begin, previous->end));
    if (e->begin > cursor)
      fail(origin, fmt::format("gap of {} bytes in the data buffer before tensor '{}' at offset {}",
                               e->begin - cursor, e->name, e->begin));
    cursor = e->end;
    previous = e;
  }
  if (cursor != buffer_size)
    fail(origin, fmt::format("data buffer has {} bytes but the tensors cover only {} bytes",
                             buffer_size, cursor));
}

at::Tensor copy_tensor(const Entry& e, const char* buffer, const std::string& origin) {
  const char* src = buffer + e.begin;
  const uint64_t nbytes = e.end - e.begin;
  at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype->type).device(at::kCPU));
  if (e.dtype->type == c10::kBool) {
    // The reference reader takes a BOOL's bytes as they are, and numpy / torch show any byte but 0
    // as true; a C++ bool must hold 0 or 1, so such a byte is read as true (1).
    auto* dst = static_cast<uint8_t*>(t.data_ptr());
    for (uint64_t i = 0; i < nbytes; ++i) dst[i] = src[i] != 0 ? 1 : 0;
    return t;
  }
  if (nbytes) std::memcpy(t.data_ptr(), src, nbytes);
  return t;
}

// Header + the tensors (CPU, contiguous) in file order.
struct Layout {
  std::string prefix;  // 8-byte length + padded JSON header
  std::vector<at::Tensor> data;
};

Layout make_layout(const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  Layout layout;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {  // std::map: sorted by name
    if (name == kMetadataKey)
      throw UsageError("safetensors: a tensor may not be named __metadata__");
    if (!tensor.defined()) throw UsageError("safetensors: tensor '" + name + "' is undefined");
    const char* dtype_name = nullptr;
    for (const auto& d : kDtypes)
      if (d.type == tensor.scalar_type()) dtype_name = d.name;
    if (!dtype_name)
      throw ShapeError(
          fmt::format("safetensors: tensor '{}' has dtype {}, which safetensors cannot store "
                      "(F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)",
                      name, c10::toString(tensor.scalar_type())));
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", dtype_name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    layout.data.push_back(std::move(t));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as HF writes it
  const uint64_t n = text.size();
  layout.prefix.resize(8);
  for (int i = 0; i < 8; ++i) layout.prefix[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  layout.prefix += text;
  return layout;
}

}  // namespace

std::string safetensors_dtype_name(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return d.name;
  throw ShapeError(fmt::format("safetensors: dtype {} cannot be stored", c10::toString(type)));
}

Safetensors parse_safetensors(const std::string& bytes, const std::string& origin) {
  const uint64_t size = bytes.size();
  if (size < 8)
    fail(origin, fmt::format("file is {} bytes, shorter than the 8-byte header length", size));
  uint64_t header_size = 0;
  for (int i = 0; i < 8; ++i)
    header_size |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (header_size > kMaxHeaderBytes)
    fail(origin,
         fmt::format("header length {} exceeds the {} byte limit", header_size, kMaxHeaderBytes));
  if (header_size > size - 8)
    fail(origin, fmt::format("header length {} is larger than the file ({} bytes after the length)",
                             header_size, size - 8));
  const char* header_begin = bytes.data() + 8;
  const json header = parse_header(header_begin, header_begin + header_size, origin);
  if (!header.is_object())
    fail(origin, std::string("header is a JSON ") + header.type_name() + ", expected an object");

  Safetensors result;
  std::vector<Entry> entries;
  entries.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      if (value.is_null()) continue;  // the reference reads null as no metadata (an optional field)
      if (!value.is_object())
        fail(origin,
             std::string("__metadata__ is a ") + value.type_name() + ", expected an object");
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string())
          fail(origin,
               "__metadata__ value of '" + mkey + "' is " + brief(mvalue) + ", expected a string");
        result.metadata[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, origin));
  }
  std::vector<const Entry*> pointers;
  for (const Entry& e : entries) pointers.push_back(&e);
  const uint64_t buffer_size = size - 8 - header_size;
  check_tiling(pointers, buffer_size, origin);  // all sizes checked before any tensor is allocated

  const char* buffer = header_begin + header_size;
  for (const Entry& e : entries) result.tensors.emplace(e.name, copy_tensor(e, buffer, origin));
  return result;
}

Safetensors read_safetensors(const std::string& path) {
  check_readable_file(path);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw DataError("cannot open '" + path + "': " + std::strerror(errno));
  const std::streamoff size = in.tellg();
  if (size < 0) throw DataError("cannot read the size of '" + path + "'");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) throw DataError("reading '" + path + "' failed");
  return parse_safetensors(bytes, path);
}

std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  Layout layout = make_layout(tensors, metadata);
  size_t total = layout.prefix.size();
  for (const auto& t : layout.data) total += t.nbytes();
  std::string out;
  out.reserve(total);
  out += layout.prefix;
  for (const auto& t : layout.data)
    if (t.nbytes()) out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

void write_safetensors(const std::string& path,
                       const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  Layout layout = make_layout(tensors, metadata);
  write_stream_atomic(path, [&](std::ostream& out) {
    out.write(layout.prefix.data(), static_cast<std::streamsize>(layout.prefix.size()));
    for (const auto& t : layout.data)
      if (t.nbytes())
        out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  });
}

}  // namespace tokcom
