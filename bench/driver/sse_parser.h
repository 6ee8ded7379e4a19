// Incremental Server-Sent Events parser (the subset the OpenAI streaming API uses): bytes go in
// as they arrive, in pieces of any size; each complete event's data (its `data:` lines joined
// with '\n') comes out through a callback. `event:`, `id:`, `retry:` and comment lines are
// ignored. CRLF, CR-less LF and a single optional space after "data:" are handled.
//
// Zero-copy in the common case: when an event's data line and its terminating blank line lie in
// the same Feed() input, the callback gets a view into that input. Otherwise the data is copied
// into a buffer that the parser keeps and reuses, so after warm-up no event allocates.
//
// Not thread-safe; one parser per stream. The view passed to the callback is valid only during
// the call.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace strata::bench {

class SseParser {
 public:
  // Lines longer than this are a protocol error (Feed returns false).
  static constexpr size_t kMaxLineBytes = 16 << 20;

  SseParser() {
    carry_.reserve(4096);
    data_.reserve(4096);
  }

  // Feeds the next bytes; calls on_event(std::string_view data) for every event completed by
  // them. Returns false when a line exceeds kMaxLineBytes or on_event returned false (which
  // stops parsing; the parser must then be Reset()).
  template <typename OnEvent>
  bool Feed(std::string_view in, OnEvent&& on_event);

  // Forgets any partial line or event (a new stream).
  void Reset() {
    carry_.clear();
    data_.clear();
    num_data_lines_ = 0;
    data_owned_ = false;
    skip_lf_ = false;
  }

 private:
  // Handles one line (without its terminator). `stable` says whether `line` stays valid until
  // the end of the current Feed() call.
  template <typename OnEvent>
  bool Line(std::string_view line, bool stable, OnEvent& on_event);

  std::string carry_;         // a line started in an earlier Feed()
  std::string data_;          // event data when it cannot be a view
  std::string_view pending_;  // event data as a view into the current input
  int num_data_lines_ = 0;
  bool data_owned_ = false;  // event data lives in data_, not pending_
  bool skip_lf_ = false;     // the previous input ended with '\r'; drop a leading '\n'
};

template <typename OnEvent>
bool SseParser::Feed(std::string_view in, OnEvent&& on_event) {
  if (skip_lf_ && !in.empty()) {
    if (in.front() == '\n') in.remove_prefix(1);
    skip_lf_ = false;
  }
  while (!in.empty()) {
    size_t nl = in.find_first_of("\r\n");
    if (nl == std::string_view::npos) {
      if (carry_.size() + in.size() > kMaxLineBytes) return false;
      carry_.append(in);
      break;
    }
    std::string_view piece = in.substr(0, nl);
    size_t next = nl + 1;
    if (in[nl] == '\r') {
      if (next < in.size()) {
        if (in[next] == '\n') ++next;
      } else {
        skip_lf_ = true;
      }
    }
    in.remove_prefix(next);
    bool ok;
    if (carry_.empty()) {
      ok = Line(piece, /*stable=*/true, on_event);
    } else {
      if (carry_.size() + piece.size() > kMaxLineBytes) return false;
      carry_.append(piece);
      ok = Line(carry_, /*stable=*/false, on_event);
      carry_.clear();
    }
    if (!ok) return false;
  }
  // A pending event's view would dangle after this call: keep a copy.
  if (num_data_lines_ > 0 && !data_owned_) {
    data_.assign(pending_);
    data_owned_ = true;
  }
  return true;
}

template <typename OnEvent>
bool SseParser::Line(std::string_view line, bool stable, OnEvent& on_event) {
  if (line.empty()) {  // dispatch
    if (num_data_lines_ == 0) return true;
    std::string_view data = data_owned_ ? std::string_view(data_) : pending_;
    bool keep_going = on_event(data);
    num_data_lines_ = 0;
    data_owned_ = false;
    data_.clear();
    return keep_going;
  }
  if (line.size() < 5 || line.compare(0, 5, "data:") != 0) return true;  // other fields
  std::string_view value = line.substr(5);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (num_data_lines_ == 0) {
    if (stable) {
      pending_ = value;
      data_owned_ = false;
    } else {
      data_.assign(value);
      data_owned_ = true;
    }
  } else {
    if (!data_owned_) {
      data_.assign(pending_);
      data_owned_ = true;
    }
    data_.push_back('\n');
    data_.append(value);
  }
  ++num_data_lines_;
  return true;
}

}  // namespace strata::bench
