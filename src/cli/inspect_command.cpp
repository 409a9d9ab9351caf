// `splitinfer inspect MODEL.h5 [--json]`: every layer with its shape, MACs,
// parameter and activation bytes and receptive field; totals.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "../../io/model_file.hpp"
#include "../../partition/receptive_field.hpp"
#include "../format.hpp"
#include "commands.hpp"

namespace splitinfer {

int inspect_command(const InspectOptions& options) {
  const Model model = read_model(options.model_path);
  const std::vector<ReceptiveField> fields = receptive_fields(model);
  uint64_t total_macs = 0, total_params = 0, total_activations = 0, largest_activation = 0;
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& layer = model.layers[i];
    const uint64_t macs = layer_macs(model, layer);
    const uint64_t activation_bytes =
        static_cast<uint64_t>(layer.output_shape.elements()) * dtype_bytes(layer.dtype);
    total_macs += macs;
    total_params += layer.weight_bytes();
    total_activations += activation_bytes;
    largest_activation = std::max(largest_activation, activation_bytes);
    layers.push_back({{"index", i},
                      {"name", layer.name},
                      {"op", op_name(layer.op)},
                      {"inputs", layer.input_names},
                      {"output_shape", layer.output_shape.dims()},
                      {"dtype", dtype_name(layer.dtype)},
                      {"macs", macs},
                      {"param_bytes", layer.weight_bytes()},
                      {"activation_bytes", activation_bytes},
                      {"receptive_field", {fields[i].rows, fields[i].cols}}});
  }
  const nlohmann::json totals = {{"layers", model.layers.size()},
                                 {"macs", total_macs},
                                 {"param_bytes", total_params},
                                 {"activation_bytes", total_activations},
                                 {"largest_activation_bytes", largest_activation}};
  if (options.json) {
    nlohmann::json document = {{"model", model.name},
                               {"source", model.source},
                               {"input_shape", model.meta.input_shape.dims()},
                               {"output", model.layers[model.output].name},
                               {"requantization", requantization_name(model.requantization)},
                               {"layers", layers},
                               {"totals", totals}};
    if (model.meta.test_accuracy) document["test_accuracy"] = *model.meta.test_accuracy;
    std::cout << document.dump(2) << "\n";
    return 0;
  }
  std::printf("model %s (%s)\ninput %s, output '%s'\n\n", model.name.c_str(), model.source.c_str(),
              model.meta.input_shape.str().c_str(), model.layers[model.output].name.c_str());
  std::printf("%4s  %-28s %-16s %-16s %14s %12s %12s %11s\n", "#", "layer", "op", "output", "MACs",
              "params", "activation", "RF");
  for (const auto& row : layers) {
    const Layer& layer = model.layers[row["index"].get<size_t>()];
    const std::string field = std::to_string(row["receptive_field"][0].get<int64_t>()) + "x" +
                              std::to_string(row["receptive_field"][1].get<int64_t>());
    std::printf("%4zu  %-28s %-16s %-16s %14llu %12s %12s %11s\n", row["index"].get<size_t>(),
                layer.name.c_str(), op_name(layer.op), layer.output_shape.str().c_str(),
                static_cast<unsigned long long>(row["macs"].get<uint64_t>()),
                format_bytes(layer.weight_bytes()).c_str(),
                format_bytes(row["activation_bytes"].get<uint64_t>()).c_str(), field.c_str());
  }
  std::printf("\ntotal: %zu layers, %.3f GMAC, %s of parameters, %s of activations (largest %s)\n",
              model.layers.size(), total_macs / 1e9, format_bytes(total_params).c_str(),
              format_bytes(total_activations).c_str(), format_bytes(largest_activation).c_str());
  if (model.meta.test_accuracy)
    std::printf("test accuracy: %.2f%%\n", *model.meta.test_accuracy * 100);
  return 0;
}

}  // namespace splitinfer
