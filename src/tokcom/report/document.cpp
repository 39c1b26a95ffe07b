#include "tokcom/report/document.h"

#include <filesystem>

#include <fmt/format.h>

#include "tokcom/core/atomic_file.h"

namespace tokcom::report {
namespace fs = std::filesystem;
namespace {

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

// HTML of a paragraph: escaped, `code` spans become <code>.
std::string html_inline(const std::string& s) {
  std::string out;
  bool code = false;
  std::string run;
  for (char c : s) {
    if (c == '`') {
      out += html_escape(run);
      run.clear();
      out += code ? "</code>" : "<code>";
      code = !code;
    } else {
      run += c;
    }
  }
  out += html_escape(run);
  if (code) out += "</code>";
  return out;
}

}  // namespace

std::string base64(const std::string& bytes) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += k[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += k[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

void Document::heading(int level, const std::string& t) {
  Block b;
  b.kind = Block::Kind::kHeading;
  b.level = level;
  b.text = t;
  blocks_.push_back(std::move(b));
}

void Document::text(const std::string& t) {
  Block b;
  b.kind = Block::Kind::kText;
  b.text = t;
  blocks_.push_back(std::move(b));
}

void Document::table(TableBlock t) {
  Block b;
  b.kind = Block::Kind::kTable;
  b.table = std::move(t);
  blocks_.push_back(std::move(b));
}

void Document::figure(FigureBlock f) {
  Block b;
  b.kind = Block::Kind::kFigure;
  b.figure = std::move(f);
  blocks_.push_back(std::move(b));
}

void Document::code(const std::string& t) {
  Block b;
  b.kind = Block::Kind::kCode;
  b.text = t;
  blocks_.push_back(std::move(b));
}

std::string Document::markdown() const {
  std::string md;
  for (const Block& b : blocks_) {
    switch (b.kind) {
      case Block::Kind::kHeading:
        md += std::string(static_cast<size_t>(b.level), '#') + " " + b.text + "\n\n";
        break;
      case Block::Kind::kText:
        md += b.text + "\n\n";
        break;
      case Block::Kind::kCode:
        md += "```\n" + b.text + (b.text.empty() || b.text.back() != '\n' ? "\n" : "") + "```\n\n";
        break;
      case Block::Kind::kTable: {
        md += "|";
        for (const auto& h : b.table.header) md += " " + md_cell(h) + " |";
        md += "\n|";
        for (size_t i = 0; i < b.table.header.size(); ++i) md += " --- |";
        md += "\n";
        for (const auto& r : b.table.rows) {
          md += "|";
          for (const auto& c : r) md += " " + md_cell(c) + " |";
          md += "\n";
        }
        md += "\n";
        break;
      }
      case Block::Kind::kFigure:
        md += "![" + b.figure.caption + "](" + b.figure.png + ")";
        if (!b.figure.svg.empty()) md += " ([SVG](" + b.figure.svg + "))";
        md += "\n\n*" + b.figure.caption + "*\n\n";
        break;
    }
  }
  return md;
}

std::string Document::html(const std::string& title, const std::string& out_dir) const {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + html_escape(title) +
      "</title>\n<style>\n"
      "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\n"
      "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}\n"
      "th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:left}\nth{background:#eee}\n"
      "img{max-width:100%;border:1px solid #ddd}\nfigure{margin:1em 0}\nfigcaption{font-style:italic;color:#555}\n"
      "pre{background:#f6f6f6;padding:0.6em;overflow-x:auto}\ncode{background:#f6f6f6}\n"
      "</style>\n</head>\n<body>\n";
  for (const Block& b : blocks_) {
    switch (b.kind) {
      case Block::Kind::kHeading:
        h += fmt::format("<h{0}>{1}</h{0}>\n", b.level, html_inline(b.text));
        break;
      case Block::Kind::kText:
        h += "<p>" + html_inline(b.text) + "</p>\n";
        break;
      case Block::Kind::kCode:
        h += "<pre>" + html_escape(b.text) + "</pre>\n";
        break;
      case Block::Kind::kTable: {
        h += "<table>\n<tr>";
        for (const auto& c : b.table.header) h += "<th>" + html_inline(c) + "</th>";
        h += "</tr>\n";
        for (const auto& r : b.table.rows) {
          h += "<tr>";
          for (const auto& c : r) h += "<td>" + html_inline(c) + "</td>";
          h += "</tr>\n";
        }
        h += "</table>\n";
        break;
      }
      case Block::Kind::kFigure: {
        const fs::path png = fs::path(out_dir) / b.figure.png;
        h += "<figure>\n";
        if (fs::exists(png)) {
          h += "<img alt=\"" + html_escape(b.figure.caption) + "\" src=\"data:image/png;base64," +
               base64(read_file(png.string())) + "\">\n";
        } else {
          h += "<p>(figure " + html_escape(b.figure.png) + " is missing)</p>\n";
        }
        h += "<figcaption>" + html_inline(b.figure.caption) + "</figcaption>\n</figure>\n";
        break;
      }
    }
  }
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace tokcom::report
