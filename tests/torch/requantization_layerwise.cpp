// requantization_layerwise MODEL.h5 REF.h5 MODE [MAX_LSB]
//
// Runs an int8 model on one node, in-process, with requantization MODE
// (pytorch or cmsis), layer by layer against PyTorch's quantized model:
// every quint8 layer is compared with REF.h5's /layers/<name> (written by
// export_torch.py --reference), then replaced by it, so that each layer is
// computed from PyTorch's own inputs. Prints each layer's largest difference
// and the count of differing elements; exits 1 when any layer differs by
// more than MAX_LSB (default 0), 2 on a bad argument or file.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../io/hdf5.hpp"
#include "../../io/model_file.hpp"
#include "../../partition/node_program_builder.hpp"
#include "../../src/error.hpp"
#include "../../src/executor.hpp"
#include "../../src/input_exchange.hpp"

namespace splitinfer {
namespace {

int check(const std::string& model_path, const std::string& reference_path, const std::string& mode,
          int max_lsb) {
  Model model = read_model(model_path);
  model.requantization = requantization_from_name(mode);
  const h5::Group reference = h5::open_file(reference_path);
  std::vector<int64_t> dims;
  const std::vector<float> input = reference.read_floats("input", dims);
  const h5::Group layers = reference.open_group("layers");

  LayerRegions regions(model.layers.size(), std::vector<Region>(1));
  for (size_t i = 1; i < model.layers.size(); ++i)
    regions[i][0] = Region::whole(model.layers[i].output_shape);
  Executor executor(model, build_node_program(model, regions, 1), "node 1");
  Arena arena(ArenaLayout::kUnlimited);
  InputExchange exchange(model.layers[0].output_shape);
  exchange.set_input(input.data());
  int worst = 0, compared = 0;
  executor.run(
      arena, exchange,
      [&](int index, Tensor& out) {
        const Layer& layer = model.layers[index];
        if (!layer.quantized() || !layers.has(layer.name)) return;
        std::vector<int64_t> ref_dims;
        const std::vector<uint8_t> expected = layers.read_raw(layer.name, DType::u8, ref_dims);
        if (expected.size() != static_cast<size_t>(out.shape.elements()))
          throw Error("reference layer '" + layer.name + "' has another size");
        int largest = 0;
        int64_t differing = 0;
        for (size_t k = 0; k < expected.size(); ++k) {
          const int diff = std::abs(static_cast<int>(out.u8()[k]) - expected[k]);
          largest = std::max(largest, diff);
          differing += diff != 0;
          out.u8()[k] = expected[k];  // later layers read PyTorch's values
        }
        std::printf("%-32s %-16s %8lld of %8lld differ, max %d LSB\n", layer.name.c_str(),
                    op_name(layer.op), static_cast<long long>(differing),
                    static_cast<long long>(expected.size()), largest);
        worst = std::max(worst, largest);
        ++compared;
      },
      [](const Tensor&) {});
  std::printf(
      "%s requantization, each layer from PyTorch's inputs: %d quint8 layers, max %d LSB "
      "(allowed %d)\n",
      mode.c_str(), compared, worst, max_lsb);
  if (compared == 0) {
    std::fprintf(stderr, "no quint8 layer of the model is in %s\n", reference_path.c_str());
    return 1;
  }
  return worst <= max_lsb ? 0 : 1;
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s MODEL.h5 REF.h5 pytorch|cmsis [MAX_LSB]\n", argv[0]);
    return 2;
  }
  try {
    return splitinfer::check(argv[1], argv[2], argv[3], argc == 5 ? std::atoi(argv[4]) : 0);
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "requantization_layerwise: %s\n", failure.what());
    return 2;
  }
}
