#pragma once
// The run's exit status, for the launcher wrapper jobs/lib/common.sh
// (splitinfer_mpirun). OpenMPI 4.1's mpirun with Debian's PMIx 4 now and then
// crashes (SIGSEGV in PMIx_server_finalize) while it tears a job down, after
// its ranks have ended: its own status then says nothing of the run. So when
// SPLITINFER_STATUS_FILE names a file, the rank that decides the run's status
// (rank 0 at the end, or any rank ending the job with MPI_Abort) writes it
// there first, and the wrapper believes the file over a crashed mpirun.
namespace splitinfer {

void record_exit_status(int status);

}  // namespace splitinfer
