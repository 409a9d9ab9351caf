// ProgressBar: the line it draws, one line per tenth when not on a terminal,
// in-place redraws with "\r" on one.
#include "../../src/cli/progress.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace splitinfer {
namespace {

// What was written to a temporary file.
std::string contents(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  for (int c; (c = std::fgetc(file)) != EOF;) text += static_cast<char>(c);
  std::fseek(file, 0, SEEK_END);  // later writes append
  return text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

TEST(ProgressBar, LineShowsBarCountPercentRateAndNote) {
  File file(std::tmpfile(), std::fclose);
  const ProgressBar bar(10000, "eval", "img", file.get(), ProgressBar::Mode::lines);
  // 512 of 10000 after 2 s: 5.12% (floor 5), 256.0 img/s, 1 of 20 bar cells.
  EXPECT_EQ(bar.line(512, 2.0, "acc 90.1%"),
            "eval [#...................] 512/10000 5% 256.0 img/s acc 90.1%");
  EXPECT_EQ(bar.line(10000, 4.0, ""), "eval [####################] 10000/10000 100% 2500.0 img/s");
  EXPECT_EQ(bar.line(0, 0.0, ""), "eval [....................] 0/10000 0% - img/s");
}

TEST(ProgressBar, WithoutATerminalWritesOneLinePerTenth) {
  File file(std::tmpfile(), std::fclose);
  {
    ProgressBar bar(200, "eval", "img", file.get(), ProgressBar::Mode::lines);
    for (int done = 1; done <= 200; ++done) bar.update(done, "acc " + std::to_string(done));
    bar.finish();
  }
  const std::string text = contents(file.get());
  EXPECT_EQ(text.find('\r'), std::string::npos);
  const std::vector<std::string> lines = lines_of(text);
  ASSERT_EQ(lines.size(), 10u) << text;
  for (int tenth = 1; tenth <= 10; ++tenth) {
    const std::string& line = lines[tenth - 1];
    const std::string count =
        std::to_string(20 * tenth) + "/200 " + std::to_string(10 * tenth) + "%";
    EXPECT_NE(line.find(std::string(2 * tenth, '#')), std::string::npos) << line;
    EXPECT_NE(line.find(count), std::string::npos) << line;
    EXPECT_NE(line.find("acc " + std::to_string(20 * tenth)), std::string::npos) << line;
  }
}

TEST(ProgressBar, FinishWritesTheLastStateWhenStoppedBetweenTenths) {
  File file(std::tmpfile(), std::fclose);
  {
    ProgressBar bar(100, "eval", "img", file.get(), ProgressBar::Mode::lines);
    for (int done = 1; done <= 55; ++done) bar.update(done);
    bar.finish("stopped");
  }
  const std::vector<std::string> lines = lines_of(contents(file.get()));
  ASSERT_EQ(lines.size(), 6u);  // 10% .. 50%, then the finish line
  EXPECT_NE(lines[4].find("50/100 50%"), std::string::npos) << lines[4];
  EXPECT_NE(lines[5].find("55/100 55%"), std::string::npos) << lines[5];
  EXPECT_NE(lines[5].find("stopped"), std::string::npos) << lines[5];
}

TEST(ProgressBar, OnATerminalRedrawsOneLine) {
  File file(std::tmpfile(), std::fclose);
  ProgressBar bar(3, "eval", "img", file.get(), ProgressBar::Mode::redraw);
  bar.update(1, "first");  // the first update and the last always draw
  bar.update(3, "last");
  EXPECT_EQ(contents(file.get()).find('\n'), std::string::npos);
  bar.finish();
  const std::string text = contents(file.get());
  EXPECT_EQ(text.rfind('\r', 0), 0u) << text;
  EXPECT_NE(text.find("1/3 33%"), std::string::npos) << text;
  EXPECT_NE(text.find("3/3 100%"), std::string::npos) << text;
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('\n'), text.size() - 1) << text;  // one line, ended once
}

TEST(ProgressBar, DestructorEndsAnUnfinishedLine) {
  File file(std::tmpfile(), std::fclose);
  {
    ProgressBar bar(10, "eval", "img", file.get(), ProgressBar::Mode::redraw);
    bar.update(4);
  }  // as when an exception leaves the loop
  const std::string text = contents(file.get());
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace splitinfer
