#pragma once
// A thin RAII layer over the HDF5 C API: typed attribute and dataset access
// that throws Error (naming the file and object) instead of printing HDF5's
// error stack.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../src/tensor.hpp"

namespace splitinfer::h5 {

// An owned HDF5 identifier (file, group, dataset, ...), closed on destruction.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  Handle(Handle&& other) noexcept : id_(other.id_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();
  hid_t id() const { return id_; }

 private:
  hid_t id_ = -1;
};

// An open group (the file's root group included) with its path for messages.
class Group {
 public:
  Group(Handle handle, std::string path) : handle_(std::move(handle)), path_(std::move(path)) {}
  hid_t id() const { return handle_.id(); }
  const std::string& path() const { return path_; }

  bool has(const std::string& name) const;  // a member (group or dataset)
  bool has_attr(const std::string& name) const;
  Group open_group(const std::string& name) const;
  Group create_group(const std::string& name) const;
  std::vector<std::string> members() const;
  // An existing dataset, opened for its attributes (the attribute methods
  // below work on it; the group and dataset methods do not).
  Group dataset_attributes(const std::string& dataset) const;

  std::string read_string(const std::string& attr) const;
  std::vector<std::string> read_strings(const std::string& attr) const;
  int64_t read_int(const std::string& attr) const;
  std::vector<int64_t> read_ints(const std::string& attr) const;
  double read_double(const std::string& attr) const;
  std::vector<double> read_doubles(const std::string& attr) const;

  void write_string(const std::string& attr, const std::string& value) const;
  void write_strings(const std::string& attr, const std::vector<std::string>& values) const;
  void write_int(const std::string& attr, int64_t value) const;
  void write_ints(const std::string& attr, const std::vector<int64_t>& values) const;
  void write_double(const std::string& attr, double value) const;
  void write_doubles(const std::string& attr, const std::vector<double>& values) const;

  // A float32 dataset (any stored float type is converted); dims out.
  std::vector<float> read_floats(const std::string& dataset, std::vector<int64_t>& dims) const;
  void write_floats(const std::string& dataset, const std::vector<int64_t>& dims,
                    const float* values) const;
  // The dtype a dataset is stored as: float32 (also for float64, converted on
  // reading), float16, int8, uint8 or int32; throws Error for anything else.
  DType dataset_dtype(const std::string& dataset) const;
  // A dataset of a 1-, 2- or 4-byte dtype other than float32, as raw native bytes.
  std::vector<uint8_t> read_raw(const std::string& dataset, DType dtype,
                                std::vector<int64_t>& dims) const;
  void write_raw(const std::string& dataset, const std::vector<int64_t>& dims, DType dtype,
                 const void* values) const;
  // An int64 dataset; dims out.
  std::vector<int64_t> read_int64s(const std::string& dataset, std::vector<int64_t>& dims) const;
  void write_int64s(const std::string& dataset, const std::vector<int64_t>& dims,
                    const int64_t* values) const;
  // A float64 dataset (any stored float type is converted); dims out.
  std::vector<double> read_float64s(const std::string& dataset, std::vector<int64_t>& dims) const;
  void write_float64s(const std::string& dataset, const std::vector<int64_t>& dims,
                      const double* values) const;
  // A 1-D dataset of variable-length UTF-8 strings (h5py: asstr()).
  std::vector<std::string> read_string_dataset(const std::string& dataset) const;
  void write_string_dataset(const std::string& dataset,
                            const std::vector<std::string>& values) const;

 private:
  Handle handle_;
  std::string path_;
};

// The canonical text of what fletcher32 does not cover below `root` (io/FORMAT.md,
// "Integrity"): every attribute (but `skip` on `root`), and every dataset's
// path, type, extents and whether it carries a checksum; objects in byte
// order of their names. models/model_file.py writes the same text.
std::string canonical_content(const Group& root, const std::string& skip);

// Opens an existing file read-only; throws Error when it is missing or not
// HDF5, or when vetting (below) refuses it.
Group open_file(const std::string& path);

// Vetting. HDF5 1.10 trusts a file's metadata: a corrupt or crafted file can
// make it crash, loop or allocate without bound inside H5Fopen, H5Aread or
// H5Dread, before splitinfer sees a value it could refuse (tests/fuzz). Once
// a vetting program is set (the `splitinfer-vet` executable: main.cpp and
// the fuzz harnesses set it), open_file first has it read the whole file in
// a process of its own (vet_file, under a memory limit and a deadline); a
// file it cannot read is refused with the reader's message, and one that
// crashes it, outlives the deadline or exhausts the limit as corrupt, naming
// the file. Only then does this process open it, and meet what it met.
void set_vet_program(const std::string& program);
// Reads what the readers can read of `path`: every attribute and every
// dataset, whole, as the readers read them. Throws Error when one cannot be read.
void vet_file(const std::string& path);
// main() of the vetting program: `splitinfer-vet FILE` exits 0 when vet_file
// passes, else 1 with the error on one line of standard output.
int vet_main(int argc, char** argv);
// Creates (truncates) a file.
Group create_file(const std::string& path);

// HDF5 allocates and frees a buffer per chunk it reads or writes; the large
// ones are fresh pages from the kernel each time, faulted in and zeroed.
// After this call the process keeps freed memory for its next allocations
// instead: vetting a 45 MB node file (resnet18's) takes about 40% less CPU,
// with a quarter of the page faults; `plan` of resnet18 for 5 nodes 11-17%
// less. For processes that read or write whole files and end (the vetting
// program, plan); `run` keeps the default, so that a node's resident memory
// stays what its inferences need. Does nothing where the C library has no
// such setting.
void reuse_freed_memory();

}  // namespace splitinfer::h5
