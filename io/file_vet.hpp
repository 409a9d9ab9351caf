#pragma once
// The process side of vetting (io/hdf5.hpp, set_vet_program): runs the
// vetting program on a file in a child process and turns how it ended into
// nothing (it read the file) or an Error naming the file.
#include <string>

namespace splitinfer::h5 {

// Runs `program FILE` with a deadline that grows with the file's size; the
// child limits its own address space (vet_main). Throws Error with the
// child's one line when it exited 1, or naming `path` as corrupt when it was
// killed by a signal, ran out of memory or outlived the deadline.
void vet_in_child(const std::string& program, const std::string& path);

// For vet_main: limits this process's address space to what vetting `path`
// may take (a few GiB beyond the file's size); a no-op in sanitized builds,
// whose shadow memory needs terabytes of address space.
void limit_vetting_memory(const std::string& path);

}  // namespace splitinfer::h5
