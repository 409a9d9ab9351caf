// `splitinfer quantize MODEL.h5 --calib CALIB.h5 [--per-tensor] [--requantization M] -o OUT.h5`:
// calibrates the float model on one node (MinMax observers) and writes its
// quint8 form; `splitinfer quantize MODEL.h5 --weights fp16 -o OUT.h5`:
// the same graph with float16 weights.
#include <cstdio>
#include <filesystem>

#include "../../io/calibration_file.hpp"
#include "../../io/model_file.hpp"
#include "../../io/output_file.hpp"
#include "../../partition/node_program_builder.hpp"
#include "../../partition/strategies.hpp"
#include "../error.hpp"
#include "../format.hpp"
#include "../quantize.hpp"
#include "commands.hpp"

namespace splitinfer {
namespace {

int write_float16(const QuantizeOptions& options, const Model& model) {
  if (!options.calib_path.empty() || options.per_tensor || !options.requantization.empty())
    throw Error(
        "--weights fp16 only stores the weights as float16: --calib, --per-tensor and "
        "--requantization do not apply");
  const Model half = float16_weights(model);
  write_atomically_with(options.output_path,
                        [&](const std::string& path) { write_model(path, half); });
  std::printf("%s: %s with float16 weights, %s of weights (float32: %s)\n",
              options.output_path.c_str(), model.name.c_str(),
              format_bytes(half.weight_bytes()).c_str(),
              format_bytes(model.weight_bytes()).c_str());
  return 0;
}

}  // namespace

int quantize_command(const QuantizeOptions& options) {
  if (options.observer != "minmax")
    throw Error("--observer '" + options.observer + "' is not available (minmax)");
  check_output_paths({{"--output", options.output_path}},
                     {{"the model", options.model_path}, {"--calib", options.calib_path}});
  const Model model = read_model(options.model_path);
  if (options.weights == "fp16") return write_float16(options, model);
  if (options.calib_path.empty())
    throw Error("--calib CALIB.h5 is needed to quantize to int8 (or --weights fp16)");

  // Refuse before reading the calibration inputs and running the model.
  check_quantizable(model);
  const CalibrationInputs calibration =
      read_calibration(options.calib_path, model.meta.input_shape);

  // One node computing every layer whole, fed by the calibration inputs.
  const NodeProgram program = build_node_program(model, spatial_regions(model, 1, 1), 1);
  const std::vector<MinMaxRange> ranges = calibrate(model, program, calibration.values);

  QuantizeSettings settings;
  settings.per_tensor_weights = options.per_tensor;
  if (!options.requantization.empty())
    settings.requantization = requantization_from_name(options.requantization);
  const std::string calib_name = std::filesystem::path(options.calib_path).filename().string();
  settings.note = "splitinfer quantize: MinMax observers over " +
                  std::to_string(calibration.count) + " calibration input(s) of " + calib_name +
                  (calibration.source.empty() ? "" : " (" + calibration.source + ")") + ", " +
                  (options.per_tensor ? "per-tensor" : "per-channel") +
                  " symmetric int8 weights, requantization " +
                  requantization_name(settings.requantization);
  const Model quantized = quantize_model(model, ranges, settings);
  write_atomically_with(options.output_path,
                        [&](const std::string& path) { write_model(path, quantized); });

  std::printf(
      "%s: %s as int8, calibrated on %lld input(s): %zu layers (the float model: %zu), %s of "
      "weights (float: %s)\n",
      options.output_path.c_str(), model.name.c_str(), static_cast<long long>(calibration.count),
      quantized.layers.size(), model.layers.size(), format_bytes(quantized.weight_bytes()).c_str(),
      format_bytes(model.weight_bytes()).c_str());
  return 0;
}

}  // namespace splitinfer
