// Writes that never leave a half-written file: temp file in the same folder, flush, rename.
#pragma once
#include <functional>
#include <iosfwd>
#include <string>

namespace tokcom {

// Writes `bytes` to `path` atomically. On failure the old file (if any) is intact; throws UsageError.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Calls `write` with a stream onto a temp file beside `path`, then fsyncs and renames it over
// `path`. If `write` throws or the stream fails, the temp file is removed and the error rethrown.
void write_stream_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

// Reads a whole file; throws DataError naming the file when it cannot be read.
std::string read_file(const std::string& path);

// Throws DataError naming `path` where it is missing or a folder. Every reader of a user-given path
// calls it before opening it (and names the path where the open fails), so a folder given where a
// file is expected never reaches a stream's own confusing error.
void check_readable_file(const std::string& path);

}  // namespace tokcom
