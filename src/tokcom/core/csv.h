// core/csv.h — every CSV tokcom reads or writes goes through here: RFC 4180 fields (a field with a
// comma, quote or line break is double-quoted, quotes doubled), '\n' line ends, numbers written so
// they read back exactly (or at a stated precision), and columns with a kind, declared once by the
// module that writes the file. A reader of that file (the report, `optimize --table`, `merge`) uses
// the same declaration, so a column added to a writer is known to its readers at once.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tokcom::csv {

// ---------------------------------------------------------------- schemas

enum class Kind {
  kText,            // any text (quoted where needed)
  kNumber,          // a finite number
  kOptionalNumber,  // a finite number, or empty (e.g. a metric not measured in that row)
};

struct Column {
  std::string name;
  Kind kind = Kind::kNumber;
};

// What one kind of CSV looks like, declared beside its writer.
struct Schema {
  std::string what;             // "a sweep CSV written by `tokcom sweep`", for messages
  std::vector<Column> columns;  // the header, in order
  bool open = false;            // more numeric columns may follow `columns` (per-α, per-block ones)

  std::vector<std::string> names() const;
  std::string header() const;  // the header line without its '\n'
  const Column* find(const std::string& name) const;
};

// Shorthand for a schema whose columns are all numbers except `text` (and `optional`, which may be
// empty): `schema("…", "a,b,c", {"b"})`.
Schema schema(std::string what, const std::string& header, const std::vector<std::string>& text = {},
              const std::vector<std::string>& optional = {}, bool open = false);

// ---------------------------------------------------------------- fields

// Splits one line into fields: commas, RFC 4180 double quotes, a trailing '\r' dropped. An
// unterminated quote is a FormatError naming `where`.
std::vector<std::string> split_line(const std::string& line, const std::string& where);
// `text` as one field: quoted when it holds a comma, quote, '\r' or '\n'.
std::string quote_field(const std::string& text);
// Parses a finite double; FormatError "<where>: column '<column>' is '<text>', expected a finite number".
double parse_number(const std::string& text, const std::string& where, const std::string& column);
// Shortest text that reads back as the same double.
std::string format_number(double v);
// File-name-safe text: letters, digits, '.', '-' kept, anything else '_' ("run" when empty).
std::string file_slug(const std::string& text);

// ---------------------------------------------------------------- writing

// Builds a CSV in memory, row by row, checking every field against its column's kind (a number
// into a text column, a short row, an empty required number are programming errors: logic_error).
class Writer {
 public:
  // `extra` names the numeric columns that follow an open schema's own (per-α accuracy, …).
  explicit Writer(const Schema& schema, const std::vector<std::string>& extra = {});

  Writer& text(const std::string& value);
  Writer& number(double value);                 // exact (shortest round trip)
  Writer& number(double value, int significant);  // %.<significant>g
  Writer& fixed(double value, int decimals);    // %.<decimals>f
  Writer& integer(int64_t value);
  Writer& empty();                              // only in an optional column
  void end_row();
  // A whole row read back with the same schema (csv::Table::rows): its text as read, numbers kept
  // byte for byte, so a file copied row by row is the same file (sweep shards merged).
  Writer& row(const std::vector<std::string>& fields);

  const std::string& str() const { return text_; }
  // Atomic write (temp file + rename); UsageError on I/O failure.
  void write(const std::string& path) const;

 private:
  void field(const std::string& value, bool numeric);

  std::vector<Column> columns_;
  std::string text_;
  size_t at_ = 0;  // next column of the current row
};

// ---------------------------------------------------------------- reading

struct Table {
  std::string name;  // as shown in messages ("proxy table 'runs/p.csv'", "control/summary.csv")
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> lines;  // 1-based line of each row in the file

  bool has(const std::string& column) const;
  size_t column(const std::string& column) const;  // FormatError naming the header when absent
  const std::string& text(size_t row, const std::string& column) const;
  double number(size_t row, const std::string& column) const;
  std::optional<double> optional_number(size_t row, const std::string& column) const;  // empty → nullopt
  std::string where(size_t row) const;  // "<name> line <n>"
};

// Parses `text` against `schema`: the header must be the schema's (an open schema's own columns
// first), every row as wide as the header, every number column a finite number. Blank lines are
// skipped. FormatError names the file, the line and what was expected.
Table parse(const std::string& text, const std::string& name, const Schema& schema);
// Parses any header: only the row widths are checked (for files whose writer is not ours: an SNR
// trace, a proxy table from another system); the reader checks the columns it needs.
Table parse(const std::string& text, const std::string& name);
// Reads `path` (DataError when it cannot be read) and parses it.
Table read(const std::string& path, const std::string& name, const Schema& schema);
Table read(const std::string& path, const std::string& name);

}  // namespace tokcom::csv
