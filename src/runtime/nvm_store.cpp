#include "nvm_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "../error.hpp"

namespace splitinfer {
namespace {

constexpr char kMagic[8] = {'S', 'P', 'L', 'I', 'T', 'N', 'V', 'M'};
constexpr char kRecordMagic[4] = {'P', 'R', 'O', 'G'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kHeaderBytes = 512;
constexpr uint64_t kRecordBytes = 1024;
constexpr uint64_t kRecordAt[2] = {512, 512 + kRecordBytes};
constexpr uint64_t kDataAt = 4096;
// Header: magic (8), version (4), data bytes (8), identity length (4), the
// identity, CRC-32 (4) of everything before it.
constexpr uint64_t kMostIdentityBytes = kHeaderBytes - 8 - 4 - 8 - 4 - 4;

uint32_t crc(const std::vector<char>& bytes) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

template <typename T>
void put(std::vector<char>& bytes, T value) {  // little-endian, as the hosts are
  const char* first = reinterpret_cast<const char*>(&value);
  bytes.insert(bytes.end(), first, first + sizeof value);
}

template <typename T>
T get(const char* at) {
  T value;
  std::memcpy(&value, at, sizeof value);
  return value;
}

std::vector<char> header(const std::string& identity, uint64_t data_bytes) {
  std::vector<char> bytes(kMagic, kMagic + sizeof kMagic);
  put<uint32_t>(bytes, kVersion);
  put<uint64_t>(bytes, data_bytes);
  put<uint32_t>(bytes, static_cast<uint32_t>(identity.size()));
  bytes.insert(bytes.end(), identity.begin(), identity.end());
  put<uint32_t>(bytes, crc(bytes));
  bytes.resize(kHeaderBytes, 0);
  return bytes;
}

}  // namespace

NvmStore::NvmStore(std::string path, const std::string& identity, uint64_t data_bytes,
                   bool must_exist)
    : path_(std::move(path)), data_bytes_(data_bytes) {
  if (identity.size() > kMostIdentityBytes)
    throw Error("internal: an NVM identity longer than " + std::to_string(kMostIdentityBytes) +
                " bytes");
  struct stat status {};
  const bool exists = ::stat(path_.c_str(), &status) == 0;
  if (exists && !S_ISREG(status.st_mode))
    throw Error("the NVM file '" + path_ + "' is not a regular file");
  if (!exists && must_exist)
    throw Error("there is no NVM file '" + path_ + "' to resume from");
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("cannot open the NVM file '" + path_ + "': " + std::strerror(errno));
  try {
    const std::vector<char> expected = header(identity, data_bytes);
    if (!exists || status.st_size == 0) {  // a new NVM: the header, empty records, the data area
      write_file(0, expected.data(), expected.size());
      if (::ftruncate(fd_, static_cast<off_t>(kDataAt + data_bytes)) != 0)
        throw Error("cannot size the NVM file '" + path_ + "': " + std::strerror(errno));
      bytes_written_ = 0;
      return;
    }
    if (static_cast<uint64_t>(status.st_size) < kDataAt)
      throw Error("the NVM file '" + path_ + "' is truncated (" + std::to_string(status.st_size) +
                  " bytes; its header and commit records take " + std::to_string(kDataAt) + ")");
    std::vector<char> found(kHeaderBytes);
    read_file(0, found.data(), found.size());
    if (std::memcmp(found.data(), kMagic, sizeof kMagic) != 0)
      throw Error("'" + path_ + "' is not an NVM file of splitinfer (no SPLITNVM magic)");
    const uint32_t version = get<uint32_t>(found.data() + 8);
    const uint32_t length = get<uint32_t>(found.data() + 20);
    if (length > kMostIdentityBytes ||
        get<uint32_t>(found.data() + 24 + length) !=
            crc(std::vector<char>(found.begin(), found.begin() + 24 + length)))
      throw Error("the NVM file '" + path_ + "' is corrupt (its header's checksum does not match)");
    if (version != kVersion)
      throw Error("the NVM file '" + path_ + "' has format version " + std::to_string(version) +
                  "; this splitinfer reads version " + std::to_string(kVersion));
    const std::string held(found.data() + 24, length);
    if (held != identity)
      throw Error("the NVM file '" + path_ + "' belongs to " + held + ", not to " + identity);
    const uint64_t held_bytes = get<uint64_t>(found.data() + 12);
    if (held_bytes != data_bytes ||
        static_cast<uint64_t>(status.st_size) != kDataAt + data_bytes)
      throw Error("the NVM file '" + path_ + "' holds " + std::to_string(held_bytes) +
                  " bytes of data, not the " + std::to_string(data_bytes) + " expected");
    for (int slot = 0; slot < 2; ++slot)
      if (const auto record = read_record(slot); record && record->first > sequence_) {
        sequence_ = record->first;
        progress_ = record->second;
      }
  } catch (...) {
    ::close(fd_);
    throw;
  }
  bytes_read_ = 0;
}

NvmStore::~NvmStore() {
  if (fd_ >= 0) ::close(fd_);
}

void NvmStore::write_file(uint64_t position, const void* bytes, uint64_t count) {
  uint64_t allowed = count;
  const bool tears = fail_after_ >= 0 && static_cast<uint64_t>(fail_after_) < count;
  if (tears) allowed = static_cast<uint64_t>(fail_after_);
  const char* from = static_cast<const char*>(bytes);
  for (uint64_t done = 0; done < allowed;) {
    const ssize_t wrote = ::pwrite(fd_, from + done, allowed - done, static_cast<off_t>(position + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) throw Error("cannot write the NVM file '" + path_ + "': " + std::strerror(errno));
    done += static_cast<uint64_t>(wrote);
  }
  bytes_written_ += allowed;
  if (fail_after_ >= 0) fail_after_ -= static_cast<int64_t>(allowed);
  if (tears) {
    fail_after_ = -1;  // one failure; the node reboots with a new store
    throw PowerLoss();
  }
}

void NvmStore::read_file(uint64_t position, void* bytes, uint64_t count) const {
  char* to = static_cast<char*>(bytes);
  for (uint64_t done = 0; done < count;) {
    const ssize_t got = ::pread(fd_, to + done, count - done, static_cast<off_t>(position + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      throw Error("cannot read the NVM file '" + path_ + "'" +
                  (got == 0 ? std::string(": it ends early") : ": " + std::string(std::strerror(errno))));
    done += static_cast<uint64_t>(got);
  }
  bytes_read_ += count;
}

void NvmStore::write(uint64_t offset, const void* bytes, uint64_t count) {
  if (offset > data_bytes_ || count > data_bytes_ - offset)
    throw Error("internal: an NVM write of " + std::to_string(count) + " bytes at " +
                std::to_string(offset) + " outside its " + std::to_string(data_bytes_) + " bytes");
  write_file(kDataAt + offset, bytes, count);
}

void NvmStore::read(uint64_t offset, void* bytes, uint64_t count) {
  if (offset > data_bytes_ || count > data_bytes_ - offset)
    throw Error("internal: an NVM read of " + std::to_string(count) + " bytes at " +
                std::to_string(offset) + " outside its " + std::to_string(data_bytes_) + " bytes");
  read_file(kDataAt + offset, bytes, count);
}

std::optional<std::pair<uint64_t, std::string>> NvmStore::read_record(int slot) const {
  std::vector<char> record(kRecordBytes);
  read_file(kRecordAt[slot], record.data(), record.size());
  if (std::memcmp(record.data(), kRecordMagic, sizeof kRecordMagic) != 0) return std::nullopt;
  const uint64_t sequence = get<uint64_t>(record.data() + 4);
  const uint32_t length = get<uint32_t>(record.data() + 12);
  if (length > kMostProgressBytes) return std::nullopt;
  const std::vector<char> covered(record.begin(), record.begin() + 16 + length);
  if (get<uint32_t>(record.data() + 16 + length) != crc(covered)) return std::nullopt;
  return std::make_pair(sequence, std::string(record.data() + 16, length));
}

void NvmStore::commit(const std::string& progress) {
  if (progress.size() > kMostProgressBytes)
    throw Error("internal: a progress record of " + std::to_string(progress.size()) + " bytes");
  std::vector<char> record(kRecordMagic, kRecordMagic + sizeof kRecordMagic);
  put<uint64_t>(record, sequence_ + 1);
  put<uint32_t>(record, static_cast<uint32_t>(progress.size()));
  record.insert(record.end(), progress.begin(), progress.end());
  put<uint32_t>(record, crc(record));
  // The older record: sequence n lives in slot n % 2, so the newer stays whole.
  write_file(kRecordAt[(sequence_ + 1) % 2], record.data(), record.size());
  ++sequence_;
  progress_ = progress;
}

int run_resumable(NvmStore& store, const std::string& run, const std::vector<NvmJob>& jobs) {
  size_t next = 0;
  if (const std::optional<std::string> progress = store.progress()) {
    const std::string prefix = run + " ";
    if (progress->compare(0, prefix.size(), prefix) == 0)
      next = std::stoul(progress->substr(prefix.size())) + 1;
  }
  int ran = 0;
  std::vector<char> out;  // RAM: lost at a power failure, refilled by the job
  for (size_t j = next; j < jobs.size(); ++j) {
    out.assign(jobs[j].bytes, 0);
    jobs[j].compute(store, out.data());
    store.write(jobs[j].offset, out.data(), out.size());
    store.commit(run + " " + std::to_string(j));
    ++ran;
  }
  return ran;
}

}  // namespace splitinfer
