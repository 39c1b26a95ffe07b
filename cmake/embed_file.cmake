# Writes a C++ header holding one file's text as a raw string literal (the live page of
# `tokcom serve --http`, so the binary serves it with no file beside it).
#   cmake -DIN=<file> -DOUT=<header> -DNAME=<identifier> -P embed_file.cmake
file(READ ${IN} text)
string(FIND "${text}" ")TOKCOM_EMBED\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )TOKCOM_EMBED\"")
endif()
file(WRITE ${OUT}.tmp "// Generated from ${IN} by cmake/embed_file.cmake: do not edit.\n#pragma once\n\nnamespace tokcom::embedded {\ninline constexpr char ${NAME}[] = R\"TOKCOM_EMBED(${text})TOKCOM_EMBED\";\n}  // namespace tokcom::embedded\n")
file(RENAME ${OUT}.tmp ${OUT})
