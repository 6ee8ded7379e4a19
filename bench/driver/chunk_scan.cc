#include "bench/driver/chunk_scan.h"

#include <cstring>

namespace strata::bench {
namespace {

constexpr int kMaxDepth = 64;

// A forward-only cursor over JSON text. Every method returns false on malformed input.
class Cursor {
 public:
  explicit Cursor(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  void SkipWs() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool AtEnd() {
    SkipWs();
    return p_ == end_;
  }
  // Consumes `c` after whitespace.
  bool Eat(char c) {
    SkipWs();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  char Peek() {
    SkipWs();
    return p_ < end_ ? *p_ : '\0';
  }

  // A string; `raw` receives its contents between the quotes, escapes left as they are.
  bool String(std::string_view* raw) {
    if (!Eat('"')) return false;
    const char* start = p_;
    while (true) {
      const void* q = std::memchr(p_, '"', static_cast<size_t>(end_ - p_));
      if (q == nullptr) return false;
      const char* quote = static_cast<const char*>(q);
      // The quote ends the string unless an odd number of backslashes precede it.
      size_t backslashes = 0;
      for (const char* b = quote; b > start && b[-1] == '\\'; --b) ++backslashes;
      p_ = quote + 1;
      if (backslashes % 2 == 0) {
        if (raw != nullptr) *raw = std::string_view(start, static_cast<size_t>(quote - start));
        return true;
      }
    }
  }

  bool Integer(int64_t* value) {
    SkipWs();
    const char* start = p_;
    bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    int64_t v = 0;
    int digits = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (digits < 18) v = v * 10 + (*p_ - '0');
      ++digits;
      ++p_;
    }
    if (digits == 0) {
      p_ = start;
      return SkipValue(0);  // not an integer (null, float, ...): skip it, report absent
    }
    // A fractional or exponent part makes it a non-integer; skip the rest.
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) {
      while (p_ < end_ && (std::strchr("0123456789.eE+-", *p_) != nullptr)) ++p_;
      return true;
    }
    *value = negative ? -v : v;
    return true;
  }

  bool Literal(const char* word) {
    size_t n = std::strlen(word);
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  bool SkipValue(int depth) {
    if (depth > kMaxDepth) return false;
    char c = Peek();
    switch (c) {
      case '"':
        return String(nullptr);
      case '{':
        return ForEachMember(depth,
                             [this, depth](std::string_view) { return SkipValue(depth + 1); });
      case '[':
        return ForEachElement(depth, [this, depth](int) { return SkipValue(depth + 1); });
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default: {
        const char* start = p_;
        while (p_ < end_ && std::strchr("0123456789.eE+-", *p_) != nullptr) ++p_;
        return p_ != start;
      }
    }
  }

  // Calls on_member(key) for each member of an object; on_member must consume the value.
  template <typename F>
  bool ForEachMember(int depth, F&& on_member) {
    if (depth > kMaxDepth || !Eat('{')) return false;
    if (Eat('}')) return true;
    while (true) {
      std::string_view key;
      if (!String(&key) || !Eat(':')) return false;
      if (!on_member(key)) return false;
      if (Eat(',')) continue;
      return Eat('}');
    }
  }

  // Calls on_element(index) for each element of an array; on_element must consume it.
  template <typename F>
  bool ForEachElement(int depth, F&& on_element) {
    if (depth > kMaxDepth || !Eat('[')) return false;
    if (Eat(']')) return true;
    for (int i = 0;; ++i) {
      if (!on_element(i)) return false;
      if (Eat(',')) continue;
      return Eat(']');
    }
  }

 private:
  const char* p_;
  const char* end_;
};

// A string value into *out, or any other value skipped (out left alone).
bool StringOrSkip(Cursor& c, int depth, std::string_view* out) {
  if (c.Peek() == '"') return c.String(out);
  return c.SkipValue(depth);
}

bool ScanChoice(Cursor& c, int depth, StreamChunk* out) {
  return c.ForEachMember(depth, [&](std::string_view key) {
    if (key == "text") return StringOrSkip(c, depth + 1, &out->content_raw);
    if (key == "finish_reason") return StringOrSkip(c, depth + 1, &out->finish_reason);
    if (key == "delta") {
      if (c.Peek() != '{') return c.SkipValue(depth + 1);
      return c.ForEachMember(depth + 1, [&](std::string_view dkey) {
        if (dkey == "content" || dkey == "reasoning_content" || dkey == "reasoning") {
          std::string_view v;
          if (!StringOrSkip(c, depth + 2, &v)) return false;
          if (!v.empty() && out->content_raw.empty()) out->content_raw = v;
          return true;
        }
        return c.SkipValue(depth + 2);
      });
    }
    return c.SkipValue(depth + 1);
  });
}

bool ScanUsage(Cursor& c, int depth, StreamChunk* out) {
  if (c.Peek() != '{') return c.SkipValue(depth);
  out->has_usage = true;
  return c.ForEachMember(depth, [&](std::string_view key) {
    if (key == "prompt_tokens") return c.Integer(&out->prompt_tokens);
    if (key == "completion_tokens") return c.Integer(&out->completion_tokens);
    if (key == "prompt_tokens_details") {
      if (c.Peek() != '{') return c.SkipValue(depth + 1);
      return c.ForEachMember(depth + 1, [&](std::string_view dkey) {
        if (dkey == "cached_tokens") return c.Integer(&out->cached_tokens);
        return c.SkipValue(depth + 2);
      });
    }
    return c.SkipValue(depth + 1);
  });
}

bool ScanError(Cursor& c, int depth, StreamChunk* out) {
  out->is_error = true;
  if (c.Peek() == '"') return c.String(&out->error_message);
  if (c.Peek() != '{') return c.SkipValue(depth);
  return c.ForEachMember(depth, [&](std::string_view key) {
    if (key == "message") return StringOrSkip(c, depth + 1, &out->error_message);
    return c.SkipValue(depth + 1);
  });
}

}  // namespace

bool ScanStreamChunk(std::string_view json, StreamChunk* out) {
  *out = StreamChunk{};
  Cursor c(json);
  bool ok = c.ForEachMember(0, [&](std::string_view key) {
    if (key == "choices") {
      if (c.Peek() != '[') return c.SkipValue(1);
      return c.ForEachElement(1, [&](int index) {
        out->has_choices = true;
        if (index != 0 || c.Peek() != '{') return c.SkipValue(2);
        return ScanChoice(c, 2, out);
      });
    }
    if (key == "usage") return ScanUsage(c, 1, out);
    if (key == "error") return ScanError(c, 1, out);
    return c.SkipValue(1);
  });
  if (!ok || !c.AtEnd()) return false;
  out->has_content = !out->content_raw.empty();
  return true;
}

}  // namespace strata::bench
