// safetensors (Hugging Face's format): 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data buffer. Strict validation: every malformed file is a FormatError naming the file
// and what was wrong; never a crash, a hang or a huge allocation from a lying header.
// Checked: header length (<= 100 MB and within the file), JSON object without duplicate keys,
// known dtype, shape of non-negative ints without overflow, data_offsets [begin, end] with
// end - begin = numel * element size, tensors tiling the buffer exactly (no overlap, gap or
// tail), string-only __metadata__, BOOL bytes 0/1. Other keys inside an entry are ignored, as
// Hugging Face's reader does. Reading costs one read of the file plus one copy per tensor.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace tokcom {

using TensorMap = std::map<std::string, at::Tensor>;  // ordered: files are byte-reproducible

struct Safetensors {
  TensorMap tensors;                            // CPU, contiguous, dtype as stored
  std::map<std::string, std::string> metadata;  // "__metadata__" (string → string)
};

// Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
Safetensors read_safetensors(const std::string& path);
// Parses an in-memory file; `origin` names it in errors.
Safetensors parse_safetensors(const std::string& bytes, const std::string& origin);
// Serialises (tensors moved to CPU, made contiguous; names sorted; offsets contiguous).
std::string serialize_safetensors(const TensorMap& tensors, const std::map<std::string, std::string>& metadata = {});
// Atomic write (temp file + rename).
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The format's name of a dtype ("F32", "BF16", ...); ShapeError for dtypes it cannot store.
std::string safetensors_dtype_name(c10::ScalarType type);

}  // namespace tokcom
