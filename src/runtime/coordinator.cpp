#include "coordinator.hpp"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "../error.hpp"

namespace splitinfer {

const unsigned char* input_map(const Model& model, const std::vector<float>& input, Bytes& pixels) {
  const Layer& layer = model.layers[0];
  if (layer.dtype != DType::u8) return reinterpret_cast<const unsigned char*>(input.data());
  // Each float back to its pixel, and checked to come from it exactly.
  pixels.resize(input.size());
  const int64_t plane = layer.output_shape.h * layer.output_shape.w;
  const ModelMeta& meta = model.meta;
  for (size_t i = 0; i < input.size(); ++i) {
    const int64_t channel = static_cast<int64_t>(i) / plane;
    const double value =
        std::nearbyint((input[i] * meta.std[channel] + meta.mean[channel]) / meta.pixel_scale);
    if (!(value >= 0 && value <= 255) || normalised_pixel(meta, channel, value) != input[i])
      throw Error(
          "the plan takes its input as 8-bit pixels (plan --input-pixels), and input "
          "element " +
          std::to_string(i) + " (channel " + std::to_string(channel) + ") is " +
          std::to_string(input[i]) +
          ", which no pixel gives under the model's normalisation: give an image of " +
          std::to_string(layer.output_shape.w) + "x" + std::to_string(layer.output_shape.h) +
          " pixels (not resized), or plan without --input-pixels");
    pixels[i] = static_cast<unsigned char>(value);
  }
  return pixels.data();
}

Coordinator::Coordinator(Transport& transport, const Model& model,
                         std::vector<NodeProgram> programs)
    : transport_(transport),
      model_(model),
      programs_(std::move(programs)),
      messages_(cluster_messages(model, programs_)),
      maps_(model.layers.size()) {}

void Coordinator::infer(const std::vector<float>& input, Bytes& output, std::vector<Bytes>* dumps,
                        const ExpectedEnd& output_expected) {
  const auto map_bytes = [&](int layer_index) {
    const Layer& layer = model_.layers[layer_index];
    return static_cast<size_t>(layer.output_shape.elements()) * dtype_bytes(layer.dtype);
  };
  const auto whole_region = [&](int layer_index) {
    return Region::whole(model_.layers[layer_index].output_shape);
  };
  // The whole maps the coordinator holds: the input, and relayed maps.
  std::vector<const unsigned char*> whole(model_.layers.size(), nullptr);
  whole[0] = input_map(model_, input, pixels_);
  if (dumps) {
    dumps->assign(model_.layers.size(), {});
    (*dumps)[0].resize(map_bytes(0));
    std::memcpy((*dumps)[0].data(), whole[0], map_bytes(0));
  }
  size_t pieces_sent = 0, next = 0;
  for (size_t i = 1; i < model_.layers.size(); ++i) {
    const int layer = static_cast<int>(i);
    for (; next < messages_.size() && messages_[next].kind != Message::Kind::output &&
           messages_[next].layer == layer;
         ++next) {
      const Message& message = messages_[next];
      if (message.kind == Message::Kind::input_piece) {
        // Sent from a contiguous copy: the node's MPI can then read it
        // itself (single copy, RDMA), while a strided piece moves in
        // fragments, each waiting for this rank to poll.
        const int source = model_.layers[i].inputs[message.slot];
        if (pieces_.size() == pieces_sent) pieces_.emplace_back();
        Bytes& packed = pieces_[pieces_sent++];
        packed.resize(message.bytes());
        copy_region(whole[source], whole_region(source), packed.data(), message.region,
                    message.region, message.element_bytes);
        transport_.post_send(message.to, Tag::input, packed.data(), message.region.elements(),
                             message.element_bytes);
      } else if (message.kind == Message::Kind::relay) {
        maps_[i].resize(map_bytes(layer));
        transport_.receive(message.from, Tag::relay, layer, maps_[i].data(), whole_region(layer),
                           message.region, message.element_bytes);
        whole[i] = maps_[i].data();
      }
    }
    if (dumps) {  // every node's region of the layer: a debugging aid, outside the messages
      (*dumps)[i].resize(map_bytes(layer));
      for (const NodeProgram& program : programs_) {
        const LayerStep& step = program.layers[i];
        if (!step.out.empty())
          transport_.receive(program.node, Tag::dump, layer, (*dumps)[i].data(),
                             whole_region(layer), step.out, step.element_bytes);
      }
    }
  }
  // Every piece the nodes need from here is taken before the long wait for
  // the output (where MPI cannot let the receiver read a piece itself, it
  // moves only while this rank polls), and every node has what it needs
  // before it sends its output: no deadlock.
  transport_.wait_sends();
  output.resize(map_bytes(model_.output));
  for (; next < messages_.size(); ++next) {
    const Message& message = messages_[next];
    transport_.receive(message.from, Tag::output, model_.output, output.data(),
                       whole_region(model_.output), message.region, message.element_bytes,
                       output_expected);
  }
}

TaskCoordinator::TaskCoordinator(Transport& transport, const Model& model, const TaskTable& table,
                                 bool steal)
    : transport_(transport),
      model_(model),
      programs_(task_programs(model, table)),
      scheduler_(table, task_dependencies(model, table, programs_), steal,
                 task_costs(model, programs_)),
      maps_(model.layers.size()) {}

void TaskCoordinator::start(int node, int task, const std::vector<const unsigned char*>& whole) {
  transport_.send_text(node, Tag::task, nlohmann::json{{"task", task}}.dump());
  for (const Message& message : node_messages(model_, programs_[task])) {
    if (message.kind != Message::Kind::input_piece) continue;
    const int source = model_.layers[message.layer].inputs[message.slot];
    if (pieces_.size() == pieces_sent_) pieces_.emplace_back();
    Bytes& packed = pieces_[pieces_sent_++];
    packed.resize(message.bytes());
    copy_region(whole[source], Region::whole(model_.layers[source].output_shape), packed.data(),
                message.region, message.region, message.element_bytes);
    transport_.post_send(node, Tag::input, packed.data(), message.region.elements(),
                         message.element_bytes);
  }
}

void TaskCoordinator::infer(const std::vector<float>& input, Bytes& output,
                            std::vector<Bytes>* dumps) {
  const int nodes = transport_.nodes();
  const auto map_bytes = [&](int layer_index) {
    const Layer& layer = model_.layers[layer_index];
    return static_cast<size_t>(layer.output_shape.elements()) * dtype_bytes(layer.dtype);
  };
  std::vector<const unsigned char*> whole(model_.layers.size(), nullptr);
  whole[0] = input_map(model_, input, pixels_);
  for (const NodeProgram& program : programs_)
    for (int layer : result_layers(model_, program)) {
      maps_[layer].resize(map_bytes(layer));
      whole[layer] = maps_[layer].data();
    }
  if (dumps) {
    dumps->assign(model_.layers.size(), {});
    for (size_t i = 0; i < model_.layers.size(); ++i) (*dumps)[i].resize(map_bytes(i));
    std::memcpy((*dumps)[0].data(), whole[0], map_bytes(0));
  }
  scheduler_.reset();
  pieces_sent_ = 0;
  const auto now = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - origin_).count();
  };
  std::vector<char> waiting(nodes + 1, 0);  // asked for work and got none yet
  int waiting_count = 0;
  // Until every task is done and every node asks for more (the last
  // requests of nodes that got nothing are taken too, so none is left for
  // the next inference).
  while (!scheduler_.all_done() || waiting_count < nodes) {
    const auto [node, text] = transport_.receive_text_from_any(Tag::request);
    const nlohmann::json request = nlohmann::json::parse(text, nullptr, false);
    if (node < 1 || node > nodes || !request.is_object() || !request.contains("done") ||
        !request["done"].is_number_integer() || waiting[node])
      throw Error("internal: an unexpected request for work from rank " + std::to_string(node));
    const int done = request["done"].get<int>();
    if (done >= 0) {
      const NodeProgram& program = programs_.at(done);
      for (int layer : result_layers(model_, program)) {
        // Received whole into a contiguous buffer (the sender's MPI can
        // then copy it at once, where a strided receive moves in fragments,
        // each waiting for this rank to poll), then copied into the map.
        const LayerStep& step = program.layers[layer];
        received_.resize(step.out.bytes(step.element_bytes));
        transport_.receive(node, Tag::output, layer, received_.data(), step.out, step.out,
                           step.element_bytes);
        copy_region(received_.data(), step.out, maps_[layer].data(),
                    Region::whole(model_.layers[layer].output_shape), step.out,
                    step.element_bytes);
      }
      if (dumps)
        for (size_t i = 1; i < model_.layers.size(); ++i) {
          const LayerStep& step = program.layers[i];
          if (!step.out.empty())
            transport_.receive(node, Tag::dump, static_cast<int>(i), (*dumps)[i].data(),
                               Region::whole(model_.layers[i].output_shape), step.out,
                               step.element_bytes);
        }
      const double seconds =
          request.contains("seconds") && request["seconds"].is_number() ? request["seconds"].get<double>() : -1;
      scheduler_.done(done, now(), seconds);
    }
    waiting[node] = 1, ++waiting_count;
    const auto assign = [&](bool may_wait) {
      for (int k = 1; k <= nodes; ++k) {
        if (!waiting[k]) continue;
        const int task = scheduler_.next(k, now(), may_wait);
        if (task < 0) continue;
        waiting[k] = 0, --waiting_count;
        start(k, task, whole);
        if (!may_wait) return;
      }
    };
    assign(true);
    // Every node waiting: no request would come to end the wait, so the
    // first that can take a task does.
    if (waiting_count == nodes && !scheduler_.all_done()) assign(false);
  }
  for (int k = 1; k <= nodes; ++k) transport_.send_text(k, Tag::task, "{\"task\":-1}");
  transport_.wait_sends();
  output = maps_[model_.output];
}

std::vector<float> real_values(const Layer& layer, const Bytes& map) {
  if (!layer.quantized()) {
    std::vector<float> values(map.size() / sizeof(float));
    std::memcpy(values.data(), map.data(), map.size());
    return values;
  }
  std::vector<float> values(map.size());
  for (size_t i = 0; i < map.size(); ++i)
    values[i] = static_cast<float>(map[i] - layer.quant.zero_point) * layer.quant.scale;
  return values;
}

}  // namespace splitinfer
