// Small CSV helpers shared by the control layer (tables, SNR traces): split a line, parse a
// number with a message naming file, line and column.
#pragma once
#include <string>
#include <vector>

namespace tokcom::csv {

// Splits on commas; trims spaces and a trailing '\r'. No quoting (the control CSVs never need it).
std::vector<std::string> split(const std::string& line);
// Parses a finite double; FormatError "<where>: column '<column>' is '<text>', expected a number".
double parse_number(const std::string& text, const std::string& where, const std::string& column);
// Shortest text that reads back as the same double (%.17g trimmed via a round-trip check).
std::string format_number(double v);
// A text field, RFC 4180-quoted when it holds a comma or quote (scenario specs: "gauss:10,2.5").
std::string quote_field(const std::string& text);
// File-name-safe text: letters, digits, '.', '-' kept, anything else '_' ("run" when empty).
std::string file_slug(const std::string& text);

}  // namespace tokcom::csv
