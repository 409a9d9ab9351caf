#include "power.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include "../../partition/plan.hpp"
#include "../error.hpp"
#include "../format.hpp"

namespace splitinfer {
namespace {

// A commit record's bytes on top of its progress text (nvm_store.hpp).
constexpr uint64_t kRecordOverhead = 20;

// A commit record's progress text, as job() writes it, about this long.
constexpr uint64_t kProgressBytes = 64;

double milliseconds(const std::string& text, const std::string& what,
                    const std::string& flag = "--power") {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || !std::isfinite(value))
    throw Error(flag + ": '" + text + "' is not a number of milliseconds (" + what + ")");
  return value;
}

}  // namespace

PowerSettings parse_power(const std::string& text, uint64_t seed) {
  PowerSettings settings;
  settings.seed = seed;
  if (text.empty()) return settings;  // steady: never fails
  const size_t colon = text.find(':');
  const double mean = milliseconds(text.substr(0, colon), "the mean time between failures");
  const double recharge =
      colon == std::string::npos ? 0 : milliseconds(text.substr(colon + 1), "the recharge time");
  if (!(mean > 0))
    throw Error("--power needs a mean time between failures above 0 ms, not " +
                text.substr(0, colon));
  if (recharge < 0) throw Error("--power: the recharge time must not be negative");
  settings.mean_seconds = mean / 1e3;
  settings.recharge_seconds = recharge / 1e3;
  return settings;
}

void parse_reconfiguration(const std::string& mode, const std::string& job_ms,
                           const std::string& job_order, PowerSettings& settings) {
  if (mode != "static" && mode != "dynamic")
    throw Error("--reconfigure '" + mode + "' is not static or dynamic");
  settings.reconfigure = mode;
  if (!job_order.empty()) {
    if (job_order != "channels" && job_order != "rows")
      throw Error("--job-order '" + job_order + "' is not channels or rows");
    if (mode == "dynamic")
      throw Error("--job-order sets the static configuration (--reconfigure static)");
    settings.job_order = job_order;
  }
  if (job_ms.empty()) return;
  if (mode == "dynamic") throw Error("--job-ms sets the static configuration (--reconfigure static)");
  if (job_ms == "layer") {
    settings.job_seconds = 0;
    return;
  }
  const double value = milliseconds(job_ms, "the duration of a job, or 'layer'", "--job-ms");
  if (!(value > 0)) throw Error("--job-ms must be above 0 (or 'layer': a job per layer)");
  settings.job_seconds = value / 1e3;
}

double PowerEmulation::job_seconds(int layer, double input_bytes, double weight_bytes,
                                   double macs, double written_bytes) const {
  const double rate = model_.layers[layer].quantized() ? device_.macs_per_second_int8
                                                       : device_.macs_per_second_float32;
  return input_bytes / device_.nvm_read_bytes_per_second +
         weight_bytes / device_.flash_bytes_per_second + macs / rate +
         written_bytes / device_.nvm_write_bytes_per_second;
}

double PowerEmulation::job_time(const LayerShape& layer, const Tile& tile) const {
  const double share = static_cast<double>(tile.channels) /
                       static_cast<double>(std::max<int64_t>(layer.channels, 1));
  const double row_share =
      static_cast<double>(tile.rows) / static_cast<double>(std::max<int64_t>(layer.rows, 1));
  return job_seconds(layer.layer, static_cast<double>(layer.input_bytes(tile)),
                     static_cast<double>(layer.weight_bytes) * share,
                     static_cast<double>(layer.macs) * share * row_share,
                     static_cast<double>(layer.output_bytes) * share * row_share +
                         kRecordOverhead + kProgressBytes);
}

PowerSupply::Tile PowerEmulation::tile_within(const LayerShape& layer, double seconds,
                                              const std::string& order) const {
  const Tile whole{std::max<int64_t>(layer.channels, 1), std::max<int64_t>(layer.rows, 1)};
  if (seconds <= 0) return whole;
  // The largest count in [1, most] whose tile lasts at most `seconds` (1
  // when none does).
  const auto largest = [&](int64_t most, const std::function<Tile(int64_t)>& tile) {
    int64_t low = 1, high = most;
    while (low < high) {
      const int64_t middle = (low + high + 1) / 2;
      if (job_time(layer, tile(middle)) <= seconds) low = middle;
      else high = middle - 1;
    }
    return low;
  };
  // "channels": bands of channels with every row, as many channels as fit;
  // when one channel's rows do not, bands of that channel's rows. "rows":
  // bands of rows with every channel; when one row's channels do not, bands
  // of that row's channels.
  if (order == "rows") {
    const int64_t rows = largest(whole.rows, [&](int64_t r) { return Tile{whole.channels, r}; });
    if (rows > 1 || job_time(layer, {whole.channels, 1}) <= seconds) return {whole.channels, rows};
    return {largest(whole.channels, [](int64_t c) { return Tile{c, 1}; }), 1};
  }
  const int64_t channels = largest(whole.channels, [&](int64_t c) { return Tile{c, whole.rows}; });
  if (channels > 1 || job_time(layer, {1, whole.rows}) <= seconds) return {channels, whole.rows};
  return {1, largest(whole.rows, [](int64_t r) { return Tile{1, r}; })};
}

PowerSupply::Tile PowerEmulation::job_tile(const LayerShape& layer) {
  if (settings_.reconfigure != "dynamic")
    return tile_within(layer, settings_.job_seconds, settings_.job_order);
  // Expected device time of the layer's jobs: a job of duration T under
  // failures at rate f (each followed by the recharge R) takes
  // (e^{fT} - 1)(1/f + R) on average; without failures seen, T. Smaller
  // jobs lose less to a failure and read their inputs (a band of channels)
  // or their weights (a band of rows) more times.
  // Failures per second with power (the recharges left out of the clock).
  const double powered =
      run_seconds_ + clock_ - run_recharge_seconds_ - stats_.recharge_seconds;
  const double rate = powered > 0 ? (run_failures_ + stats_.power_failures) / powered : 0;
  double recharge = settings_.recharge_seconds;  // a trace's: its mean time without power
  if (!settings_.trace.empty()) {
    recharge = 0;
    for (const auto& [on, off] : settings_.trace) recharge += off;
    recharge /= static_cast<double>(settings_.trace.size());
  }
  const int64_t channels = std::max<int64_t>(layer.channels, 1), rows = std::max<int64_t>(layer.rows, 1);
  Tile chosen{channels, rows};
  double least = std::numeric_limits<double>::infinity();
  int64_t fewest = 0;
  // Each candidate's tile, and the tile of as many jobs cut as evenly as
  // whole channels and rows allow (12 rows in 3 jobs of 4, not 5, 5 and 2):
  // a static configuration keeps one tile size; dynamic sizes tiles per layer.
  const auto even = [&](Tile tile) {
    const int64_t bands = (channels + tile.channels - 1) / tile.channels;
    const int64_t row_bands = (rows + tile.rows - 1) / tile.rows;
    return Tile{(channels + bands - 1) / bands, (rows + row_bands - 1) / row_bands};
  };
  for (const char* order : {"channels", "rows"})
    for (double seconds :
         settings_.candidates.empty() ? default_job_seconds_candidates() : settings_.candidates)
      for (const Tile within = tile_within(layer, seconds, order);
           const Tile tile : {within, even(within)}) {
        // The layer's jobs: whole tiles, and narrower or shorter ones where the
        // tile does not divide the channels or rows (each its own duration).
        const int64_t whole_channels = channels / tile.channels, whole_rows = rows / tile.rows;
        const int64_t left_channels = channels % tile.channels, left_rows = rows % tile.rows;
        const int64_t jobs =
            (channels + tile.channels - 1) / tile.channels * ((rows + tile.rows - 1) / tile.rows);
        double expected = 0;
        for (const auto& [c, r, count] :
             {std::tuple{tile.channels, tile.rows, whole_channels * whole_rows},
              std::tuple{left_channels, tile.rows, whole_rows},
              std::tuple{tile.channels, left_rows, whole_channels},
              std::tuple{left_channels, left_rows, int64_t{1}}}) {
          if (c == 0 || r == 0 || count == 0) continue;
          const double t = job_time(layer, Tile{c, r});
          expected +=
              static_cast<double>(count) *
              (rate > 0 ? std::expm1(std::min(rate * t, 700.0)) * (1 / rate + recharge) : t);
        }
        // The least expected time; of equal ones, the fewest jobs.
        if (expected < least || (expected == least && jobs < fewest)) {
          chosen = tile;
          least = expected;
          fewest = jobs;
        }
      }
  return chosen;
}

PowerEmulation::PowerEmulation(const Model& model, const NodeProgram& program,
                               const DeviceProfile& device, const PowerSettings& settings, int node,
                               const std::string& nvm_path, const std::string& plan_id, bool resume)
    : model_(model),
      device_(device),
      settings_(settings),
      keys_(nvm_keys(model, program)),
      node_(node) {
  uint64_t total = 0;
  for (const auto& [key, bytes] : keys_) {
    offsets_.push_back(total);
    total += bytes;
  }
  if (device.nvm_bytes == 0)
    throw Error("--power needs a device with an NVM in its profile (msp432 has one); node " +
                std::to_string(node) + "'s device '" + device.name + "' has none");
  if (total > device.nvm_bytes)
    throw Error("node " + std::to_string(node) + "'s NVM (" + format_bytes(device.nvm_bytes) +
                " on " + device.name + ") cannot hold what it keeps through power failures (" +
                format_bytes(total) +
                ": its region of every layer and every tile it receives); plan more nodes");
  store_ = std::make_unique<NvmStore>(nvm_path, "plan " + plan_id + " node " + std::to_string(node),
                                      total, resume);
}

std::optional<ResumePoint> PowerEmulation::resume_point() const {
  const std::optional<std::string> progress = store_->progress();
  if (!progress) return std::nullopt;
  ResumePoint point;
  char digest[65] = {0};
  long long channels = 0, rows = 0, jobs = 0;
  if (std::sscanf(progress->c_str(), "inference %d input %64s layer %d tile %lldx%lld jobs %lld",
                  &point.inference, digest, &point.layer, &channels, &rows, &jobs) != 6 ||
      channels < 1 || rows < 1 || jobs < 1)
    return std::nullopt;
  point.input_digest = digest;
  point.tile = {channels, rows};
  point.jobs_done = jobs;
  return point;
}

namespace {

double failure_interval(double mean_seconds, std::mt19937_64& random) {
  if (!(mean_seconds > 0)) return std::numeric_limits<double>::infinity();  // steady power
  return std::exponential_distribution<double>(1 / mean_seconds)(random);
}

}  // namespace

std::vector<std::pair<double, double>> read_power_trace(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw Error("cannot read the power trace '" + path + "'");
  std::vector<std::pair<double, double>> cycles;
  std::string line;
  for (int number = 1; std::getline(file, line); ++number) {
    const std::string where = "the power trace '" + path + "', line " + std::to_string(number);
    const size_t hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    double on = 0, off = 0;
    std::string extra;
    if (!(fields >> on)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank
      throw Error(where + ": expected ON_MS OFF_MS");
    }
    if (!(fields >> off) || (fields >> extra))
      throw Error(where + ": expected ON_MS OFF_MS");
    if (!(on > 0) || !std::isfinite(on) || !(off >= 0) || !std::isfinite(off))
      throw Error(where + ": the time with power must be above 0 ms and the time without it "
                          "0 ms or more");
    cycles.emplace_back(on / 1e3, off / 1e3);
  }
  if (cycles.empty()) throw Error("the power trace '" + path + "' holds no cycle");
  return cycles;
}

void PowerEmulation::start_inference(int inference, const std::string& input_digest) {
  run_failures_ += stats_.power_failures;
  run_seconds_ += clock_;
  run_recharge_seconds_ += stats_.recharge_seconds;
  inference_ = inference;
  input_digest_ = input_digest;
  stats_ = {};
  clock_ = 0;
  cycle_ = 0;
  // Each inference its own draws, from the seed, the node and the inference
  // number: the k-th failure falls at the same powered device time whatever
  // the jobs before it did, so that runs differing only in how they cut
  // their jobs (--job-ms, --job-order, --reconfigure) meet the same supply.
  std::seed_seq draws{static_cast<uint32_t>(settings_.seed),
                      static_cast<uint32_t>(settings_.seed >> 32), static_cast<uint32_t>(node_),
                      static_cast<uint32_t>(inference)};
  random_.seed(draws);
  next_failure_ = settings_.trace.empty() ? failure_interval(settings_.mean_seconds, random_)
                                          : settings_.trace[0].first;
  written_at_start_ = store_->bytes_written();
}

PowerStats PowerEmulation::stats() const {
  PowerStats stats = stats_;
  stats.nvm_bytes_written = store_->bytes_written() - written_at_start_;
  stats.nvm_joules = static_cast<double>(stats.nvm_bytes_written + stats.nvm_bytes_read) *
                     device_.nvm_joules_per_byte;
  stats.device_seconds = clock_;
  return stats;
}

uint64_t PowerEmulation::place(int64_t key, uint64_t offset, uint64_t bytes) const {
  for (size_t k = 0; k < keys_.size(); ++k)
    if (keys_[k].first == key) {
      if (offset > keys_[k].second || bytes > keys_[k].second - offset)
        throw Error("internal: NVM key " + std::to_string(key) + " holds " +
                    std::to_string(keys_[k].second) + " bytes, not " + std::to_string(offset) +
                    " + " + std::to_string(bytes));
      return offsets_[k] + offset;
    }
  throw Error("internal: no NVM key " + std::to_string(key));
}

void PowerEmulation::fail(double at) {
  clock_ = std::max(clock_, at);
  ++stats_.power_failures;
  if (!settings_.trace.empty()) {  // the recorded supply: off, then the next cycle
    const double off = settings_.trace[cycle_].second;
    clock_ += off;
    stats_.recharge_seconds += off;
    cycle_ = (cycle_ + 1) % settings_.trace.size();
    next_failure_ = clock_ + settings_.trace[cycle_].first;
    return;
  }
  clock_ += settings_.recharge_seconds;
  stats_.recharge_seconds += settings_.recharge_seconds;
  next_failure_ = clock_ + failure_interval(settings_.mean_seconds, random_);
}

void PowerEmulation::keep(int64_t key, const Chunk& chunk) {
  store_->write(place(key, chunk.offset, chunk.bytes), chunk.data, chunk.bytes);
  clock_ += static_cast<double>(chunk.bytes) / device_.nvm_write_bytes_per_second;
}

bool PowerEmulation::job(const Job& job) {
  const std::string record = "inference " + std::to_string(inference_) + " input " +
                             input_digest_ + " " + job.progress;
  uint64_t bytes = kRecordOverhead + record.size();
  for (const Chunk& chunk : job.chunks) bytes += chunk.bytes;
  const double working =
      job_seconds(job.layer, static_cast<double>(job.input_bytes),
                  static_cast<double>(job.weight_bytes), static_cast<double>(job.macs), 0);
  const double writing = job_seconds(job.layer, 0, 0, 0, static_cast<double>(bytes));
  stats_.nvm_bytes_read += job.input_bytes;
  if (next_failure_ < clock_ + working) {  // lost while reading or computing
    const double part = working > 0 ? std::max(0.0, next_failure_ - clock_) / working : 0;
    stats_.reexecuted_macs +=
        static_cast<uint64_t>(std::llround(part * static_cast<double>(job.macs)));
    fail(next_failure_);
    return false;
  }
  if (next_failure_ < clock_ + working + writing) {  // the writes torn where the instant falls
    const double into = next_failure_ - clock_ - working;
    store_->fail_after(static_cast<int64_t>(into * device_.nvm_write_bytes_per_second));
  }
  try {
    for (const Chunk& chunk : job.chunks)
      store_->write(place(job.key, chunk.offset, chunk.bytes), chunk.data, chunk.bytes);
    store_->commit(record.substr(0, NvmStore::kMostProgressBytes));
  } catch (const PowerLoss&) {
    stats_.reexecuted_macs += job.macs;
    fail(next_failure_);
    return false;
  }
  store_->fail_after(-1);  // the instant rounded past the last byte: no failure
  clock_ += working + writing;
  return true;
}

void PowerEmulation::restore(int64_t key, uint64_t offset, void* data, uint64_t bytes) {
  store_->read(place(key, offset, bytes), data, bytes);
}

}  // namespace splitinfer
