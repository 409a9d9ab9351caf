// parse_bytes and format_bytes: sizes as users write and read them.
#include "format.hpp"

#include <gtest/gtest.h>

#include <string>

#include "error.hpp"

namespace splitinfer {
namespace {

TEST(ParseBytes, PlainNumbersAreBytes) {
  EXPECT_EQ(parse_bytes("4096"), 4096u);
  EXPECT_EQ(parse_bytes("0"), 0u);
  EXPECT_EQ(parse_bytes("100B"), 100u);
  EXPECT_EQ(parse_bytes("100 b"), 100u);
}

TEST(ParseBytes, BinaryUnits) {
  EXPECT_EQ(parse_bytes("512KiB"), 524288u);  // 512 * 1024
  EXPECT_EQ(parse_bytes("8MiB"), 8388608u);   // 8 * 1024^2
  EXPECT_EQ(parse_bytes("1GiB"), 1073741824u);
  EXPECT_EQ(parse_bytes("1.5MiB"), 1572864u);
  EXPECT_EQ(parse_bytes("2Ki"), 2048u);
  EXPECT_EQ(parse_bytes("256 KiB"), 262144u);
}

TEST(ParseBytes, DecimalUnits) {
  EXPECT_EQ(parse_bytes("1.5MB"), 1500000u);
  EXPECT_EQ(parse_bytes("2kB"), 2000u);
  EXPECT_EQ(parse_bytes("2KB"), 2000u);
  EXPECT_EQ(parse_bytes("3GB"), 3000000000u);
  EXPECT_EQ(parse_bytes("2k"), 2000u);
}

TEST(ParseBytes, UnitsAreCaseInsensitive) {
  EXPECT_EQ(parse_bytes("512kib"), 524288u);
  EXPECT_EQ(parse_bytes("512KIB"), 524288u);
  EXPECT_EQ(parse_bytes("8mib"), 8388608u);
  EXPECT_EQ(parse_bytes("1gIb"), 1073741824u);
  EXPECT_EQ(parse_bytes("1.5mb"), 1500000u);
}

TEST(ParseBytes, RejectsWhatIsNotASize) {
  for (const char* text : {"", " ", "abc", "-1", "-1KiB", "12XB", "KiB", "1.5.5MB", "12 KiB extra",
                           "nan", "inf", "1e30", "8 MiBs"}) {
    EXPECT_THROW(parse_bytes(text), Error) << "'" << text << "'";
  }
}

TEST(ParseBytes, ErrorMessageQuotesTheInput) {
  try {
    parse_bytes("12XB");
    FAIL() << "no Error thrown";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("'12XB'"), std::string::npos) << error.what();
  }
}

TEST(ParseBytes, RefusesSizesAboveTheLimitWithoutConverting) {
  EXPECT_EQ(parse_bytes("1024GiB"), kMaxSizeBytes);
  EXPECT_EQ(parse_bytes("0000000000000000000000004096"), 4096u);  // leading zeros are no digits
  for (const std::string& text :
       {std::string(400, '9'), std::string("1025GiB"), std::string("99999999999999999"),
        std::string("1") + std::string(300, '0') + "KiB"}) {
    try {
      parse_bytes(text, "--ram");
      FAIL() << "no Error thrown for " << text.size() << " characters";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_EQ(message.rfind("--ram '", 0), 0u) << message;
      EXPECT_LT(message.size(), 400u) << message;  // the input is cut, not echoed whole
    }
  }
}

TEST(Printable, EscapesWhatIsNotPrintableAscii) {
  EXPECT_EQ(printable("conv_1"), "conv_1");
  EXPECT_EQ(printable("a\nb"), "a\\nb");
  EXPECT_EQ(printable("a\tb\\c"), "a\\tb\\\\c");
  EXPECT_EQ(printable(std::string("\x1b[31m\0\xff", 7)), "\\x1b[31m\\x00\\xff");
  EXPECT_EQ(printable(std::string(300, 'a')), std::string(200, 'a') + "...");
  EXPECT_EQ(printable(std::string(300, 'a'), 1000), std::string(300, 'a'));
}

TEST(FormatBytes, Examples) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(100), "100 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(524288), "512.00 KiB");
  EXPECT_EQ(format_bytes(1572864), "1.50 MiB");
  EXPECT_EQ(format_bytes(8388608), "8.00 MiB");
  EXPECT_EQ(format_bytes(1073741824), "1.00 GiB");
  EXPECT_EQ(format_bytes(uint64_t{3} << 30), "3.00 GiB");
}

TEST(FormatBytes, ParsesBackToTheSameBinarySize) {
  for (uint64_t bytes :
       {uint64_t{100}, uint64_t{1536}, uint64_t{524288}, uint64_t{1572864}, uint64_t{1} << 30}) {
    std::string text = format_bytes(bytes);
    EXPECT_EQ(parse_bytes(text), bytes) << text;
  }
}

}  // namespace
}  // namespace splitinfer

TEST(ParseBytes, RefusesWhatIsNotADecimalNumber) {
  for (const char* text : {"0x10", "inf", "nan", "1.2.3KiB", ".", " 5"})
    EXPECT_THROW(splitinfer::parse_bytes(text), splitinfer::Error) << text;
}
