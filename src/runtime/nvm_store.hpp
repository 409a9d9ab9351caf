#pragma once
// A node's emulated non-volatile memory (the FRAM of an intermittently
// powered board): a file that keeps what the node wrote through any power
// failure, and the progress it committed.
//
// Why a double-buffered footer. A power failure can strike in the middle of
// any write, so a write must never leave the node unable to tell what is
// valid. Data goes to its own place in the data area (a job writes its output
// where nothing committed lives, or rewrites the same bytes when it runs
// again); then the progress is committed by writing the older of two commit
// records, each holding a sequence number, the progress and a CRC-32 of both.
// At start-up the valid record with the larger sequence number is the
// progress: a record torn in the middle fails its CRC and the other (the
// previous commit) stands, so a failure at any byte leaves either the old or
// the new progress, and the data of every committed job whole. (Stateful
// embeds its markers in the data instead, which saves the record's write but
// ties the marker to the data layout; one record per commit is simpler to
// check, and its few dozen bytes are small beside a job's output.)
//
// File layout (all integers little-endian; see io/FORMAT.md, "NVM files"):
//   [0, 512)        header: magic "SPLITNVM", format version, data bytes,
//                   the identity text (plan id, node), CRC-32 of all of it
//   [512, 1536)     commit record A   [1536, 2560)  commit record B
//   [4096, ...)     the data area
// A record: magic "PROG", sequence (uint64), progress length (uint32), the
// progress text, CRC-32 of all before it.
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace splitinfer {

// Thrown by an NvmStore whose emulated power failed (fail_after()): the node
// lost its RAM; what the file holds is what survives.
class PowerLoss : public std::runtime_error {
 public:
  PowerLoss() : std::runtime_error("power lost") {}
};

class NvmStore {
 public:
  // The most bytes a progress text may take (a commit record's room).
  static constexpr uint64_t kMostProgressBytes = 1024 - 20;

  // Opens the NVM file at `path` for `identity` (e.g. the plan id and the
  // node) with a data area of `data_bytes`, creating it when it does not
  // exist. Throws Error when the file is corrupt (its header's checksum), of
  // another format version, another identity (another plan or node) or
  // another size, naming the file; such a file is left as it is. With
  // `must_exist`, a missing file is an Error too (nothing to resume).
  NvmStore(std::string path, const std::string& identity, uint64_t data_bytes,
           bool must_exist = false);
  ~NvmStore();
  NvmStore(const NvmStore&) = delete;
  NvmStore& operator=(const NvmStore&) = delete;

  const std::string& path() const { return path_; }
  uint64_t data_bytes() const { return data_bytes_; }

  // The data area: `count` bytes at `offset`. Throws Error out of bounds.
  void write(uint64_t offset, const void* bytes, uint64_t count);
  void read(uint64_t offset, void* bytes, uint64_t count);

  // Commits `progress` (at most kMostProgressBytes): after it returns, a
  // power failure leaves progress() == `progress`; during it, either this or
  // the previous one.
  void commit(const std::string& progress);
  // The last progress committed; none before the first commit.
  std::optional<std::string> progress() const { return progress_; }

  // Fault injection: the power fails once `bytes` more bytes have been
  // written (data or commit records): the write in progress stops there
  // (torn) and PowerLoss is thrown. Negative: never.
  void fail_after(int64_t bytes) { fail_after_ = bytes; }

  // Traffic since opened (stats: nvm_bytes_written, nvm_bytes_read).
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  void write_file(uint64_t position, const void* bytes, uint64_t count);
  void read_file(uint64_t position, void* bytes, uint64_t count) const;
  // A commit record's progress when its magic and CRC hold.
  std::optional<std::pair<uint64_t, std::string>> read_record(int slot) const;

  std::string path_;
  int fd_ = -1;
  uint64_t data_bytes_ = 0;
  uint64_t sequence_ = 0;  // of the last commit (0: none)
  std::optional<std::string> progress_;
  int64_t fail_after_ = -1;
  uint64_t bytes_written_ = 0;
  mutable uint64_t bytes_read_ = 0;
};

// A computation cut into jobs that keep everything they read and write in
// NVM, so that it survives power failures (the node's RAM holds only what a
// job is computing). Job j computes `bytes` bytes at `offset` of the data
// area from what earlier jobs wrote there.
struct NvmJob {
  uint64_t offset = 0, bytes = 0;
  // Fills `out` (`bytes` long) reading its inputs with store.read().
  std::function<void(NvmStore& store, char* out)> compute;
};

// Runs `jobs` from where the store's progress for `run` says (after the last
// job committed; from the first when the progress is another run's or none),
// committing "RUN JOB" after each. Returns how many jobs it ran. A PowerLoss
// goes through: call again after "rebooting" (a new NvmStore on the file) to
// resume.
int run_resumable(NvmStore& store, const std::string& run, const std::vector<NvmJob>& jobs);

}  // namespace splitinfer
