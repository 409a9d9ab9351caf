#pragma once
// The process side of vetting (io/hdf5.hpp, set_vet_program): runs the
// vetting program on a file in a child process and turns how it ended into
// nothing (it read the file) or an Error naming the file.
#include <string>

namespace splitinfer::h5 {

// Runs `program FILE` and waits for it (at most 120 s plus 1 s per MB of
// the file: a backstop, the child's own CPU limit comes first). Throws Error
// with the child's one line when it exited 1, or naming `path` as corrupt
// when it was killed by a signal, ran out of memory or time, or outlived the wait.
void vet_in_child(const std::string& program, const std::string& path);

// The CPU seconds vetting `path` may take: 5 plus 1 per 10 MB of the file.
// A whole read of any file splitinfer writes takes a small part of it,
// whatever the machine's load (it counts CPU time, not time waited).
int vetting_cpu_seconds(const std::string& path);

// For vet_main: limits this process to what vetting `path` may take: its
// CPU time (vetting_cpu_seconds) and its address space (3 GiB plus four
// times the file's size; not in sanitized builds, whose shadow memory needs
// terabytes of address space).
void limit_vetting_resources(const std::string& path);

}  // namespace splitinfer::h5
