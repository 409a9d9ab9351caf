#include "protocol.hpp"

#include <nlohmann/json.hpp>
#include <optional>

namespace splitinfer {

RunSettings agree_settings(Transport& transport, const RunSettings& settings) {
  std::string text;
  if (transport.rank() == 0)
    text = nlohmann::json{{"plan_dir", settings.plan_dir},
                          {"ram", settings.ram},
                          {"repeat", settings.repeat},
                          {"dump_layers", settings.dump_layers},
                          {"reference_kernels", settings.reference_kernels},
                          {"trace", settings.trace},
                          {"requantization", settings.requantization},
                          {"timeout", settings.timeout},
                          {"slow", settings.slow},
                          {"schedule", settings.schedule},
                          {"rebalance", settings.rebalance},
                          {"power", settings.power},
                          {"seed", settings.seed},
                          {"nvm_dir", settings.nvm_dir},
                          {"resume", settings.resume},
                          {"reconfigure", settings.reconfigure},
                          {"job_ms", settings.job_ms},
                          {"job_order", settings.job_order},
                          {"power_trace", settings.power_trace}}
               .dump();
  transport.broadcast(text);
  const nlohmann::json agreed = nlohmann::json::parse(text);
  RunSettings result;
  result.plan_dir = agreed["plan_dir"].get<std::string>();
  result.ram = agreed["ram"].get<std::string>();
  result.repeat = agreed["repeat"].get<int>();
  result.dump_layers = agreed["dump_layers"].get<bool>();
  result.reference_kernels = agreed["reference_kernels"].get<bool>();
  result.trace = agreed["trace"].get<bool>();
  result.requantization = agreed["requantization"].get<std::string>();
  result.timeout = agreed["timeout"].get<double>();
  result.slow = agreed["slow"].get<std::string>();
  result.schedule = agreed["schedule"].get<std::string>();
  result.rebalance = agreed["rebalance"].get<bool>();
  result.power = agreed["power"].get<std::string>();
  result.seed = agreed["seed"].get<int64_t>();
  result.nvm_dir = agreed["nvm_dir"].get<std::string>();
  result.resume = agreed["resume"].get<bool>();
  result.reconfigure = agreed["reconfigure"].get<std::string>();
  result.job_ms = agreed["job_ms"].get<std::string>();
  result.job_order = agreed["job_order"].get<std::string>();
  result.power_trace = agreed["power_trace"].get<std::string>();
  return result;
}

void agreed_step(Transport& transport, const std::function<void()>& step) {
  std::optional<std::string> failure;
  try {
    step();
  } catch (const std::exception& error) {
    failure = error.what();
  }
  if (std::optional<std::string> first = transport.first_failure(failure))
    throw AgreedFailure(*first);
}

}  // namespace splitinfer
