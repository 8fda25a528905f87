// The scan answer's wire form: round trip, and a hostile answer (wrong
// types, negative or huge counts, invalid shapes) is an error naming the field.
#include "graph/scan_report.h"

#include <gtest/gtest.h>

namespace loom::graph {
namespace {

using nlohmann::json;

ScanReport sample() {
  ScanReport r;
  r.values = {{0, "read", {2, 7, 64}, "F32"}, {3, "op", {}, "F32"}};
  r.saves = {{"h0", {2, 7, 64}, "F32"}};
  r.saved_bytes = 3584;
  r.intermediate_bytes = 100;
  r.autograd_bytes = 7;
  r.peak_bytes = 3691;
  r.tokens = 14;
  r.flops = 1.5e6;
  r.device_ms = 0.25;
  return r;
}

TEST(ScanReport, RoundTripsThroughJson) {
  auto back = scan_report_from_json(to_json(sample()));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->values.size(), 2u);
  EXPECT_EQ(back->value(0)->shape, (std::vector<int64_t>{2, 7, 64}));
  EXPECT_EQ(back->value(3)->kind, "op");
  EXPECT_EQ(back->save("h0")->dtype, "F32");
  EXPECT_EQ(back->peak_bytes, 3691u);
  EXPECT_EQ(back->tokens, 14);
  EXPECT_EQ(back->flops, 1.5e6);
  EXPECT_EQ(back->value(9), nullptr);
}

TEST(ScanReport, HostileAnswersAreErrorsNamingTheField) {
  struct Case {
    const char* what;
    std::function<void(json&)> mutate;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"not an object", [](json& j) { j = json::array(); }, "the answer"},
      {"values a string", [](json& j) { j["values"] = "x"; }, "values"},
      {"node negative", [](json& j) { j["values"][0]["node"] = -1; }, "values[0].node"},
      {"node huge", [](json& j) { j["values"][0]["node"] = 1ull << 40; }, "values[0].node"},
      {"shape of strings", [](json& j) { j["values"][1]["shape"] = json::array({"a"}); }, "values[1].shape"},
      {"negative dim", [](json& j) { j["saves"][0]["shape"] = json::array({-3}); }, "saves[0].shape"},
      {"rank 65", [](json& j) { j["saves"][0]["shape"] = json(std::vector<int>(65, 1)); }, "saves[0].shape"},
      {"name a number", [](json& j) { j["saves"][0]["name"] = 5; }, "saves[0].name"},
      {"long dtype", [](json& j) { j["saves"][0]["dtype"] = std::string(5000, 'F'); }, "saves[0].dtype"},
      {"estimate missing", [](json& j) { j.erase("estimate"); }, "estimate"},
      {"bytes negative", [](json& j) { j["estimate"]["peak_bytes"] = -5; }, "peak_bytes"},
      {"flops a string", [](json& j) { j["estimate"]["flops"] = "many"; }, "flops"},
      {"device_ms NaN-ish", [](json& j) { j["estimate"]["device_ms"] = -1.0; }, "device_ms"},
  };
  for (const Case& c : cases) {
    json j = to_json(sample());
    c.mutate(j);
    auto r = scan_report_from_json(j);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.status().message().find(c.field), std::string::npos) << c.what << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace loom::graph
