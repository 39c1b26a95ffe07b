// One exception type per kind of failure; each carries the process exit code the CLI returns.
#pragma once
#include <stdexcept>
#include <string>

namespace tokcom {

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, int exit_code) : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Bad config file, key, type or value.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& m) : Error("ConfigError: " + m, 2) {}
};
// Missing or corrupt data set file, image or label.
class DataError : public Error {
 public:
  explicit DataError(const std::string& m) : Error("DataError: " + m, 3) {}
};
// Malformed file format (safetensors, CSV, IDX header, checkpoint).
class FormatError : public Error {
 public:
  explicit FormatError(const std::string& m) : Error("FormatError: " + m, 4) {}
};
// A tensor with the wrong shape or dtype.
class ShapeError : public Error {
 public:
  explicit ShapeError(const std::string& m) : Error("ShapeError: " + m, 5) {}
};
// Anything else the user can fix (bad argument value, I/O failure).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& m) : Error("UsageError: " + m, 6) {}
};
// A network peer that is unreachable, refuses a call or ends a stream with an error status.
class NetworkError : public Error {
 public:
  explicit NetworkError(const std::string& m) : Error("NetworkError: " + m, 7) {}
};

}  // namespace tokcom
