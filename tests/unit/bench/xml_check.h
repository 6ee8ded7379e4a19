// A small XML well-formedness checker for the SVG tests: one root element, balanced and
// properly nested tags, quoted attributes, no stray '<' or bare '&' in text. Declarations
// (<?...?>) and comments are skipped. Not a validating parser.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace strata::bench {

inline bool IsWellFormedXml(std::string_view xml, std::string* why) {
  std::vector<std::string> stack;
  int roots = 0;
  size_t i = 0;
  auto fail = [&](const std::string& m) {
    *why = m + " at byte " + std::to_string(i);
    return false;
  };
  auto entity_ok = [&](size_t at) {
    size_t semi = xml.find(';', at);
    if (semi == std::string_view::npos || semi - at > 8) return false;
    std::string_view e = xml.substr(at + 1, semi - at - 1);
    return e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos" ||
           (!e.empty() && e[0] == '#');
  };
  while (i < xml.size()) {
    char c = xml[i];
    if (c == '&') {
      if (!entity_ok(i)) return fail("bare '&'");
      ++i;
      continue;
    }
    if (c != '<') {
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(c))) {
        return fail("text outside the root");
      }
      ++i;
      continue;
    }
    if (xml.substr(i, 2) == "<?") {
      size_t end = xml.find("?>", i);
      if (end == std::string_view::npos) return fail("unclosed declaration");
      i = end + 2;
      continue;
    }
    if (xml.substr(i, 4) == "<!--") {
      size_t end = xml.find("-->", i);
      if (end == std::string_view::npos) return fail("unclosed comment");
      i = end + 3;
      continue;
    }
    bool closing = i + 1 < xml.size() && xml[i + 1] == '/';
    size_t j = i + (closing ? 2 : 1);
    size_t name_start = j;
    while (j < xml.size() && (std::isalnum(static_cast<unsigned char>(xml[j])) || xml[j] == '-' ||
                              xml[j] == ':' || xml[j] == '_')) {
      ++j;
    }
    std::string name(xml.substr(name_start, j - name_start));
    if (name.empty()) return fail("tag without a name");
    if (closing) {
      while (j < xml.size() && std::isspace(static_cast<unsigned char>(xml[j]))) ++j;
      if (j >= xml.size() || xml[j] != '>') return fail("bad closing tag");
      if (stack.empty() || stack.back() != name) return fail("mismatched </" + name + ">");
      stack.pop_back();
      i = j + 1;
      continue;
    }
    // Attributes: name="value" ... then > or />.
    while (true) {
      while (j < xml.size() && std::isspace(static_cast<unsigned char>(xml[j]))) ++j;
      if (j >= xml.size()) return fail("unclosed tag");
      if (xml[j] == '>' || xml.substr(j, 2) == "/>") break;
      size_t a = j;
      while (j < xml.size() && xml[j] != '=' && !std::isspace(static_cast<unsigned char>(xml[j])) &&
             xml[j] != '>') {
        ++j;
      }
      if (j == a || j >= xml.size() || xml[j] != '=') return fail("attribute without a value");
      ++j;
      if (j >= xml.size() || (xml[j] != '"' && xml[j] != '\'')) return fail("unquoted attribute");
      char q = xml[j];
      size_t end = xml.find(q, j + 1);
      if (end == std::string_view::npos) return fail("unclosed attribute");
      std::string_view value = xml.substr(j + 1, end - j - 1);
      if (value.find('<') != std::string_view::npos) return fail("'<' in an attribute");
      j = end + 1;
    }
    bool self_closing = xml[j] == '/';
    if (stack.empty()) {
      if (++roots > 1) return fail("more than one root element");
    }
    if (!self_closing) stack.push_back(name);
    i = j + (self_closing ? 2 : 1);
  }
  if (!stack.empty()) return fail("unclosed <" + stack.back() + ">");
  if (roots != 1) return fail("no root element");
  return true;
}

}  // namespace strata::bench
