#include "executor.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "error.hpp"
#include "op_table.hpp"
#include "ops/conv2d.hpp"

namespace splitinfer {

namespace {

// rows_without_halo(): a layer computed in two parts reads its weights twice;
// that is cheap when they stay in the L2 cache, or when the rows near the
// edges fill a GEMM panel (64 positions) of their own.
constexpr uint64_t kWeightsCheapToReread = 1 << 20;
constexpr int64_t kEdgePositionsWorthAPass = 64;

// Layers stored in a buffer the last advance released are gone (relay: the
// coordinator holds them).
void forget_released(const ScheduledArena& memory, const NodeProgram& program,
                     std::vector<Tensor>& outputs) {
  for (int block : memory.released())
    for (size_t v = 0; v < program.layers.size(); ++v)
      if (program.layers[v].out_buffer == block) outputs[v].data = nullptr;
}

}  // namespace

Executor::Executor(const Model& model, NodeProgram program, std::string node_label, Kernels kernels)
    : model_(model),
      program_(std::move(program)),
      node_label_(std::move(node_label)),
      kernels_(kernels),
      requantization_(model.requantization) {}

Tensor Executor::input(int layer_index, int slot, const ScheduledArena& memory, Exchange& exchange,
                       const std::vector<Tensor>& outputs) const {
  const InputSlot& input = program_.layers[layer_index].inputs[slot];
  const int source = model_.layers[layer_index].inputs[slot];
  const Region& stored_region = program_.layers[source].out;
  char* stored = static_cast<char*>(outputs[source].data);
  Tensor view;
  view.shape = input.needed.shape(model_.layers[source].output_shape);
  view.dtype = model_.layers[source].dtype;
  void* tile = nullptr;
  if (input.direct) {
    const int64_t plane =
        (stored_region.y1 - stored_region.y0) * (stored_region.x1 - stored_region.x0);
    view.data = stored + (input.needed.c0 - stored_region.c0) * plane * input.element_bytes;
  } else if (!input.needed.empty()) {
    tile = memory.at(input.tile_block);
    view.data = tile;
  }
  // The pieces start to travel first and the node's own part of the tile is
  // copied meanwhile, unless a received piece overlaps that part (its values
  // then come from the piece, written after the copy; MPI's receive buffer
  // is not written while the receive is under way).
  const bool moves = input.exchange || !input.receives.empty() || !input.sends.empty();
  const Region own = stored ? stored_region.intersect(input.needed) : Region{};
  const bool overlapped =
      std::any_of(input.receives.begin(), input.receives.end(),
                  [&](const Transfer& piece) { return !piece.region.intersect(own).empty(); });
  const auto copy_own = [&] {
    if (tile && stored)
      copy_region(stored, stored_region, tile, input.needed, own, input.element_bytes);
  };
  if (overlapped) copy_own();
  if (moves) exchange.exchange(layer_index, slot, input, stored, stored_region, tile);
  if (!overlapped) copy_own();
  return view;
}

std::map<std::string, const void*> Executor::weights(int layer_index, const Region& out,
                                                     char* in_ram, uint64_t* streamed,
                                                     uint64_t block_bytes) const {
  // The weights of output channels out.c0..c1 (this node's slice holds
  // those of its region), streamed from flash into `in_ram`, float16
  // widened to float32; per-tensor blobs whole.
  const Layer& layer = model_.layers[layer_index];
  const LayerStep& step = program_.layers[layer_index];
  std::map<std::string, const void*> weights;
  // Without RAM for them, the weights are read where flash holds them (or
  // the layer has none).
  const bool in_place = in_ram == nullptr;
  if (in_place && !program_.weights_in_place) return weights;
  char* cursor = in_ram;
  for (const auto& [blob_name, blob] : layer.weights) {
    size_t first = 0, count = blob.elements();  // the elements streamed
    // Per output channel: the slice's first dimension is its channel count.
    if (blob.dims[0] == step.out.c1 - step.out.c0 &&
        (out.c0 != step.out.c0 || out.c1 != step.out.c1)) {
      const size_t per_channel = count / static_cast<size_t>(step.out.c1 - step.out.c0);
      first = static_cast<size_t>(out.c0 - step.out.c0) * per_channel;
      count = static_cast<size_t>(out.c1 - out.c0) * per_channel;
    } else if (blob.dims[0] == layer.output_shape.c && blob.dims[0] != step.out.c1 - step.out.c0) {
      // The node holds every channel's weights (it may run any task of the
      // layer, partition/task_plan.hpp) and computes some of them.
      const size_t per_channel = count / static_cast<size_t>(layer.output_shape.c);
      first = static_cast<size_t>(out.c0) * per_channel;
      count = static_cast<size_t>(out.c1 - out.c0) * per_channel;
    }
    const size_t element_bytes = blob.bytes() / std::max<size_t>(1, blob.elements());
    const char* source = static_cast<const char*>(blob.data()) + first * element_bytes;
    if (streamed) *streamed += count * element_bytes;  // flash-side bytes
    if (in_place) {
      weights[blob_name] = source;
      continue;
    }
    // A blob of wider elements after a byte blob (int32 biases after int8
    // weights) starts aligned when the block has room for it (a job's
    // channels in the layer's block always have); otherwise the blobs are
    // laid out back to back, as the plan sized the block.
    const size_t ram_element = blob.ram_bytes() / std::max<size_t>(1, blob.elements());
    const uintptr_t misaligned = reinterpret_cast<uintptr_t>(cursor) % ram_element;
    if (misaligned != 0 && ram_element > 1 &&
        cursor + (ram_element - misaligned) + ram_element * count <= in_ram + block_bytes)
      cursor += ram_element - misaligned;
    if (blob.dtype == DType::f16) {
      const auto* halves = reinterpret_cast<const _Float16*>(source);
      float* widened = reinterpret_cast<float*>(cursor);
      for (size_t k = 0; k < count; ++k) widened[k] = static_cast<float>(halves[k]);
    } else {
      std::memcpy(cursor, source, count * element_bytes);
    }
    weights[blob_name] = cursor;
    cursor += ram_element * count;
  }
  return weights;
}

int64_t nvm_tile_key(int64_t layer, int64_t slot) {
  if (slot < 0 || slot > 1022)
    throw Error("internal: input slot " + std::to_string(slot) + " has no NVM key");
  return nvm_output_key(layer) + 1 + slot;
}

std::vector<std::pair<int64_t, uint64_t>> nvm_keys(const Model& model, const NodeProgram& program) {
  std::vector<std::pair<int64_t, uint64_t>> keys;
  for (size_t i = 1; i < model.layers.size(); ++i) {
    const LayerStep& step = program.layers[i];
    if (!step.out.empty()) keys.emplace_back(nvm_output_key(i), step.out.bytes(step.element_bytes));
    for (size_t slot = 0; slot < step.inputs.size(); ++slot) {
      const InputSlot& input = step.inputs[slot];
      if (!input.direct && !input.needed.empty())
        keys.emplace_back(nvm_tile_key(i, slot), input.needed.bytes(input.element_bytes));
    }
  }
  return keys;
}

namespace {

// A job that fails this many times in a row cannot finish under the power
// given: the run ends rather than spin.
constexpr int kMostFailuresInARow = 10000;

}  // namespace

void Executor::run_powered(Arena& arena, Exchange& exchange,
                           const std::function<void(int, Tensor&)>& on_layer,
                           const std::function<void(const Tensor&)>& on_output) const {
  ScheduledArena memory(arena, model_, program_, node_label_);
  std::vector<Tensor> outputs(model_.layers.size());
  uint64_t reboots = 0;
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    const Layer& layer = model_.layers[i];
    const LayerStep& step = program_.layers[i];
    if (step.stream >= 0)
      throw Error("internal: " + node_label_ + " streams layer '" + layer.name +
                  "' under intermittent power");
    memory.advance(MemoryEvent::Kind::compute, static_cast<int>(i));
    forget_released(memory, program_, outputs);
    std::vector<Tensor> inputs(step.inputs.size());
    std::vector<Region> needed(step.inputs.size());
    std::vector<Tensor> sources(step.inputs.size());  // read in place: the stored layer
    for (size_t slot = 0; slot < step.inputs.size(); ++slot) {
      inputs[slot] = input(static_cast<int>(i), static_cast<int>(slot), memory, exchange, outputs);
      needed[slot] = step.inputs[slot].needed;
      if (step.inputs[slot].direct) sources[slot] = outputs[layer.inputs[slot]];
    }
    exchange.finish();
    // What the node received (its tiles) goes to NVM before it computes.
    const auto tile_key = [&](size_t slot) { return nvm_tile_key(i, slot); };
    for (size_t slot = 0; slot < step.inputs.size(); ++slot)
      if (!step.inputs[slot].direct && inputs[slot].data)
        power_->keep(tile_key(slot), {0, inputs[slot].data, inputs[slot].bytes()});
    if (!step.out.empty()) {
      Tensor& out = outputs[i];
      out.shape = step.out.shape(layer.output_shape);
      out.dtype = layer.dtype;
      out.data = memory.at(step.out_buffer) + step.out_offset;
      uint64_t weight_bytes = 0;  // the layer's, from flash (each band streams its own)
      weights(static_cast<int>(i), step.out, memory.at(step.weights_block), &weight_bytes);
      void* scratch = memory.at(step.scratch_block);
      const int64_t key = nvm_output_key(i);
      // Jobs: tiles of the output, a band of channels (neurons) by a band of
      // rows, as large as the power supply asks (its configuration); a band
      // of channels with every row is one contiguous run of the output, a
      // band of fewer rows one run per channel.
      const int64_t channels = out.shape.c, rows = out.shape.h;
      const size_t element_bytes = dtype_bytes(out.dtype);
      const uint64_t row_bytes = static_cast<uint64_t>(out.shape.w) * element_bytes;
      const uint64_t channel_bytes = static_cast<uint64_t>(rows) * row_bytes;
      // What a job computing `part` reads from NVM: the part of each input
      // it reads (a dense convolution's every input channel, its rows' halo).
      const auto input_bytes = [&](const Region& part) {
        uint64_t bytes = 0;
        for (size_t slot = 0; slot < inputs.size(); ++slot) {
          if (!inputs[slot].data) continue;
          const Layer& source = model_.layers[layer.inputs[slot]];
          bytes += op_traits(layer.op)
                       .reads(model_, layer, static_cast<int>(slot), part)
                       .intersect(Region::whole(source.output_shape))
                       .intersect(needed[slot])
                       .bytes(dtype_bytes(inputs[slot].dtype));
        }
        return bytes;
      };
      // The tile at channel `first` and row `top` of the node's region.
      const auto tile_part = [&](const PowerSupply::Tile& tile, int64_t first, int64_t top) {
        Region part = step.out;
        part.c0 = step.out.c0 + first;
        part.c1 = std::min(step.out.c1, part.c0 + tile.channels);
        part.y0 = step.out.y0 + top;
        part.y1 = std::min(step.out.y1, part.y0 + tile.rows);
        return part;
      };
      PowerSupply::LayerShape shape;
      shape.layer = static_cast<int>(i);
      shape.channels = channels;
      shape.rows = rows;
      shape.input_bytes = [&](const PowerSupply::Tile& tile) {  // a tile amid the rows
        return input_bytes(tile_part(tile, 0, std::max<int64_t>(rows - tile.rows, 0) / 2));
      };
      shape.weight_bytes = weight_bytes;
      shape.macs = op_traits(layer.op).macs(model_, layer, step.out);
      shape.output_bytes = out.bytes();
      // The inputs of a piece `part` of a job: each slot's tensor as is when
      // the piece reads all of it (or every channel of it: a dense
      // convolution or linear layer, whose kernel reads its window wherever
      // it lies), else a view of what it reads when that is one contiguous
      // run (whole planes of channels, or rows of one channel); false when
      // neither fits (the layer is then one job).
      std::vector<Tensor> band_inputs(inputs.size());
      std::vector<Region> band_needed(inputs.size());
      const bool reads_every_channel =
          layer.op == Op::linear || (layer.op == Op::conv2d && layer.conv.groups == 1);
      const auto view_band = [&](const Region& part) {
        for (size_t slot = 0; slot < inputs.size(); ++slot) {
          const Region& held = needed[slot];
          band_inputs[slot] = inputs[slot];
          band_needed[slot] = held;
          if (!inputs[slot].data) continue;
          const Layer& source = model_.layers[layer.inputs[slot]];
          const Region reads = op_traits(layer.op)
                                   .reads(model_, layer, static_cast<int>(slot), part)
                                   .intersect(Region::whole(source.output_shape))
                                   .intersect(held);
          if (reads == held) continue;
          if (reads.c0 == held.c0 && reads.c1 == held.c1 && reads_every_channel) continue;
          if (reads.empty() || !reads.one_run_in(held)) return false;
          band_inputs[slot].data = static_cast<char*>(inputs[slot].data) +
                                   static_cast<uint64_t>(reads.offset_in(held)) *
                                       dtype_bytes(inputs[slot].dtype);
          band_inputs[slot].shape = reads.shape(inputs[slot].shape);
          band_needed[slot] = reads;
        }
        return true;
      };
      const PowerSupply::Tile whole{std::max<int64_t>(channels, 1), std::max<int64_t>(rows, 1)};
      PowerSupply::Tile tile = static_cast<int>(i) == resume_layer_ ? resume_tile_ : power_->job_tile(shape);
      tile.channels = std::clamp<int64_t>(tile.channels, 1, whole.channels);
      tile.rows = std::clamp<int64_t>(tile.rows, 1, whole.rows);
      {  // the first job's first piece (a job's pieces are alike)
        Region piece = tile_part(tile, 0, 0);
        if (tile.rows < whole.rows) piece.c1 = piece.c0 + 1;
        if (!view_band(piece)) tile = whole;
      }
      const int64_t row_bands = (whole.rows + tile.rows - 1) / tile.rows;
      const int64_t jobs = (whole.channels + tile.channels - 1) / tile.channels * row_bands;
      const auto job_part = [&](int64_t job) {
        return tile_part(tile, job / row_bands * tile.channels, job % row_bands * tile.rows);
      };
      // Where a job's output lies in the node's output: one run per channel
      // (one for the band when it has every row).
      const auto job_chunks = [&](int64_t job) {
        const Region part = job_part(job);
        const uint64_t first = static_cast<uint64_t>(part.c0 - step.out.c0) * channel_bytes +
                               static_cast<uint64_t>(part.y0 - step.out.y0) * row_bytes;
        const uint64_t run = static_cast<uint64_t>(part.y1 - part.y0) * row_bytes;
        std::vector<PowerSupply::Chunk> chunks;
        if (part.y1 - part.y0 == rows) {
          chunks.push_back({first, static_cast<char*>(out.data) + first,
                            static_cast<uint64_t>(part.c1 - part.c0) * channel_bytes});
          return chunks;
        }
        for (int64_t c = 0; c < part.c1 - part.c0; ++c) {
          const uint64_t at = first + static_cast<uint64_t>(c) * channel_bytes;
          chunks.push_back({at, static_cast<char*>(out.data) + at, run});
        }
        return chunks;
      };
      // The jobs committed so far read back from NVM: whole bands of
      // channels in one read, the jobs of a band begun one by one.
      const auto restore_jobs = [&](int64_t done) {
        const int64_t bands = done / row_bands;
        const uint64_t whole_bands =
            static_cast<uint64_t>(std::min(bands * tile.channels, whole.channels)) * channel_bytes;
        if (whole_bands > 0) power_->restore(key, 0, out.data, whole_bands);
        for (int64_t job = bands * row_bands; job < done; ++job)
          for (const PowerSupply::Chunk& chunk : job_chunks(job))
            power_->restore(key, chunk.offset, const_cast<void*>(chunk.data), chunk.bytes);
      };
      const auto tile_text = [&](int64_t job) {
        const Region part = job_part(job);
        return "channels " + std::to_string(part.c0 - step.out.c0) + "-" +
               std::to_string(part.c1 - step.out.c0) + ", rows " +
               std::to_string(part.y0 - step.out.y0) + "-" + std::to_string(part.y1 - step.out.y0);
      };
      int64_t done = 0;
      // Resumed (run --resume): what NVM holds is read back, not computed.
      if (static_cast<int>(i) < resume_layer_) done = jobs;
      if (static_cast<int>(i) == resume_layer_) done = std::min(resume_jobs_, jobs);
      restore_jobs(done);
      int failures_in_a_row = 0;
      while (done < jobs) {
        const Region part = job_part(done);
        const bool every_row = part.y1 - part.y0 == rows;
        // A band of every row in one call, else a channel at a time; each
        // call streams its channels' weights from flash.
        uint64_t streamed = 0;
        for (int64_t c = part.c0; c < part.c1; c = every_row ? part.c1 : c + 1) {
          Region piece = part;
          if (!every_row) piece.c0 = c, piece.c1 = c + 1;
          if (!view_band(piece))
            throw Error("internal: " + node_label_ + " cannot cut layer '" + layer.name +
                        "' into jobs of " + std::to_string(tile.channels) + " channels by " +
                        std::to_string(tile.rows) + " rows");
          Tensor piece_out = out;
          piece_out.shape.c = piece.c1 - piece.c0;
          piece_out.shape.h = piece.y1 - piece.y0;
          piece_out.data = static_cast<char*>(out.data) +
                           static_cast<uint64_t>(piece.c0 - step.out.c0) * channel_bytes +
                           static_cast<uint64_t>(piece.y0 - step.out.y0) * row_bytes;
          const std::map<std::string, const void*> piece_weights =
              weights(static_cast<int>(i), piece, memory.at(step.weights_block), &streamed,
                      step.weight_bytes);
          const double start = trace_ ? trace_->now_us() : 0;
          compute(static_cast<int>(i), band_inputs, band_needed, piece, piece_out, piece_weights,
                  scratch);
          if (trace_) trace_->add(layer.name, std::string("compute ") + op_name(layer.op) + " (job)", start);
        }
        PowerSupply::Job job;
        job.layer = static_cast<int>(i);
        job.macs = op_traits(layer.op).macs(model_, layer, part);
        job.input_bytes = input_bytes(part);
        job.weight_bytes = streamed;
        job.key = key;
        job.chunks = job_chunks(done);
        job.progress = "layer " + std::to_string(i) + " tile " + std::to_string(tile.channels) +
                       "x" + std::to_string(tile.rows) + " jobs " + std::to_string(done + 1);
        if (power_->job(job)) {
          ++done;
          failures_in_a_row = 0;
          continue;
        }
        if (++failures_in_a_row == kMostFailuresInARow)
          throw Error(node_label_ + " cannot finish a job of layer '" + layer.name + "' (" +
                      tile_text(done) + ") under this power: " +
                      std::to_string(kMostFailuresInARow) +
                      " failures in a row (the mean time between failures is shorter than the "
                      "job; use a longer --power mean)");
        // The power failed: RAM is garbage; read back what NVM holds:
        // earlier layers' outputs still live, in layer order (an op computed
        // in place over its input comes after it), what this layer reads in
        // place, its committed rows, the tiles it received; and the weights
        // again from flash.
        const double off = trace_ ? trace_->now_us() : 0;
        arena.scramble(++reboots);
        for (size_t j = 1; j < i; ++j)
          if (outputs[j].data && !program_.layers[j].out.empty())
            power_->restore(nvm_output_key(j), 0, outputs[j].data, outputs[j].bytes());
        for (size_t slot = 0; slot < step.inputs.size(); ++slot)
          if (sources[slot].data && layer.inputs[slot] > 0)  // (an op in place over its input has it forgotten)
            power_->restore(nvm_output_key(layer.inputs[slot]), 0, sources[slot].data,
                            sources[slot].bytes());
        restore_jobs(done);
        for (size_t slot = 0; slot < step.inputs.size(); ++slot)
          if (!step.inputs[slot].direct && inputs[slot].data)
            power_->restore(tile_key(slot), 0, inputs[slot].data, inputs[slot].bytes());
        if (trace_)  // the power-off span as the host lives it: RAM lost, read back
          trace_->add(layer.name, "power off: RAM lost, read back from NVM", off);
      }
    }
    if (step.to_coordinator) exchange.to_coordinator(static_cast<int>(i), outputs[i]);
    if (on_layer && !step.out.empty() && outputs[i].data) on_layer(static_cast<int>(i), outputs[i]);
  }
  resume_layer_ = -1;
  for (int result : result_layers(model_, program_))
    if (!program_.layers[result].out.empty()) on_output(outputs[result]);
  memory.finish();
}

void Executor::run(Arena& arena, Exchange& exchange,
                   const std::function<void(int, Tensor&)>& on_layer,
                   const std::function<void(const Tensor&)>& on_output) const {
  if (power_) return run_powered(arena, exchange, on_layer, on_output);
  // Every allocation and release follows the program's schedule, which the
  // memory prediction replays (schedule_memory() in node_program.cpp).
  ScheduledArena memory(arena, model_, program_, node_label_);
  std::vector<Tensor> outputs(model_.layers.size());  // this node's region of each layer
  // With on_layer, a stream's earlier layers are assembled here from their
  // parts (outside the arena: a debugging aid, like the dumps it feeds).
  std::vector<std::vector<char>> assembled(model_.layers.size());
  std::vector<bool> fused(model_.layers.size(), false);  // computed by the layer before
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    const Layer& layer = model_.layers[i];
    const LayerStep& step = program_.layers[i];
    if (step.stream >= 0) {
      const Stream& stream = program_.streams[step.stream];
      if (static_cast<int>(i) == stream.first)
        run_stream(stream, memory, exchange, outputs, on_layer ? &assembled : nullptr);
    } else {
      memory.advance(MemoryEvent::Kind::compute, static_cast<int>(i));
      forget_released(memory, program_, outputs);
      // Inputs: read in place, or a tile of own data plus received pieces.
      std::vector<Tensor> inputs(step.inputs.size());
      std::vector<Region> needed(step.inputs.size());
      for (size_t slot = 0; slot < step.inputs.size(); ++slot) {
        inputs[slot] =
            input(static_cast<int>(i), static_cast<int>(slot), memory, exchange, outputs);
        needed[slot] = step.inputs[slot].needed;
      }
      if (!step.out.empty()) {
        Tensor& out = outputs[i];
        out.shape = step.out.shape(layer.output_shape);
        out.dtype = layer.dtype;
        out.data = memory.at(step.out_buffer) + step.out_offset;
        const std::map<std::string, const void*> blobs =
            weights(static_cast<int>(i), step.out, memory.at(step.weights_block));
        void* scratch = memory.at(step.scratch_block);
        // The rows that need no received piece first, while the pieces travel.
        const auto [first, last] = rows_without_halo(static_cast<int>(i), outputs);
        const Epilogue epilogue = fused_activation(static_cast<int>(i));
        if (epilogue != Epilogue::none) fused[i + 1] = true;
        // The whole layer, when it needs nothing received.
        const bool whole_first = first == 0 && last == out.shape.h && first < last;
        const double start = trace_ ? trace_->now_us() : 0;
        if (!fused[i] && first < last) {
          compute(static_cast<int>(i), inputs, needed, step.out, out, blobs, scratch, first, last,
                  epilogue);
          if (trace_)
            trace_->add(
                layer.name,
                std::string("compute ") + op_name(layer.op) + (whole_first ? "" : " (no halo)"),
                start);
        }
        exchange.finish();
        const double rest = trace_ ? trace_->now_us() : 0;
        if (fused[i]) {
          // Its values were stored by the layer before, in place.
          if (trace_)
            trace_->add(layer.name, std::string("compute ") + op_name(layer.op) + " (fused)", rest);
        } else if (!whole_first) {
          if (first < last) {  // the rows near the edges
            compute(static_cast<int>(i), inputs, needed, step.out, out, blobs, scratch, 0, first,
                    epilogue);
            compute(static_cast<int>(i), inputs, needed, step.out, out, blobs, scratch, last,
                    out.shape.h, epilogue);
          } else {
            compute(static_cast<int>(i), inputs, needed, step.out, out, blobs, scratch, 0, -1,
                    epilogue);
          }
          if (trace_) trace_->add(layer.name, std::string("compute ") + op_name(layer.op), rest);
        }
      } else {
        exchange.finish();
      }
      if (step.to_coordinator) exchange.to_coordinator(static_cast<int>(i), outputs[i]);
    }
    if (on_layer && !step.out.empty() && outputs[i].data) on_layer(static_cast<int>(i), outputs[i]);
  }
  for (int layer : result_layers(model_, program_))
    if (!program_.layers[layer].out.empty()) on_output(outputs[layer]);
  memory.finish();
}

void Executor::run_stream(const Stream& stream, ScheduledArena& memory, Exchange& exchange,
                          std::vector<Tensor>& outputs,
                          std::vector<std::vector<char>>* assembled) const {
  const int length = stream.last - stream.first + 1;
  // The inputs from outside the run, whole, received before the first part
  // (the exchanges in the same order as unstreamed layers make them), the
  // weights kept for the whole run and the last layer's buffer.
  memory.advance(MemoryEvent::Kind::begin_stream, stream.first);
  forget_released(memory, program_, outputs);
  std::vector<std::vector<Tensor>> outside_inputs(length);
  for (int j = stream.first; j <= stream.last; ++j) {
    const Layer& layer = model_.layers[j];
    outside_inputs[j - stream.first].resize(layer.inputs.size());
    for (size_t slot = 0; slot < layer.inputs.size(); ++slot)
      if (layer.inputs[slot] < stream.first && !program_.layers[j].inputs[slot].per_part)
        outside_inputs[j - stream.first][slot] =
            input(j, static_cast<int>(slot), memory, exchange, outputs);
  }
  exchange.finish();
  std::vector<std::map<std::string, const void*>> kept(length);
  if (stream.keep_weights)
    for (int j = stream.first; j <= stream.last; ++j)
      kept[j - stream.first] =
          weights(j, program_.layers[j].out, memory.at(program_.layers[j].weights_block));
  const Layer& last_layer = model_.layers[stream.last];
  const LayerStep& last = program_.layers[stream.last];
  if (!last.out.empty()) {
    Tensor& out = outputs[stream.last];
    out.shape = last.out.shape(last_layer.output_shape);
    out.dtype = last_layer.dtype;
    out.data = memory.at(last.out_buffer) + last.out_offset;
  }
  if (assembled)
    for (int j = stream.first; j < stream.last; ++j) {
      const LayerStep& step = program_.layers[j];
      (*assembled)[j].assign(step.out.bytes(step.element_bytes), 0);
      outputs[j].shape = step.out.shape(model_.layers[j].output_shape);
      outputs[j].dtype = model_.layers[j].dtype;
      outputs[j].data = (*assembled)[j].data();
    }
  for (size_t p = 0; p < stream.parts.size(); ++p) {
    std::vector<Tensor> parts(length);  // each layer's part
    for (int j = stream.first; j <= stream.last; ++j) {
      const Layer& layer = model_.layers[j];
      const LayerStep& step = program_.layers[j];
      const PartStep& part = stream.parts[p][j - stream.first];
      if (part.out.empty()) continue;
      memory.advance(MemoryEvent::Kind::compute, j, static_cast<int>(p));
      std::vector<Tensor> inputs(layer.inputs.size());
      for (size_t slot = 0; slot < layer.inputs.size(); ++slot) {
        const Region& needed = part.needed[slot];
        if (needed.empty()) continue;
        const int source = layer.inputs[slot];
        const size_t element_bytes = step.inputs[slot].element_bytes;
        if (step.inputs[slot].per_part) {  // this part's share, from the coordinator
          Tensor& tile = inputs[slot];
          tile.shape = needed.shape(model_.layers[source].output_shape);
          tile.dtype = model_.layers[source].dtype;
          tile.data = memory.at(part.tile_blocks[slot]);
          InputSlot share;
          share.needed = needed;
          share.receives.push_back({0, needed});
          share.element_bytes = element_bytes;
          exchange.exchange(j, static_cast<int>(slot), share, nullptr, Region{}, tile.data);
          exchange.finish();
          continue;
        }
        const Tensor& held = source >= stream.first ? parts[source - stream.first]
                                                    : outside_inputs[j - stream.first][slot];
        const Region& held_at = held_region(program_, stream, p, j, static_cast<int>(slot), source);
        if (part.tile_blocks[slot] < 0) {  // the schedule has it read as held
          inputs[slot] = held;
          continue;
        }
        Tensor& tile = inputs[slot];
        tile.shape = needed.shape(model_.layers[source].output_shape);
        tile.dtype = model_.layers[source].dtype;
        tile.data = memory.at(part.tile_blocks[slot]);
        copy_region(held.data, held_at, tile.data, needed, needed, element_bytes);
      }
      const int64_t offset =
          j == stream.last ? part_offset(part.out, step.out, step.element_bytes) : -1;
      Tensor& out = parts[j - stream.first];
      out.shape = part.out.shape(layer.output_shape);
      out.dtype = layer.dtype;
      out.data = part.out_block < 0 ? static_cast<char*>(outputs[stream.last].data) + offset
                                    : memory.at(part.out_block);
      const std::map<std::string, const void*> blobs =
          stream.keep_weights ? kept[j - stream.first]
                              : weights(j, part.out, memory.at(part.weights_block));
      const double start = trace_ ? trace_->now_us() : 0;
      compute(j, inputs, part.needed, part.out, out, blobs, memory.at(part.scratch_block));
      if (trace_) trace_->add(layer.name, std::string("compute part ") + op_name(layer.op), start);
      if (j == stream.last && part.out_block >= 0)
        copy_region(out.data, part.out, outputs[stream.last].data, step.out, part.out,
                    step.element_bytes);
      else if (j < stream.last && assembled)
        copy_region(out.data, part.out, outputs[j].data, step.out, part.out, step.element_bytes);
    }
  }
}

Epilogue Executor::fused_activation(int layer_index) const {
  // A float32 convolution whose only reader is the next layer, a relu or
  // relu6 computed in place over the same region with nothing moving: the
  // convolution stores the activated values and the activation is skipped.
  if (!fuse_activations_ || kernels_ != Kernels::fast) return Epilogue::none;
  const size_t i = static_cast<size_t>(layer_index);
  if (i + 1 >= model_.layers.size() || static_cast<int>(i) == model_.output) return Epilogue::none;
  const Layer& layer = model_.layers[i];
  const Layer& next = model_.layers[i + 1];
  const LayerStep& step = program_.layers[i];
  const LayerStep& next_step = program_.layers[i + 1];
  if (layer.op != Op::conv2d || layer.quantized() || step.stream >= 0 || step.to_coordinator ||
      op_traits(next.op).epilogue == Epilogue::none ||
      next.inputs != std::vector<int>{layer_index} || next_step.stream >= 0 ||
      next_step.to_coordinator || next_step.allocates_out || !(next_step.out == step.out) ||
      next_step.out_buffer != step.out_buffer || next_step.out_offset != step.out_offset)
    return Epilogue::none;
  const InputSlot& input = next_step.inputs[0];
  if (!input.direct || input.exchange || !input.receives.empty() || !input.sends.empty())
    return Epilogue::none;
  for (size_t j = i + 2; j < model_.layers.size(); ++j)
    for (int source : model_.layers[j].inputs)
      if (source == layer_index) return Epilogue::none;
  return op_traits(next.op).epilogue;  // the activation as the convolution stores
}

std::pair<int64_t, int64_t> Executor::rows_without_halo(int layer_index,
                                                        const std::vector<Tensor>& outputs) const {
  // A float32 convolution with one input, received into a tile, whose own
  // part of the tile spans all the tile's channels and columns: then the
  // output rows whose window rows lie in the own part need no piece. (The
  // convolution never writes over its input, so it may run while the input
  // is being sent.)
  const Layer& layer = model_.layers[layer_index];
  const LayerStep& step = program_.layers[layer_index];
  if (step.out.empty()) return {0, 0};
  // Nothing to receive (pieces to send, say): the whole layer (any op),
  // while they go out, unless it is written over an input being sent.
  // Waiting first would wait for the neighbours to reach the exchange.
  const auto receives = [](const InputSlot& input) { return !input.receives.empty(); };
  if (std::none_of(step.inputs.begin(), step.inputs.end(), receives)) {
    for (size_t slot = 0; slot < step.inputs.size(); ++slot)
      if (!step.inputs[slot].sends.empty() &&
          program_.layers[layer.inputs[slot]].out_buffer == step.out_buffer)
        return {0, 0};
    return {0, step.out.y1 - step.out.y0};
  }
  if (layer.op != Op::conv2d || layer.quantized() || kernels_ != Kernels::fast ||
      step.inputs.size() != 1)
    return {0, 0};
  const InputSlot& input = step.inputs[0];
  if (input.direct) return {0, 0};
  if (std::none_of(input.receives.begin(), input.receives.end(),
                   [](const Transfer& piece) { return piece.peer != 0; }))
    return {0, 0};
  const int source = layer.inputs[0];
  const Region own =
      outputs[source].data ? program_.layers[source].out.intersect(input.needed) : Region{};
  if (own.empty() || own.c0 != input.needed.c0 || own.c1 != input.needed.c1 ||
      own.x0 != input.needed.x0 || own.x1 != input.needed.x1)
    return {0, 0};
  const Conv2dParams& p = layer.conv;
  const int64_t full_h = model_.layers[source].output_shape.h;
  const auto inside_own = [&](int64_t row) {  // output row, in the whole map
    const int64_t top = std::max<int64_t>(row * p.stride_h - p.pad_h, 0);
    const int64_t bottom =
        std::min<int64_t>(row * p.stride_h - p.pad_h + (p.kernel_h - 1) * p.dilation_h, full_h - 1);
    return top > bottom || (own.y0 <= top && bottom < own.y1);
  };
  int64_t first = step.out.y0, last = step.out.y1;
  while (first < last && !inside_own(first)) ++first;
  last = first;
  while (last < step.out.y1 && inside_own(last)) ++last;
  // Each part computed apart reads all the layer's weights again: not worth
  // it when they outgrow the L2 cache and the rows near the edges are few
  // positions (a deep layer on a small map), which would cost more than the
  // wait it hides.
  uint64_t weight_bytes = 0;
  for (const auto& [blob_name, blob] : layer.weights) weight_bytes += blob.bytes();
  const int64_t edge_positions =
      ((step.out.y1 - step.out.y0) - (last - first)) * (step.out.x1 - step.out.x0);
  if (weight_bytes > kWeightsCheapToReread && edge_positions < kEdgePositionsWorthAPass)
    return {0, 0};
  return {first - step.out.y0, last - step.out.y0};
}

void Executor::compute(int layer_index, const std::vector<Tensor>& inputs,
                       const std::vector<Region>& needed_regions, const Region& out_region,
                       Tensor& out, const std::map<std::string, const void*>& weights,
                       void* scratch, int64_t row_begin, int64_t row_end, Epilogue epilogue) const {
  const Layer& layer = model_.layers[layer_index];
  const Kernel kernel = layer_kernel(model_, layer);
  if (!kernel)  // validation refuses such a layer; the input layer is the coordinator's
    throw Error("internal: no kernel computes " + std::string(op_name(layer.op)) + " layer '" +
                layer.name + "' in its dtypes");
  const auto start = std::chrono::steady_clock::now();
  kernel({.model = model_,
          .layer = layer,
          .inputs = inputs,
          .needed = needed_regions,
          .out_region = out_region,
          .out = out,
          .weights = weights,
          .scratch = scratch,
          .row_begin = row_begin,
          .row_end = row_end,
          .epilogue = epilogue,
          .reference = kernels_ == Kernels::reference,
          .requantization = requantization_,
          .out_allocated = program_.layers[layer_index].allocates_out});
  auto end = std::chrono::steady_clock::now();
  if (slowdown_ > 1) {
    // The extra time is owed and slept once it reaches 0.2 ms: a sleep
    // overshoots by tens of microseconds, which on many short kernels would
    // add up to more than the factor asks; what was overslept is credited.
    owed_seconds_ += (slowdown_ - 1) * std::chrono::duration<double>(end - start).count();
    if (owed_seconds_ >= 2e-4) {
      std::this_thread::sleep_for(std::chrono::duration<double>(owed_seconds_));
      const auto woke = std::chrono::steady_clock::now();
      owed_seconds_ -= std::chrono::duration<double>(woke - end).count();
      end = woke;
    }
  }
  busy_seconds_ += std::chrono::duration<double>(end - start).count();
}

}  // namespace splitinfer
