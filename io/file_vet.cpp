#include "file_vet.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "../src/error.hpp"
#include "../src/format.hpp"

extern char** environ;

namespace splitinfer::h5 {
namespace {

uint64_t file_size(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 ? static_cast<uint64_t>(status.st_size) : 0;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// A file descriptor closed when it goes out of scope.
struct Descriptor {
  int fd = -1;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

int vetting_cpu_seconds(const std::string& path) {
  return 5 + static_cast<int>(file_size(path) / 10000000);
}

void limit_vetting_resources(const std::string& path) {
  const rlim_t seconds = static_cast<rlim_t>(vetting_cpu_seconds(path));
  const struct rlimit cpu {seconds, seconds + 1};  // SIGXCPU at the first, SIGKILL after
  ::setrlimit(RLIMIT_CPU, &cpu);
  if (kSanitized) return;
  // Every dataset a reader accepts is at most 2^28 elements of 8 bytes (2 GiB),
  // read once into memory; HDF5's caches and the program take little more.
  const rlim_t limit = (rlim_t{3} << 30) + 4 * static_cast<rlim_t>(file_size(path));
  const struct rlimit bound {limit, limit};
  ::setrlimit(RLIMIT_AS, &bound);
}

void vet_in_child(const std::string& program, const std::string& path) {
  const double seconds = 120.0 + static_cast<double>(file_size(path)) / 1e6;
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0)
    throw Error("cannot vet '" + path + "': pipe: " + std::strerror(errno));
  Descriptor reader{ends[0]}, writer{ends[1]};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, writer.fd, STDOUT_FILENO);
  // A sanitizer's report or HDF5's own messages would not be one line.
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(path.c_str()),
                             nullptr};
  pid_t child = -1;
  const int spawned = ::posix_spawn(&child, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0)
    throw Error("cannot start '" + program + "' to vet '" + path + "': " + std::strerror(spawned));
  ::close(writer.fd);
  writer.fd = -1;

  std::string message;
  bool late = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      late = true;
      break;
    }
    pollfd wait{reader.fd, POLLIN, 0};
    const int ready = ::poll(&wait, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t got = ::read(reader.fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // the child closed its end: it is ending
    if (message.size() < 65536) message.append(buffer, static_cast<size_t>(got));
  }
  if (late) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (late)
    throw Error("'" + path + "' could not be vetted: its reader did not end within " +
                std::to_string(static_cast<int>(seconds)) + " s");
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && !message.empty()) throw Error(message);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
    throw Error("'" + path + "' is corrupt: reading it took more than " +
                std::to_string(vetting_cpu_seconds(path)) +
                " s of CPU time (the HDF5 library loops on it)");
  const std::string how =
      WIFSIGNALED(status) ? std::string("killed by signal ") + std::to_string(WTERMSIG(status)) +
                                " (" + printable(strsignal(WTERMSIG(status))) + ")"
                          : "exit status " + std::to_string(WEXITSTATUS(status));
  throw Error("'" + path + "' is corrupt: the HDF5 library failed reading it (" + how +
              ", out of memory or a crash)");
}

}  // namespace splitinfer::h5
