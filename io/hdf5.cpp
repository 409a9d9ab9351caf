#include "hdf5.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string_view>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "../src/error.hpp"
#include "file_vet.hpp"

namespace splitinfer::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; splitinfer reports its own.
const bool kQuiet = [] { return H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0; }();

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) throw Error(what);
  return id;
}

std::string object_path(const Group& group, const std::string& name) {
  return group.path() + (group.path().ends_with('/') ? "" : "/") + name;
}

// HDF5's fletcher32 filter reports a stale checksum as this error on the stack.
herr_t find_checksum_error(unsigned, const H5E_error2_t* error, void* found) {
  if (error->desc && std::string(error->desc).find("Fletcher32") != std::string::npos)
    *static_cast<bool*>(found) = true;
  return 0;
}

// The Error for a failed H5Dread of dataset `path` ("FILE:/group/name"): a
// checksum that does not match the bytes read is corruption, anything else
// most likely a truncated file.
Error read_error(const std::string& path) {
  bool checksum = false;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, find_checksum_error, &checksum);
  if (!checksum) return Error("cannot read dataset " + path + " (is the file truncated?)");
  const size_t split = path.find(":/");
  return Error(path.substr(0, split) + ": dataset '" + path.substr(split + 1) +
               "' fails its checksum (the file is corrupt)");
}

// Dataset creation properties: one chunk holding the whole extent, with a
// fletcher32 checksum that HDF5 verifies on every read. A dataset without
// elements, a scalar one or one over a chunk's 4 GiB limit stays contiguous,
// without a checksum.
Handle checksummed_layout(const std::vector<hsize_t>& extents, size_t element_bytes) {
  Handle properties(H5Pcreate(H5P_DATASET_CREATE));
  uint64_t bytes = element_bytes;
  for (hsize_t extent : extents) bytes *= extent;
  if (extents.empty() || bytes == 0 || bytes >= (uint64_t{1} << 32)) return properties;
  H5Pset_chunk(properties.id(), static_cast<int>(extents.size()), extents.data());
  H5Pset_fletcher32(properties.id());
  return properties;
}

// Variable-length strings live in the file's global heap, which HDF5 1.10
// trusts: a corrupt heap collection makes H5Aread/H5Dread loop forever (a
// free-space entry of size 0), allocate whatever size the collection claims,
// or read out of bounds (an object index the collection does not hold, an
// object larger than its string). So before a variable-length string is
// read, the heap collections its elements point at are checked here, from
// the file's bytes, against the layout of the file format specification
// ("Global Heap"): signature, version, a size within the file, objects that
// tile the collection exactly, and each element's object present with the
// string's length.
//
// An element's heap ID is in its stored form (sequence length, collection
// address, object index), which HDF5 hands to a conversion function before
// it touches the heap. A soft conversion from variable-length strings to an
// opaque type with kRawTag copies that stored form out unchanged.
constexpr const char* kRawTag = "splitinfer-vlen-heap-id";

herr_t copy_heap_ids(hid_t source, hid_t destination, H5T_cdata_t* cdata, size_t, size_t, size_t,
                     void*, void*, hid_t) {
  if (cdata->command != H5T_CONV_INIT) return 0;  // H5T_CONV_CONV: the bytes stay as they are
  if (H5Tis_variable_str(source) <= 0 || H5Tget_class(destination) != H5T_OPAQUE) return -1;
  char* tag = H5Tget_tag(destination);
  const bool mine = tag && std::strcmp(tag, kRawTag) == 0;
  H5free_memory(tag);
  if (!mine) return -1;
  cdata->need_bkg = H5T_BKG_NO;
  return 0;
}

const bool kHeapIdConversion = [] {
  Handle string(H5Tcopy(H5T_C_S1));
  H5Tset_size(string.id(), H5T_VARIABLE);
  Handle opaque(H5Tcreate(H5T_OPAQUE, 16));
  H5Tset_tag(opaque.id(), kRawTag);
  return H5Tregister(H5T_PERS_SOFT, kRawTag, string.id(), opaque.id(), copy_heap_ids) >= 0;
}();

uint64_t little_endian(const uint8_t* bytes, size_t count) {
  uint64_t value = 0;
  for (size_t i = count; i-- > 0;) value = value << 8 | bytes[i];
  return value;
}

// Checks the heap objects that the variable-length strings of `object` (an
// attribute when `attribute`, else a dataset) point at; throws Error naming
// `what` when one is not sound.
void check_string_heap(hid_t object, bool attribute, const std::string& what) {
  (void)kHeapIdConversion;
  const auto corrupt = [&](const std::string& why) {
    return Error(what + " is corrupt: " + why + " (its strings cannot be read)");
  };
  Handle file(H5Iget_file_id(object));
  // A file open for writing is one splitinfer writes (or edits on purpose):
  // its heap may not be on disk yet, and it is not an input.
  unsigned intent = 0;
  if (H5Fget_intent(file.id(), &intent) < 0 || (intent & H5F_ACC_RDWR)) return;
  Handle creation(H5Fget_create_plist(file.id()));
  size_t address_bytes = 0, length_bytes = 0;
  hsize_t userblock = 0;
  if (H5Pget_sizes(creation.id(), &address_bytes, &length_bytes) < 0 ||
      H5Pget_userblock(creation.id(), &userblock) < 0 || address_bytes < 2 || address_bytes > 8 ||
      length_bytes < 2 || length_bytes > 8)
    throw corrupt("the file declares no valid address sizes");
  const size_t id_bytes = 4 + address_bytes + 4;
  Handle space(attribute ? H5Aget_space(object) : H5Dget_space(object));
  const hssize_t count = H5Sget_simple_extent_npoints(space.id());
  if (count <= 0) return;
  Handle raw(H5Tcreate(H5T_OPAQUE, id_bytes));
  H5Tset_tag(raw.id(), kRawTag);
  std::vector<uint8_t> ids(static_cast<size_t>(count) * id_bytes);
  const herr_t read = attribute ? H5Aread(object, raw.id(), ids.data())
                                : H5Dread(object, raw.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                          ids.data());
  if (read < 0) throw corrupt("its heap IDs cannot be read");

  ssize_t name_size = H5Fget_name(file.id(), nullptr, 0);
  std::string name(name_size > 0 ? name_size : 0, '\0');
  if (name_size > 0) H5Fget_name(file.id(), name.data(), name.size() + 1);
  std::FILE* stream = std::fopen(name.c_str(), "rb");
  if (!stream) throw corrupt("its file cannot be opened to check them");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(stream, std::fclose);
  std::fseek(stream, 0, SEEK_END);
  const uint64_t file_size = static_cast<uint64_t>(std::max(std::ftell(stream), 0L));
  const uint64_t header_bytes = 8 + length_bytes;       // "GCOL", version, 3 reserved, size
  const uint64_t object_header_bytes = 8 + length_bytes;  // index, references, 4 reserved, size

  std::vector<uint8_t> collection;
  uint64_t loaded = UINT64_MAX;  // the address of the collection in `collection`
  for (hssize_t element = 0; element < count; ++element) {
    const uint8_t* id = ids.data() + element * id_bytes;
    const uint64_t length = little_endian(id, 4);
    const uint64_t address = little_endian(id + 4, address_bytes);
    const uint64_t index = little_endian(id + 4 + address_bytes, 4);
    if (length == 0) continue;  // an empty string: HDF5 does not read the heap
    if (address != loaded) {
      if (address > file_size || userblock > file_size - address ||
          header_bytes > file_size - address - userblock)
        throw corrupt("a heap collection lies beyond the end of the file");
      const uint64_t at = userblock + address;
      uint8_t header[16];
      std::fseek(stream, static_cast<long>(at), SEEK_SET);
      if (std::fread(header, 1, header_bytes, stream) != header_bytes ||
          std::memcmp(header, "GCOL", 4) != 0 || header[4] != 1)
        throw corrupt("no heap collection where one should be");
      const uint64_t size = little_endian(header + 8, length_bytes);
      if (size < header_bytes || size > file_size - at)
        throw corrupt("a heap collection claims " + std::to_string(size) + " bytes");
      collection.resize(size);
      std::fseek(stream, static_cast<long>(at), SEEK_SET);
      if (std::fread(collection.data(), 1, size, stream) != size)
        throw corrupt("a heap collection cannot be read");
      // The objects, as HDF5 walks them: each an object header and its data
      // padded to 8 bytes, index 0 free space of the size it gives; a
      // remainder too small for an object header is free space too.
      uint64_t offset = header_bytes;
      while (offset < size) {
        if (size - offset < object_header_bytes) break;
        const uint64_t object_index = little_endian(&collection[offset], 2);
        const uint64_t object_size = little_endian(&collection[offset + 8], length_bytes);
        const uint64_t limit = size - offset;
        if (object_index == 0) {
          if (object_size == 0 || object_size > limit)
            throw corrupt("a heap collection's free space is " + std::to_string(object_size) +
                          " bytes of " + std::to_string(limit));
          offset += object_size;
        } else {
          if (object_size > limit - object_header_bytes ||
              ((object_size + 7) & ~uint64_t{7}) > limit - object_header_bytes)
            throw corrupt("a heap object runs past its collection");
          offset += object_header_bytes + ((object_size + 7) & ~uint64_t{7});
        }
      }
      loaded = address;
    }
    // The element's object: present, of the string's length.
    bool found = false;
    uint64_t offset = header_bytes;
    while (!found && collection.size() - offset >= object_header_bytes) {
      const uint64_t object_index = little_endian(&collection[offset], 2);
      const uint64_t object_size = little_endian(&collection[offset + 8], length_bytes);
      if (object_index == 0) {
        offset += object_size;
        continue;
      }
      if (object_index == index) {
        if (object_size != length)
          throw corrupt("a string of " + std::to_string(length) + " bytes has a heap object of " +
                        std::to_string(object_size));
        found = true;
      }
      offset += object_header_bytes + ((object_size + 7) & ~uint64_t{7});
    }
    if (!found || index == 0) throw corrupt("a string's heap object is missing");
  }
}

Handle open_attr(const Group& group, const std::string& name) {
  if (!group.has_attr(name)) throw Error("attribute '" + name + "' is missing on " + group.path());
  return Handle(
      check(H5Aopen(group.id(), name.c_str(), H5P_DEFAULT), "cannot open attribute " + name));
}

hsize_t attr_elements(hid_t attr) {
  Handle space(H5Aget_space(attr));
  const hssize_t count = H5Sget_simple_extent_npoints(space.id());
  return count < 0 ? 0 : static_cast<hsize_t>(count);
}

template <typename T>
std::vector<T> read_numbers(const Group& group, const std::string& name, hid_t memory_type,
                            H5T_class_t want) {
  Handle attr = open_attr(group, name);
  Handle type(H5Aget_type(attr.id()));
  const H5T_class_t stored = H5Tget_class(type.id());
  if (stored != want && !(want == H5T_FLOAT && stored == H5T_INTEGER))
    throw Error("attribute '" + name + "' on " + group.path() + " has the wrong type");
  std::vector<T> values(attr_elements(attr.id()));
  if (!values.empty() && H5Aread(attr.id(), memory_type, values.data()) < 0)
    throw Error("cannot read attribute '" + name + "' on " + group.path());
  return values;
}

template <typename T>
void write_numbers(const Group& group, const std::string& name, hid_t file_type, hid_t memory_type,
                   const std::vector<T>& values, bool scalar) {
  if (group.has_attr(name)) H5Adelete(group.id(), name.c_str());
  const hsize_t count = values.size();
  // An empty array is a 1-D dataspace of extent 0, as h5py writes it (not
  // H5S_NULL, which h5py reads as Empty rather than an empty array).
  Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr));
  Handle attr(
      check(H5Acreate2(group.id(), name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
            "cannot create attribute '" + name + "' on " + group.path()));
  if (count && H5Awrite(attr.id(), memory_type, values.data()) < 0)
    throw Error("cannot write attribute '" + name + "' on " + group.path());
}

void write_string_attr(const Group& group, const std::string& name,
                       const std::vector<std::string>& values, bool scalar) {
  if (group.has_attr(name)) H5Adelete(group.id(), name.c_str());
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  const hsize_t count = values.size();
  // An empty array is a 1-D dataspace of extent 0, as h5py writes it (not
  // H5S_NULL, which h5py reads as Empty rather than an empty array).
  Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &count, nullptr));
  Handle attr(
      check(H5Acreate2(group.id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
            "cannot create attribute '" + name + "' on " + group.path()));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& value : values) pointers.push_back(value.c_str());
  if (count && H5Awrite(attr.id(), type.id(), pointers.data()) < 0)
    throw Error("cannot write attribute '" + name + "' on " + group.path());
}

}  // namespace

Handle& Handle::operator=(Handle&& other) noexcept {
  std::swap(id_, other.id_);
  return *this;
}

Handle::~Handle() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      break;
  }
}

bool Group::has(const std::string& name) const {
  return H5Lexists(id(), name.c_str(), H5P_DEFAULT) > 0;
}

bool Group::has_attr(const std::string& name) const { return H5Aexists(id(), name.c_str()) > 0; }

Group Group::open_group(const std::string& name) const {
  const std::string path = object_path(*this, name);
  if (!has(name)) throw Error("group " + path + " is missing");
  return Group(
      Handle(check(H5Gopen2(id(), name.c_str(), H5P_DEFAULT), "cannot open group " + path)), path);
}

Group Group::create_group(const std::string& name) const {
  const std::string path = object_path(*this, name);
  return Group(Handle(check(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            "cannot create group " + path)),
               path);
}

std::vector<std::string> Group::members() const {
  std::vector<std::string> names;
  H5Literate(
      id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  return names;
}

std::vector<std::string> Group::read_strings(const std::string& name) const {
  Handle attr = open_attr(*this, name);
  Handle type(H5Aget_type(attr.id()));
  if (H5Tget_class(type.id()) != H5T_STRING)
    throw Error("attribute '" + name + "' on " + path() + " is not a string");
  const hsize_t count = attr_elements(attr.id());
  std::vector<std::string> values;
  if (count == 0) return values;
  if (H5Tis_variable_str(type.id()) > 0) {
    check_string_heap(attr.id(), true, "attribute '" + name + "' on " + path());
    Handle memory_type(H5Tcopy(H5T_C_S1));
    H5Tset_size(memory_type.id(), H5T_VARIABLE);
    H5Tset_cset(memory_type.id(), H5Tget_cset(type.id()));
    std::vector<char*> pointers(count, nullptr);
    const bool read = H5Aread(attr.id(), memory_type.id(), pointers.data()) >= 0;
    if (read)
      for (char* pointer : pointers) values.emplace_back(pointer ? pointer : "");
    // A read that fails part way (a corrupt heap entry) has allocated the
    // strings before it: free them either way.
    Handle space(H5Aget_space(attr.id()));
    H5Dvlen_reclaim(memory_type.id(), space.id(), H5P_DEFAULT, pointers.data());
    if (!read) throw Error("cannot read attribute '" + name + "' on " + path());
  } else {
    const size_t size = H5Tget_size(type.id());
    std::vector<char> buffer(size * count + 1, '\0');
    if (H5Aread(attr.id(), type.id(), buffer.data()) < 0)
      throw Error("cannot read attribute '" + name + "' on " + path());
    for (hsize_t i = 0; i < count; ++i)
      values.emplace_back(std::string(buffer.data() + i * size, size).c_str());
  }
  return values;
}

std::string Group::read_string(const std::string& name) const {
  std::vector<std::string> values = read_strings(name);
  if (values.size() != 1)
    throw Error("attribute '" + name + "' on " + path() + " is not a single string");
  return values[0];
}

std::vector<int64_t> Group::read_ints(const std::string& name) const {
  return read_numbers<int64_t>(*this, name, H5T_NATIVE_INT64, H5T_INTEGER);
}

int64_t Group::read_int(const std::string& name) const {
  std::vector<int64_t> values = read_ints(name);
  if (values.size() != 1)
    throw Error("attribute '" + name + "' on " + path() + " is not a single integer");
  return values[0];
}

std::vector<double> Group::read_doubles(const std::string& name) const {
  return read_numbers<double>(*this, name, H5T_NATIVE_DOUBLE, H5T_FLOAT);
}

double Group::read_double(const std::string& name) const {
  std::vector<double> values = read_doubles(name);
  if (values.size() != 1)
    throw Error("attribute '" + name + "' on " + path() + " is not a single number");
  return values[0];
}

void Group::write_string(const std::string& name, const std::string& value) const {
  write_string_attr(*this, name, {value}, true);
}
void Group::write_strings(const std::string& name, const std::vector<std::string>& values) const {
  write_string_attr(*this, name, values, false);
}
void Group::write_int(const std::string& name, int64_t value) const {
  write_numbers<int64_t>(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, {value}, true);
}
void Group::write_ints(const std::string& name, const std::vector<int64_t>& values) const {
  write_numbers(*this, name, H5T_STD_I64LE, H5T_NATIVE_INT64, values, false);
}
void Group::write_double(const std::string& name, double value) const {
  write_numbers<double>(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {value}, true);
}
void Group::write_doubles(const std::string& name, const std::vector<double>& values) const {
  write_numbers(*this, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values, false);
}

namespace {

// Refuses a dataset whose extents promise more elements than it stores: the
// extents come from the file and size an allocation. A contiguous or compact
// dataset must store every element; a chunked one (compressed) may store less,
// and every dataset is held to 2^28 elements, checked before allocating.
hsize_t checked_element_count(hid_t dataset, hid_t stored_type, const std::vector<hsize_t>& extents,
                              const std::string& path) {
  constexpr hsize_t kLargestDataset = hsize_t{1} << 28;
  hsize_t count = 1;
  for (hsize_t extent : extents) {
    if (extent > kLargestDataset || (count *= extent) > kLargestDataset)
      throw Error("dataset " + path + " declares more than 2^28 elements");
  }
  Handle create_list(H5Dget_create_plist(dataset));
  if (count && H5Pget_layout(create_list.id()) != H5D_CHUNKED &&
      H5Dget_storage_size(dataset) < count * H5Tget_size(stored_type))
    throw Error("dataset " + path + " stores fewer elements than its shape holds (is the file " +
                "truncated or corrupt?)");
  return count;
}

template <typename T>
std::vector<T> read_dataset(const Group& group, const std::string& name, std::vector<int64_t>& dims,
                            hid_t memory_type, H5T_class_t stored_class, const char* kind) {
  const std::string path = object_path(group, name);
  if (!group.has(name)) throw Error("dataset " + path + " is missing");
  Handle dataset(
      check(H5Dopen2(group.id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path));
  Handle type(H5Dget_type(dataset.id()));
  if (H5Tget_class(type.id()) != stored_class) throw Error("dataset " + path + " is not " + kind);
  Handle space(H5Dget_space(dataset.id()));
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) throw Error("cannot read the shape of dataset " + path);
  std::vector<hsize_t> extents(rank);
  H5Sget_simple_extent_dims(space.id(), extents.data(), nullptr);
  dims.assign(extents.begin(), extents.end());
  const hsize_t count = checked_element_count(dataset.id(), type.id(), extents, path);
  std::vector<T> values(count);
  if (count && H5Dread(dataset.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    throw read_error(path);
  return values;
}

template <typename T>
void write_dataset(const Group& group, const std::string& name, const std::vector<int64_t>& dims,
                   const T* values, hid_t file_type, hid_t memory_type) {
  const std::string path = object_path(group, name);
  std::vector<hsize_t> extents(dims.begin(), dims.end());
  Handle space(H5Screate_simple(static_cast<int>(extents.size()), extents.data(), nullptr));
  Handle layout = checksummed_layout(extents, H5Tget_size(file_type));
  Handle dataset(check(H5Dcreate2(group.id(), name.c_str(), file_type, space.id(), H5P_DEFAULT,
                                  layout.id(), H5P_DEFAULT),
                       "cannot create dataset " + path));
  if (H5Dwrite(dataset.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
    throw Error("cannot write dataset " + path);
}

}  // namespace

std::vector<float> Group::read_floats(const std::string& name, std::vector<int64_t>& dims) const {
  return read_dataset<float>(*this, name, dims, H5T_NATIVE_FLOAT, H5T_FLOAT, "floating point");
}

void Group::write_floats(const std::string& name, const std::vector<int64_t>& dims,
                         const float* values) const {
  write_dataset(*this, name, dims, values, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
}

namespace {

// IEEE half precision, little-endian, as h5py stores numpy's float16.
Handle float16_type() {
  Handle type(H5Tcopy(H5T_IEEE_F32LE));
  H5Tset_fields(type.id(), 15, 10, 5, 0, 10);
  H5Tset_size(type.id(), 2);
  H5Tset_ebias(type.id(), 15);
  return type;
}

// The memory type of a dtype read or written raw (native byte order).
Handle memory_type(DType dtype) {
  switch (dtype) {
    case DType::u8:
      return Handle(H5Tcopy(H5T_NATIVE_UINT8));
    case DType::i8:
      return Handle(H5Tcopy(H5T_NATIVE_INT8));
    case DType::i32:
      return Handle(H5Tcopy(H5T_NATIVE_INT32));
    case DType::f16:
      return float16_type();
    case DType::f32:
      return Handle(H5Tcopy(H5T_NATIVE_FLOAT));
  }
  throw Error("internal: unknown dtype");
}

}  // namespace

Group Group::dataset_attributes(const std::string& name) const {
  const std::string path = object_path(*this, name);
  return Group(
      Handle(check(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path)),
      path);
}

DType Group::dataset_dtype(const std::string& name) const {
  const std::string path = object_path(*this, name);
  if (!has(name)) throw Error("dataset " + path + " is missing");
  Handle dataset(check(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path));
  Handle type(H5Dget_type(dataset.id()));
  const size_t size = H5Tget_size(type.id());
  switch (H5Tget_class(type.id())) {
    case H5T_FLOAT:
      if (size == 4 || size == 8) return DType::f32;
      if (size == 2) return DType::f16;
      break;
    case H5T_INTEGER: {
      const bool is_signed = H5Tget_sign(type.id()) == H5T_SGN_2;
      if (size == 1) return is_signed ? DType::i8 : DType::u8;
      if (size == 4 && is_signed) return DType::i32;
      break;
    }
    default:
      break;
  }
  throw Error("dataset " + path + " has a type splitinfer does not read (" + std::to_string(size) +
              "-byte " + (H5Tget_class(type.id()) == H5T_INTEGER ? "integer" : "value") +
              "; float32, float16, int8, uint8 and int32 are known)");
}

std::vector<uint8_t> Group::read_raw(const std::string& name, DType dtype,
                                     std::vector<int64_t>& dims) const {
  const std::string path = object_path(*this, name);
  if (dataset_dtype(name) != dtype) throw Error("dataset " + path + " is not " + dtype_name(dtype));
  Handle dataset(check(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path));
  Handle space(H5Dget_space(dataset.id()));
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) throw Error("cannot read the shape of dataset " + path);
  std::vector<hsize_t> extents(rank);
  H5Sget_simple_extent_dims(space.id(), extents.data(), nullptr);
  dims.assign(extents.begin(), extents.end());
  const Handle stored_type(H5Dget_type(dataset.id()));
  const hsize_t count = checked_element_count(dataset.id(), stored_type.id(), extents, path);
  std::vector<uint8_t> values(count * dtype_bytes(dtype));
  Handle type = memory_type(dtype);
  if (count && H5Dread(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0)
    throw read_error(path);
  return values;
}

void Group::write_raw(const std::string& name, const std::vector<int64_t>& dims, DType dtype,
                      const void* values) const {
  const std::string path = object_path(*this, name);
  Handle type = memory_type(dtype);
  Handle file_type(dtype == DType::f16   ? float16_type()
                   : dtype == DType::u8  ? Handle(H5Tcopy(H5T_STD_U8LE))
                   : dtype == DType::i8  ? Handle(H5Tcopy(H5T_STD_I8LE))
                   : dtype == DType::i32 ? Handle(H5Tcopy(H5T_STD_I32LE))
                                         : Handle(H5Tcopy(H5T_IEEE_F32LE)));
  std::vector<hsize_t> extents(dims.begin(), dims.end());
  Handle space(H5Screate_simple(static_cast<int>(extents.size()), extents.data(), nullptr));
  Handle layout = checksummed_layout(extents, H5Tget_size(file_type.id()));
  Handle dataset(check(H5Dcreate2(id(), name.c_str(), file_type.id(), space.id(), H5P_DEFAULT,
                                  layout.id(), H5P_DEFAULT),
                       "cannot create dataset " + path));
  if (H5Dwrite(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0)
    throw Error("cannot write dataset " + path);
}

std::vector<int64_t> Group::read_int64s(const std::string& name, std::vector<int64_t>& dims) const {
  return read_dataset<int64_t>(*this, name, dims, H5T_NATIVE_INT64, H5T_INTEGER, "integer");
}

void Group::write_int64s(const std::string& name, const std::vector<int64_t>& dims,
                         const int64_t* values) const {
  write_dataset(*this, name, dims, values, H5T_STD_I64LE, H5T_NATIVE_INT64);
}

std::vector<double> Group::read_float64s(const std::string& name,
                                         std::vector<int64_t>& dims) const {
  return read_dataset<double>(*this, name, dims, H5T_NATIVE_DOUBLE, H5T_FLOAT, "floating point");
}

void Group::write_float64s(const std::string& name, const std::vector<int64_t>& dims,
                           const double* values) const {
  write_dataset(*this, name, dims, values, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE);
}

std::vector<std::string> Group::read_string_dataset(const std::string& name) const {
  const std::string path = object_path(*this, name);
  if (!has(name)) throw Error("dataset " + path + " is missing");
  Handle dataset(check(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path));
  Handle type(H5Dget_type(dataset.id()));
  Handle space(H5Dget_space(dataset.id()));
  if (H5Tget_class(type.id()) != H5T_STRING || H5Tis_variable_str(type.id()) <= 0 ||
      H5Sget_simple_extent_ndims(space.id()) != 1)
    throw Error("dataset " + path + " is not a 1-D dataset of variable-length strings");
  hsize_t count = 0;
  H5Sget_simple_extent_dims(space.id(), &count, nullptr);
  check_string_heap(dataset.id(), false, "dataset " + path);
  Handle memory_type(H5Tcopy(H5T_C_S1));
  H5Tset_size(memory_type.id(), H5T_VARIABLE);
  H5Tset_cset(memory_type.id(), H5Tget_cset(type.id()));
  std::vector<char*> pointers(count, nullptr);
  if (count &&
      H5Dread(dataset.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0)
    throw read_error(path);
  std::vector<std::string> values;
  values.reserve(count);
  for (char* pointer : pointers) values.emplace_back(pointer ? pointer : "");
  if (count) H5Dvlen_reclaim(memory_type.id(), space.id(), H5P_DEFAULT, pointers.data());
  return values;
}

void Group::write_string_dataset(const std::string& name,
                                 const std::vector<std::string>& values) const {
  const std::string path = object_path(*this, name);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.id(), H5T_VARIABLE);
  H5Tset_cset(type.id(), H5T_CSET_UTF8);
  const hsize_t count = values.size();
  Handle space(H5Screate_simple(1, &count, nullptr));
  // No checksum: HDF5 applies no filter to variable-length data.
  Handle dataset(check(
      H5Dcreate2(id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      "cannot create dataset " + path));
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& value : values) pointers.push_back(value.c_str());
  if (count &&
      H5Dwrite(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0)
    throw Error("cannot write dataset " + path);
}

namespace {

// Appends each piece to `text` (no temporaries of operator+).
void append(std::string& text, std::initializer_list<std::string_view> pieces) {
  for (std::string_view piece : pieces) text.append(piece);
}

// Appends attribute `name`'s canonical line: "A <name> i <v>..." (integers,
// decimal), "A <name> f <v>..." (numbers, the float64 bits in hex) or
// "A <name> s <bytes>:<text>..." (strings).
void canonical_attribute(const Group& object, const std::string& name, std::string& text) {
  Handle attr(H5Aopen(object.id(), name.c_str(), H5P_DEFAULT));
  Handle type(H5Aget_type(attr.id()));
  append(text, {"A ", name});
  switch (H5Tget_class(type.id())) {
    case H5T_INTEGER:
      text += " i";
      for (int64_t value : object.read_ints(name)) append(text, {" ", std::to_string(value)});
      break;
    case H5T_FLOAT:
      text += " f";
      for (double value : object.read_doubles(name)) {
        uint64_t bits = 0;
        std::memcpy(&bits, &value, sizeof bits);
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(bits));
        append(text, {" ", hex});
      }
      break;
    case H5T_STRING:
      text += " s";
      for (const std::string& value : object.read_strings(name))
        append(text, {" ", std::to_string(value.size()), ":", value});
      break;
    default:
      text += " ?";
      break;
  }
  text += "\n";
}

void canonical_attributes(const Group& object, const std::string& skip, std::string& text) {
  std::vector<std::string> names;
  H5Aiterate2(
      object.id(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names)
    if (name != skip) canonical_attribute(object, name, text);
}

// "D <path> <type> <extents joined by x> c<1 with a checksum, else 0>"
void canonical_dataset(hid_t dataset, const std::string& path, std::string& text) {
  Handle type(H5Dget_type(dataset));
  const size_t size = H5Tget_size(type.id());
  switch (H5Tget_class(type.id())) {
    case H5T_FLOAT:
      append(text, {"D ", path, " f", std::to_string(size)});
      break;
    case H5T_INTEGER:
      append(text,
             {"D ", path, H5Tget_sign(type.id()) == H5T_SGN_2 ? " i" : " u", std::to_string(size)});
      break;
    case H5T_STRING:
      append(text, {"D ", path, " s"});
      break;
    default:
      append(text, {"D ", path, " ?"});
      break;
  }
  Handle space(H5Dget_space(dataset));
  const int rank = std::max(H5Sget_simple_extent_ndims(space.id()), 0);
  std::vector<hsize_t> extents(rank);
  H5Sget_simple_extent_dims(space.id(), extents.data(), nullptr);
  text += ' ';
  for (size_t d = 0; d < extents.size(); ++d)
    append(text, {d ? "x" : "", std::to_string(extents[d])});
  Handle properties(H5Dget_create_plist(dataset));
  unsigned flags = 0;
  size_t values = 0;
  const bool checksum = H5Pget_filter_by_id2(properties.id(), H5Z_FILTER_FLETCHER32, &flags,
                                             &values, nullptr, 0, nullptr, nullptr) >= 0;
  text += checksum ? " c1\n" : " c0\n";
}

void canonical_group(const Group& group, const std::string& path, const std::string& skip,
                     std::string& text) {
  append(text, {"G ", path, "\n"});
  canonical_attributes(group, skip, text);
  std::vector<std::string> names = group.members();
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const std::string child = path + (path == "/" ? "" : "/") + name;
    Handle object(H5Oopen(group.id(), name.c_str(), H5P_DEFAULT));
    const H5I_type_t kind = H5Iget_type(object.id());
    if (kind == H5I_GROUP) {
      canonical_group(Group(std::move(object), object_path(group, name)), child, "", text);
    } else if (kind == H5I_DATASET) {
      canonical_dataset(object.id(), child, text);
      canonical_attributes(Group(std::move(object), object_path(group, name)), "", text);
    }
  }
}

// Every dataset under `group`, read whole into memory as the readers read
// it: numbers as the native type of their class and size, variable-length
// strings through read_string_dataset; other types are left to the reader
// that refuses them. The values go to `buffer`, grown as needed and reused
// (not a fresh allocation per dataset, faulted in and zeroed each time).
void read_every_dataset(const Group& group, std::vector<uint8_t>& buffer) {
  for (const std::string& name : group.members()) {
    H5O_info_t info;
    if (H5Oget_info_by_name2(group.id(), name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
      throw Error("cannot read object " + object_path(group, name));
    if (info.type == H5O_TYPE_GROUP) {
      read_every_dataset(group.open_group(name), buffer);
      continue;
    }
    if (info.type != H5O_TYPE_DATASET) continue;
    const std::string path = object_path(group, name);
    Handle dataset(check(H5Dopen2(group.id(), name.c_str(), H5P_DEFAULT), "cannot open dataset " + path));
    Handle type(H5Dget_type(dataset.id()));
    const H5T_class_t kind = H5Tget_class(type.id());
    if (kind == H5T_STRING) {
      if (H5Tis_variable_str(type.id()) > 0) group.read_string_dataset(name);
      continue;
    }
    if (kind != H5T_INTEGER && kind != H5T_FLOAT) continue;
    Handle space(H5Dget_space(dataset.id()));
    const int rank = H5Sget_simple_extent_ndims(space.id());
    if (rank < 0) throw Error("cannot read the shape of dataset " + path);
    std::vector<hsize_t> extents(rank);
    H5Sget_simple_extent_dims(space.id(), extents.data(), nullptr);
    const hsize_t count = checked_element_count(dataset.id(), type.id(), extents, path);
    Handle native(H5Tget_native_type(type.id(), H5T_DIR_ASCEND));
    if (native.id() < 0) throw Error("dataset " + path + " has a type splitinfer cannot read");
    const hsize_t bytes = count * H5Tget_size(native.id());
    if (bytes > buffer.size()) {
      buffer.clear();
      buffer.shrink_to_fit();  // the old buffer freed before the larger one is taken
      buffer.resize(bytes);
    }
    if (count &&
        H5Dread(dataset.id(), native.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0)
      throw read_error(path);
  }
}

}  // namespace

std::string canonical_content(const Group& root, const std::string& skip) {
  std::string text;
  canonical_group(root, "/", skip, text);
  return text;
}

namespace {

std::string& vet_program() {
  static std::string program;
  return program;
}

Group open_unvetted(const std::string& path) {
  (void)kQuiet;
  if (!std::filesystem::exists(path)) throw Error("file '" + path + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw Error("'" + path + "' is not an HDF5 file (or is truncated)");
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) throw Error("cannot open '" + path + "' as HDF5 (is it truncated?)");
  Handle file_handle(file);
  Handle root(
      check(H5Gopen2(file, "/", H5P_DEFAULT), "cannot open the root group of '" + path + "'"));
  return Group(std::move(root), path + ":/");
}

}  // namespace

void set_vet_program(const std::string& program) { vet_program() = program; }

void vet_file(const std::string& path) {
  const Group root = open_unvetted(path);
  canonical_content(root, "");  // every attribute, read as the readers read them
  std::vector<uint8_t> buffer;
  read_every_dataset(root, buffer);
}

int vet_main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: %s FILE.h5\n(reads the whole file as splitinfer's readers do: exit 0, "
                 "or 1 with the error on standard output)\n",
                 argc ? argv[0] : "splitinfer-vet");
    return 2;
  }
  limit_vetting_resources(argv[1]);
  reuse_freed_memory();
  try {
    vet_file(argv[1]);
    return 0;
  } catch (const Error& failure) {
    std::printf("%s\n", failure.what());
  } catch (const std::bad_alloc&) {
    std::printf("'%s' is corrupt: reading it needs more memory than a valid file\n", argv[1]);
  } catch (const std::exception& failure) {
    std::printf("'%s' is corrupt: %s\n", argv[1], failure.what());
  }
  return 1;
}

Group open_file(const std::string& path) {
  if (!vet_program().empty() && std::filesystem::exists(path)) vet_in_child(vet_program(), path);
  return open_unvetted(path);
}

void reuse_freed_memory() {
#if defined(__GLIBC__)
  // Allocations of any size from the heap, and freed memory never returned.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

Group create_file(const std::string& path) {
  (void)kQuiet;
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) throw Error("cannot create '" + path + "'");
  Handle file_handle(file);
  Handle root(
      check(H5Gopen2(file, "/", H5P_DEFAULT), "cannot open the root group of '" + path + "'"));
  return Group(std::move(root), path + ":/");
}

}  // namespace splitinfer::h5
