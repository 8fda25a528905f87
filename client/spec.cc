#include "client/spec.h"

#include <cctype>
#include <vector>

namespace loom::client {
namespace {

bool parse_uint(const std::string& s, uint32_t max, uint32_t& out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  unsigned long v = std::stoul(s);
  if (v > max) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

Result<graph::Point> parse_spec(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return invalid_argument("bad SPEC \"" + spec + "\": " + why +
                            " (expected PATH.output, PATH.output.K or PATH.input.K, optionally ending in @N, @A:B, @A: or @all)");
  };
  graph::Point p;
  std::string body = spec;
  size_t at = body.rfind('@');
  if (at != std::string::npos) {
    const std::string steps = body.substr(at + 1);
    const size_t colon = steps.find(':');
    uint32_t first = 0, end = 0;
    if (steps == "all") {
      p.call_end = graph::kEveryCall;
    } else if (colon == std::string::npos) {
      if (!parse_uint(steps, 1u << 30, first)) return bad("the call index after '@' must be a number, A:B, A: or all");
      p.call = first;
    } else {
      if (!parse_uint(steps.substr(0, colon), 1u << 30, first)) return bad("the step range must be A:B or A:");
      if (colon + 1 == steps.size()) {
        end = graph::kEveryCall;
      } else if (!parse_uint(steps.substr(colon + 1), 1u << 30, end) || end <= first) {
        return bad("the step range A:B needs B > A");
      }
      p.call = first;
      p.call_end = end;
    }
    body = body.substr(0, at);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = body.find('.', start);
    parts.push_back(body.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& part : parts) {
    if (part.empty()) return bad("empty path component");
  }
  size_t io_pos = parts.size();
  uint32_t index = 0;
  bool has_index = false;
  if (parts.size() >= 2 && parse_uint(parts.back(), 1u << 20, index)) {
    has_index = true;
    io_pos = parts.size() - 2;
  } else {
    io_pos = parts.size() - 1;
  }
  const std::string& io = parts[io_pos];
  if (io == "output") {
    p.io = graph::Io::kOutput;
    p.index = has_index ? static_cast<int32_t>(index) : -1;
  } else if (io == "input") {
    p.io = graph::Io::kInput;
    p.index = has_index ? static_cast<int32_t>(index) : 0;
  } else {
    return bad("\"" + io + "\" is neither output nor input");
  }
  for (size_t i = 0; i < io_pos; ++i) {
    if (i) p.module += '.';
    p.module += parts[i];
  }
  return p;
}

std::string save_name(const std::string& spec, const graph::Point& point) {
  return point.repeats() ? spec.substr(0, spec.rfind('@')) : spec;
}

HookPoint hook_point(Builder& b, const graph::Point& p) {
  ModuleRef m = b.module(p.module);
  m = p.repeats() ? m.steps(p.call, p.call_end) : m.call(p.call);
  return p.io == graph::Io::kOutput ? m.output(p.index) : m.input(p.index);
}

}  // namespace loom::client
