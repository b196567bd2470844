#include "common/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"

namespace nq {

Result<std::string> read_file(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + path.string());
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "read " + path.string());
    }
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

Status write_all(int fd, std::string_view data, std::string_view what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno(errno, "write " + std::string(what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Status write_knob(const std::filesystem::path& file, std::string_view value) {
  UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + file.string());
  if (::write(fd.get(), value.data(), value.size()) < 0)
    return Error::from_errno(errno, "write \"" + std::string(value) + "\" to " + file.string());
  return ok();
}

}  // namespace nq
