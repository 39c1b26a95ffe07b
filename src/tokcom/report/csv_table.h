// report/csv_table.h — the CSVs of a run, read strictly: the header must be the one the writing
// command uses, every row must have as many fields as the header and numeric columns must hold
// finite numbers. Messages name the file, the line and what was expected.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tokcom::report {

// What a CSV must look like.
struct CsvSchema {
  std::string what;                          // "a sweep CSV (tokcom sweep)", for messages
  std::vector<std::string> columns;          // the expected header, in order
  bool prefix = false;                       // more columns may follow `columns` (per-α / per-SNR columns)
  std::vector<std::string> text_columns;     // every other column must be a number...
  std::vector<std::string> optional_columns; // ...or, for these, empty
};

struct CsvTable {
  std::string name;  // as shown in messages (path relative to the run folder)
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // 1-based line of each row in the file

  bool has(const std::string& column) const;
  size_t column(const std::string& column) const;  // FormatError when absent
  const std::string& text(size_t row, const std::string& column) const;
  double number(size_t row, const std::string& column) const;
  std::optional<double> optional_number(size_t row, const std::string& column) const;  // empty → nullopt
};

// Splits one line: commas, RFC 4180 double quotes ("gauss:10,2.5"), a trailing '\r' dropped.
// An unterminated quote is a FormatError naming `where`.
std::vector<std::string> split_line(const std::string& line, const std::string& where);

// Parses `text` (the file's bytes) against `schema`. Blank lines are skipped.
CsvTable parse_csv(const std::string& text, const std::string& name, const CsvSchema& schema);
// Reads `path` and parses it (DataError when it cannot be read).
CsvTable read_csv(const std::string& path, const std::string& name, const CsvSchema& schema);

}  // namespace tokcom::report
