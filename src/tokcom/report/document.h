// report/document.h — a report as a list of blocks (headings, text, tables, figures, code), rendered
// twice from the same blocks: Markdown (figures as links into report/figures/) and one
// self-contained HTML page (PNGs inlined as base64 data URIs, inline CSS, no scripts).
#pragma once
#include <string>
#include <vector>

namespace tokcom::report {

struct TableBlock {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct FigureBlock {
  std::string png;  // path relative to the output folder (the HTML inlines it)
  std::string svg;  // optional, relative path (Markdown links it)
  std::string caption;
};

struct Block {
  enum class Kind { kHeading, kText, kTable, kFigure, kCode };
  Kind kind = Kind::kText;
  int level = 2;
  std::string text;
  TableBlock table;
  FigureBlock figure;
};

class Document {
 public:
  void heading(int level, const std::string& text);
  void text(const std::string& text);  // one paragraph; `code` spans allowed
  void table(TableBlock table);
  void figure(FigureBlock figure);
  void code(const std::string& text);

  std::string markdown() const;
  // `out_dir`: where the figure paths are relative to (their PNG bytes are inlined).
  std::string html(const std::string& title, const std::string& out_dir) const;
  const std::vector<Block>& blocks() const { return blocks_; }

 private:
  std::vector<Block> blocks_;
};

std::string base64(const std::string& bytes);
std::string html_escape(const std::string& text);

}  // namespace tokcom::report
