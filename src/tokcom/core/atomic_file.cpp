#include "tokcom/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tokcom/core/errors.h"

namespace tokcom {
namespace {

std::string temp_name_for(const std::string& path) {
  std::random_device rd;
  return path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(rd() % 1000000);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_stream_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(target.parent_path(), ec);
  }
  const std::string tmp = temp_name_for(path);
  try {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw UsageError("cannot create '" + tmp + "': " + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw UsageError("writing '" + tmp + "' failed: " + std::strerror(errno));
    }
    fsync_path(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw UsageError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_stream_atomic(path, [&](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

void check_readable_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) throw DataError("'" + path + "': no such file");
  if (status.type() == std::filesystem::file_type::directory) {
    throw DataError("'" + path + "' is a folder, expected a file");
  }
}

std::string read_file(const std::string& path) {
  check_readable_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError("cannot open '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError("reading '" + path + "' failed");
  return ss.str();
}

}  // namespace tokcom
