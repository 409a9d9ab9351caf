#pragma once
// A progress bar for long loops (evaluating a data set), on stderr:
//   eval [#####...............] 2500/10000 25% 812.3 img/s acc 90.1%
// On a terminal the line is redrawn in place (at most 10 times a second);
// elsewhere (CI logs, mpirun's forwarded stderr) one plain line is written
// per tenth of the total, so logs stay short.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace splitinfer {

class ProgressBar {
 public:
  enum class Mode { automatic, redraw, lines };  // automatic: redraw when the stream is a terminal

  ProgressBar(int64_t total, std::string label, std::string unit = "img",
              std::FILE* stream = stderr, Mode mode = Mode::automatic);
  ~ProgressBar();  // ends a redrawn line that finish() did not
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // `done` of the total are complete; `note` (e.g. "acc 90.1%") ends the line.
  void update(int64_t done, const std::string& note = "");
  // Shows the last state (with `note` when given) and ends the line.
  void finish(const std::string& note = "");

  // The line for `done` after `seconds`, without "\r" or "\n".
  std::string line(int64_t done, double seconds, const std::string& note) const;

 private:
  void draw();

  int64_t total_;
  std::string label_, unit_;
  std::FILE* stream_;
  bool redraw_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t done_ = 0;
  std::string note_;
  int64_t drawn_done_ = -1;  // `done` of the last line written; -1: none
  int tenths_written_ = 0;   // lines mode: tenths of the total already reported
  bool line_open_ = false;   // redraw mode: the cursor is on the bar's line
  bool finished_ = false;
};

}  // namespace splitinfer
