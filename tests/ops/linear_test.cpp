// linear(): the fixed-order GEMM kernel against linear_reference() on seeded random
// data, and both on a hand-computed case.
#include "ops/linear.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "test_util.hpp"

namespace splitinfer {
namespace {

using testing::OwnedTensor;
using testing::random_values;

// Fast vs reference: relative to the largest reference output.
constexpr float kRelativeTolerance = 1e-5f;

// A rank-2 [N, F] tensor, held as [N, F, 1, 1].
Shape features(int64_t n, int64_t count) { return Shape{n, count, 1, 1, 2}; }

struct LinearCase {
  const char* name;
  int64_t batch, inputs, outputs;
  bool bias;
};

void PrintTo(const LinearCase& c, std::ostream* os) { *os << c.name; }

class LinearFastVsReference : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearFastVsReference, AgreesWithinTolerance) {
  const LinearCase& c = GetParam();
  const OwnedTensor in = testing::random_tensor(features(c.batch, c.inputs), 31);
  const std::vector<float> weight = random_values(static_cast<size_t>(c.outputs * c.inputs), 32);
  const std::vector<float> bias =
      c.bias ? random_values(static_cast<size_t>(c.outputs), 33) : std::vector<float>{};
  const float* bias_data = c.bias ? bias.data() : nullptr;
  OwnedTensor reference(features(c.batch, c.outputs));
  OwnedTensor fast(features(c.batch, c.outputs));
  linear_reference(in.tensor, weight.data(), bias_data, reference.tensor);
  linear(in.tensor, weight.data(), bias_data, fast.tensor);
  ASSERT_GT(testing::max_abs(reference.values), 0.0f);
  EXPECT_TRUE(testing::close_relative(reference.values, fast.values, kRelativeTolerance));
}

INSTANTIATE_TEST_SUITE_P(Cases, LinearFastVsReference,
                         ::testing::Values(LinearCase{"one_to_one", 1, 1, 1, true},
                                           LinearCase{"classifier_16_to_10", 1, 16, 10, true},
                                           LinearCase{"no_bias_7_to_513", 1, 7, 513, false},
                                           LinearCase{"mnist_784_to_128", 1, 784, 128, true},
                                           LinearCase{"wide_1280_to_1000", 1, 1280, 1000, true},
                                           LinearCase{"to_one_output_333", 1, 333, 1, false},
                                           LinearCase{"batch3_50_to_9", 3, 50, 9, true}),
                         [](const ::testing::TestParamInfo<LinearCase>& info) {
                           return std::string(info.param.name);
                         });

// A node's share of a layer (a range of its neurons, as the channel strategy
// cuts it) equals the same neurons of the whole layer bit for bit.
TEST(LinearRange, EqualsTheWholeLayerBitForBit) {
  for (const int64_t inputs : {1, 7, 16, 63, 64, 100, 1280}) {
    const int64_t outputs = 37, batch = 2;
    SCOPED_TRACE("inputs " + std::to_string(inputs));
    std::mt19937 rng(static_cast<uint32_t>(inputs));
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> x(batch * inputs), weight(outputs * inputs), bias(outputs);
    for (float& v : x) v = dist(rng);
    for (float& v : weight) v = dist(rng);
    for (float& v : bias) v = dist(rng);
    const OwnedTensor in(features(batch, inputs), x);
    OwnedTensor whole(features(batch, outputs));
    linear(in.tensor, weight.data(), bias.data(), whole.tensor);
    for (const auto& [first, count] :
         std::vector<std::pair<int64_t, int64_t>>{{0, 1}, {5, 13}, {36, 1}}) {
      OwnedTensor part(features(batch, count));
      linear(in.tensor, weight.data() + first * inputs, bias.data() + first, part.tensor);
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t o = 0; o < count; ++o) {
          const float a = part.tensor.f32()[n * count + o];
          const float b = whole.tensor.f32()[n * outputs + first + o];
          EXPECT_EQ(std::memcmp(&a, &b, sizeof(float)), 0)
              << "neuron " << first + o << " of row " << n;
        }
    }
  }
}

// linear() adds each neuron's products in input order from its bias, as
// gemm_in_depth_order() with one column does: the same bits, with and
// without a bias, over partial blocks of neurons and inputs.
TEST(LinearOrder, EqualsTheGemmWithOneColumnBitForBit) {
  for (const auto& [inputs, outputs] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {16, 10}, {17, 33}, {100, 47}, {1280, 1000}, {333, 64}}) {
    SCOPED_TRACE(std::to_string(inputs) + " to " + std::to_string(outputs));
    const OwnedTensor in = testing::random_tensor(features(1, inputs), 41);
    const std::vector<float> weight = random_values(static_cast<size_t>(outputs * inputs), 42);
    const std::vector<float> bias = random_values(static_cast<size_t>(outputs), 43);
    for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
      OwnedTensor fast(features(1, outputs));
      std::vector<float> gemm(static_cast<size_t>(outputs));
      linear(in.tensor, weight.data(), b, fast.tensor);
      gemm_in_depth_order(weight.data(), in.tensor.f32(), b, gemm.data(), outputs, inputs, 1);
      EXPECT_EQ(std::memcmp(fast.values.data(), gemm.data(), 4 * gemm.size()), 0)
          << (b ? "with bias" : "without bias");
    }
  }
}

TEST(LinearByHand, BothKernels) {
  // weight [[1, 2, 3], [4, 5, 6]], in [1, -1, 2], bias [0.5, -0.5]:
  // out0 = 1 - 2 + 6 + 0.5 = 5.5; out1 = 4 - 5 + 12 - 0.5 = 10.5.
  const OwnedTensor in(features(1, 3), {1, -1, 2});
  const std::vector<float> weight = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {0.5f, -0.5f};
  OwnedTensor reference(features(1, 2)), fast(features(1, 2));
  linear_reference(in.tensor, weight.data(), bias.data(), reference.tensor);
  linear(in.tensor, weight.data(), bias.data(), fast.tensor);
  testing::expect_values({5.5f, 10.5f}, reference.tensor);
  testing::expect_values({5.5f, 10.5f}, fast.tensor);
  // Without bias: 5 and 11.
  linear_reference(in.tensor, weight.data(), nullptr, reference.tensor);
  linear(in.tensor, weight.data(), nullptr, fast.tensor);
  testing::expect_values({5, 11}, reference.tensor);
  testing::expect_values({5, 11}, fast.tensor);
}

TEST(LinearByHand, BatchRowsAreIndependent) {
  // Two rows through weight [[1, 1], [1, -1]]: [3, 1] -> [4, 2]; [0, 5] -> [5, -5].
  const OwnedTensor in(features(2, 2), {3, 1, 0, 5});
  const std::vector<float> weight = {1, 1, 1, -1};
  OwnedTensor reference(features(2, 2)), fast(features(2, 2));
  linear_reference(in.tensor, weight.data(), nullptr, reference.tensor);
  linear(in.tensor, weight.data(), nullptr, fast.tensor);
  testing::expect_values({4, 2, 5, -5}, reference.tensor);
  testing::expect_values({4, 2, 5, -5}, fast.tensor);
}

}  // namespace
}  // namespace splitinfer
