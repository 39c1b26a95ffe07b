#include "tokcom/core/csv.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/text.h"

namespace tokcom::csv {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// The fields of one line; `trim_unquoted` drops spaces around unquoted fields (files not ours).
std::vector<std::string> fields_of(const std::string& raw, const std::string& where, bool trim_unquoted) {
  std::string line = raw;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false, was_quoted = false;
  const auto finish = [&] {
    out.push_back(trim_unquoted && !was_quoted ? trim(cell) : cell);
    cell.clear();
    was_quoted = false;
  };
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
      quoted = was_quoted = true;
      if (trim_unquoted) cell = trim(cell);
    } else if (c == ',') {
      finish();
    } else {
      cell += c;
    }
  }
  if (quoted) throw FormatError(where + ": unterminated double quote, expected a closing '\"'");
  finish();
  return out;
}

// The next record of `text` from `pos`: one line, or several where a quoted field holds line
// breaks. `line` counts the file's lines (the record starts at the returned first line).
bool next_record(const std::string& text, size_t& pos, int64_t& line, std::string& record, int64_t& first_line) {
  if (pos >= text.size()) return false;
  record.clear();
  first_line = ++line;
  bool quoted = false;
  while (pos < text.size()) {
    const char c = text[pos++];
    if (c == '"') quoted = !quoted;  // a doubled quote toggles twice
    if (c == '\n') {
      if (!quoted) return true;
      ++line;
    }
    record += c;
  }
  return true;
}

Table parse_with(const std::string& text, const std::string& name, const Schema* schema) {
  Table t;
  t.name = name;
  std::string line;
  int64_t number = 0, counted = 0;
  size_t pos = 0;
  bool have_header = false;
  while (next_record(text, pos, counted, line, number)) {
    if (line.empty() || line == "\r") continue;
    const std::string where = fmt::format("{} line {}", name, number);
    std::vector<std::string> fields = fields_of(line, where, /*trim_unquoted=*/schema == nullptr);
    if (!have_header) {
      if (schema) {
        const std::vector<std::string> expected = schema->names();
        const bool ok = schema->open ? fields.size() >= expected.size() &&
                                           std::equal(expected.begin(), expected.end(), fields.begin())
                                     : fields == expected;
        if (!ok) {
          throw FormatError(fmt::format("{}: header is '{}', expected '{}{}' ({})", where, join(fields),
                                        join(expected), schema->open ? ",..." : "", schema->what));
        }
      }
      t.header = std::move(fields);
      have_header = true;
      continue;
    }
    if (fields.size() != t.header.size()) {
      throw FormatError(fmt::format("{}: {} fields, expected {} (the header's columns: {})", where, fields.size(),
                                    t.header.size(), join(t.header)));
    }
    if (schema) {
      for (size_t c = 0; c < fields.size(); ++c) {
        const Column* column = schema->find(t.header[c]);
        const Kind kind = column ? column->kind : Kind::kNumber;  // an open schema's extra columns are numbers
        if (kind == Kind::kText) continue;
        if (kind == Kind::kOptionalNumber && fields[c].empty()) continue;
        parse_number(fields[c], where, t.header[c]);
      }
    }
    t.rows.push_back(std::move(fields));
    t.lines.push_back(number);
  }
  if (!have_header) {
    throw FormatError(schema ? fmt::format("{}: empty file, expected the header '{}' ({})", name, schema->header(),
                                           schema->what)
                             : fmt::format("{}: empty file, expected a header line", name));
  }
  return t;
}

}  // namespace

// ---------------------------------------------------------------- schemas

std::vector<std::string> Schema::names() const {
  std::vector<std::string> out;
  for (const Column& c : columns) out.push_back(c.name);
  return out;
}

std::string Schema::header() const { return join(names()); }

const Column* Schema::find(const std::string& name) const {
  for (const Column& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Schema schema(std::string what, const std::string& header, const std::vector<std::string>& text,
              const std::vector<std::string>& optional, bool open) {
  Schema s;
  s.what = std::move(what);
  s.open = open;
  for (const std::string& name : fields_of(header, "schema", false)) {
    s.columns.push_back({name, contains(text, name)       ? Kind::kText
                               : contains(optional, name) ? Kind::kOptionalNumber
                                                          : Kind::kNumber});
  }
  for (const auto* list : {&text, &optional}) {
    for (const std::string& name : *list) {
      if (!s.find(name)) throw std::logic_error("csv::schema: '" + name + "' is not a column of " + header);
    }
  }
  return s;
}

// ---------------------------------------------------------------- fields

std::vector<std::string> split_line(const std::string& line, const std::string& where) {
  return fields_of(line, where, false);
}

std::string quote_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

double parse_number(const std::string& text, const std::string& where, const std::string& column) {
  const std::optional<double> v = parse_double(text);
  if (!v) throw FormatError(where + ": column '" + column + "' is '" + text + "', expected a finite number");
  return *v;
}

std::string format_number(double v) {
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string file_slug(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out.empty() ? "run" : out;
}

// ---------------------------------------------------------------- writing

Writer::Writer(const Schema& schema, const std::vector<std::string>& extra) : columns_(schema.columns) {
  if (!extra.empty() && !schema.open) throw std::logic_error("csv::Writer: " + schema.what + " has no extra columns");
  for (const std::string& name : extra) columns_.push_back({name, Kind::kNumber});
  for (size_t i = 0; i < columns_.size(); ++i) text_ += (i ? "," : "") + quote_field(columns_[i].name);
  text_ += '\n';
}

void Writer::field(const std::string& value, bool numeric) {
  if (at_ >= columns_.size()) throw std::logic_error("csv::Writer: more fields than the header's " + std::to_string(columns_.size()));
  const Column& c = columns_[at_];
  if (numeric == (c.kind == Kind::kText)) {
    throw std::logic_error("csv::Writer: column '" + c.name + "' takes " + (numeric ? "text" : "numbers"));
  }
  text_ += (at_ ? "," : "") + (numeric ? value : quote_field(value));
  ++at_;
}

Writer& Writer::text(const std::string& value) {
  field(value, false);
  return *this;
}

Writer& Writer::number(double value) {
  // Not measured (NaN) in an optional column is an empty field; elsewhere it is written as is and
  // a strict reader refuses it, naming the line.
  if (!std::isfinite(value) && at_ < columns_.size() && columns_[at_].kind == Kind::kOptionalNumber) return empty();
  field(format_number(value), true);
  return *this;
}

Writer& Writer::number(double value, int significant) {
  field(fmt::format("{:.{}g}", value, significant), true);
  return *this;
}

Writer& Writer::fixed(double value, int decimals) {
  field(fmt::format("{:.{}f}", value, decimals), true);
  return *this;
}

Writer& Writer::integer(int64_t value) {
  field(std::to_string(value), true);
  return *this;
}

Writer& Writer::empty() {
  if (at_ >= columns_.size() || columns_[at_].kind != Kind::kOptionalNumber) {
    throw std::logic_error("csv::Writer: column '" + (at_ < columns_.size() ? columns_[at_].name : std::string("?")) +
                           "' may not be empty");
  }
  text_ += at_ ? "," : "";
  ++at_;
  return *this;
}

Writer& Writer::row(const std::vector<std::string>& fields) {
  if (at_ != 0) throw std::logic_error("csv::Writer::row inside an unfinished row");
  for (const std::string& f : fields) {
    const Kind kind = at_ < columns_.size() ? columns_[at_].kind : Kind::kNumber;
    if (kind == Kind::kOptionalNumber && f.empty()) empty();
    else field(f, kind != Kind::kText);
  }
  end_row();
  return *this;
}

void Writer::end_row() {
  if (at_ != columns_.size()) {
    throw std::logic_error(fmt::format("csv::Writer: row of {} fields, the header has {}", at_, columns_.size()));
  }
  text_ += '\n';
  at_ = 0;
}

void Writer::write(const std::string& path) const {
  if (at_ != 0) throw std::logic_error("csv::Writer: " + path + " written with an unfinished row");
  write_file_atomic(path, text_);
}

// ---------------------------------------------------------------- reading

bool Table::has(const std::string& c) const { return contains(header, c); }

size_t Table::column(const std::string& c) const {
  const auto it = std::find(header.begin(), header.end(), c);
  if (it == header.end()) throw FormatError(fmt::format("{}: no column '{}' (header: {})", name, c, join(header)));
  return static_cast<size_t>(it - header.begin());
}

const std::string& Table::text(size_t row, const std::string& c) const { return rows.at(row).at(column(c)); }

double Table::number(size_t row, const std::string& c) const { return parse_number(text(row, c), where(row), c); }

std::optional<double> Table::optional_number(size_t row, const std::string& c) const {
  if (text(row, c).empty()) return std::nullopt;
  return number(row, c);
}

std::string Table::where(size_t row) const { return fmt::format("{} line {}", name, lines.at(row)); }

Table parse(const std::string& text, const std::string& name, const Schema& schema) {
  return parse_with(text, name, &schema);
}

Table parse(const std::string& text, const std::string& name) { return parse_with(text, name, nullptr); }

Table read(const std::string& path, const std::string& name, const Schema& schema) {
  return parse(read_file(path), name, schema);
}

Table read(const std::string& path, const std::string& name) { return parse(read_file(path), name); }

}  // namespace tokcom::csv
