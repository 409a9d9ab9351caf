#include "progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace splitinfer {
namespace {

constexpr int kBarWidth = 20;  // characters between the brackets
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(int64_t total, std::string label, std::string unit, std::FILE* stream,
                         Mode mode)
    : total_(total),
      label_(std::move(label)),
      unit_(std::move(unit)),
      stream_(stream),
      redraw_(mode == Mode::redraw || (mode == Mode::automatic && isatty(fileno(stream)))),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  // An exception left the loop: end the line so the error starts on its own.
  if (line_open_) std::fputc('\n', stream_);
}

std::string ProgressBar::line(int64_t done, double seconds, const std::string& note) const {
  const double fraction =
      total_ > 0 ? std::clamp(static_cast<double>(done) / static_cast<double>(total_), 0.0, 1.0)
                 : 1.0;
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::string text = label_ + " [" + std::string(filled, '#') +
                     std::string(kBarWidth - filled, '.') + "] " + std::to_string(done) + "/" +
                     std::to_string(total_) + " " +
                     std::to_string(static_cast<int>(fraction * 100)) + "% ";
  if (done > 0 && seconds > 0) {
    char rate[32];
    std::snprintf(rate, sizeof rate, "%.1f", static_cast<double>(done) / seconds);
    text += rate;
  } else {
    text += "-";
  }
  text += " " + unit_ + "/s";
  if (!note.empty()) text += " " + note;
  return text;
}

void ProgressBar::draw() {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const std::string text = line(done_, seconds, note_);
  if (redraw_) {
    // "\x1b[K" erases what a longer previous line left to the right.
    std::fprintf(stream_, "\r%s\x1b[K", text.c_str());
    line_open_ = true;
  } else {
    std::fprintf(stream_, "%s\n", text.c_str());
  }
  std::fflush(stream_);
  last_draw_ = now;
  drawn_done_ = done_;
}

void ProgressBar::update(int64_t done, const std::string& note) {
  done_ = done;
  note_ = note;
  if (redraw_) {
    if (done_ >= total_ || std::chrono::steady_clock::now() - last_draw_ >= kRedrawInterval ||
        drawn_done_ < 0)
      draw();
    return;
  }
  const int tenths =
      total_ > 0 ? static_cast<int>(std::clamp<int64_t>(done_ * 10 / total_, 0, 10)) : 10;
  if (tenths > tenths_written_) {
    tenths_written_ = tenths;
    draw();
  }
}

void ProgressBar::finish(const std::string& note) {
  if (finished_) return;
  finished_ = true;
  if (!note.empty()) note_ = note;
  if (redraw_) {
    draw();
    std::fputc('\n', stream_);
    std::fflush(stream_);
    line_open_ = false;
  } else if (drawn_done_ != done_ || !note.empty()) {
    draw();
  }
}

}  // namespace splitinfer
