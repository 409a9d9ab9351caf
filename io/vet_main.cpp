// splitinfer-vet FILE.h5: reads the whole file as splitinfer's readers do, in
// a process of its own, for open_file (io/hdf5.hpp, set_vet_program): exit 0,
// or 1 with the error on one line of standard output; a crash, a hang or a
// runaway allocation inside the HDF5 library ends this process, not theirs.
#include "hdf5.hpp"

int main(int argc, char** argv) { return splitinfer::h5::vet_main(argc, argv); }
