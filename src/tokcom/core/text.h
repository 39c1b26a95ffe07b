// core/text.h — small text helpers written once: comma lists (flags, config keys, channel and SNR
// specs) and the FNV-1a digest that names stages, checkpoints and seeds.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tokcom {

// Splits `text` at `sep`, trimming spaces around each item; "" gives no items, "a,,b" an empty one.
std::vector<std::string> split_list(const std::string& text, char sep = ',');
// Whether `s` begins / ends with `p`.
inline bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
inline bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
// ASCII lowercase (file extensions, enum-like flag values).
std::string to_lower(std::string text);
// The whole of `text` as a finite double, or nullopt ("1e999", "0.5x", "" are not numbers).
std::optional<double> parse_double(const std::string& text);
// A comma list of numbers for a flag named `what` (empty items skipped); UsageError naming the item
// that is not a number, and for an empty list.
std::vector<double> parse_number_list(const std::string& text, const std::string& what);

// FNV-1a, 64 bit, from the offset 1469598103934665603: a stable digest of bytes (the same on every
// machine and run). The published basis has one digit more (14695981039346656037); every config,
// stage and checkpoint digest tokcom has written uses this one, so it is kept.
uint64_t fnv1a(const std::string& bytes);
// The same, as 16 lowercase hex digits.
std::string fnv1a_hex(const std::string& bytes);

}  // namespace tokcom
