#include "tokcom/report/csv_table.h"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "tokcom/control/csv_util.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"

namespace tokcom::report {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

bool CsvTable::has(const std::string& c) const { return contains(header, c); }

size_t CsvTable::column(const std::string& c) const {
  const auto it = std::find(header.begin(), header.end(), c);
  if (it == header.end()) throw FormatError(fmt::format("{}: no column '{}' (header: {})", name, c, join(header)));
  return static_cast<size_t>(it - header.begin());
}

const std::string& CsvTable::text(size_t row, const std::string& c) const { return rows.at(row).at(column(c)); }

double CsvTable::number(size_t row, const std::string& c) const {
  return csv::parse_number(text(row, c), fmt::format("{} line {}", name, lines.at(row)), c);
}

std::optional<double> CsvTable::optional_number(size_t row, const std::string& c) const {
  if (text(row, c).empty()) return std::nullopt;
  return number(row, c);
}

std::vector<std::string> split_line(const std::string& raw, const std::string& where) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cell += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cell);
      cell.clear();
    } else {
      cell += c;
    }
  }
  if (quoted) throw FormatError(where + ": unterminated double quote, expected a closing '\"'");
  out.push_back(cell);
  return out;
}

CsvTable parse_csv(const std::string& text, const std::string& name, const CsvSchema& schema) {
  CsvTable t;
  t.name = name;
  std::stringstream in(text);
  std::string line;
  int64_t number = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line == "\r") continue;
    const std::string where = fmt::format("{} line {}", name, number);
    std::vector<std::string> fields = split_line(line, where);
    if (!have_header) {
      const bool ok = schema.prefix
                          ? fields.size() >= schema.columns.size() &&
                                std::equal(schema.columns.begin(), schema.columns.end(), fields.begin())
                          : fields == schema.columns;
      if (!ok) {
        throw FormatError(fmt::format("{}: header is '{}', expected '{}{}' ({})", where, join(fields),
                                      join(schema.columns), schema.prefix ? ",..." : "", schema.what));
      }
      t.header = std::move(fields);
      have_header = true;
      continue;
    }
    if (fields.size() != t.header.size()) {
      throw FormatError(fmt::format("{}: {} fields, expected {} (the header's columns: {})", where, fields.size(),
                                    t.header.size(), join(t.header)));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      const std::string& col = t.header[c];
      if (contains(schema.text_columns, col)) continue;
      if (fields[c].empty() && contains(schema.optional_columns, col)) continue;
      csv::parse_number(fields[c], where, col);  // FormatError "<file> line N: column 'x' is 'y', expected ..."
    }
    t.rows.push_back(std::move(fields));
    t.lines.push_back(number);
  }
  if (!have_header) {
    throw FormatError(fmt::format("{}: empty file, expected the header '{}' ({})", name, join(schema.columns),
                                  schema.what));
  }
  return t;
}

CsvTable read_csv(const std::string& path, const std::string& name, const CsvSchema& schema) {
  return parse_csv(read_file(path), name, schema);
}

}  // namespace tokcom::report
