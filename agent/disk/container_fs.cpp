#include "agent/disk/container_fs.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "common/file.h"

namespace nq::disk {

std::string join_under_root(std::string_view root, std::string_view container_path) {
  std::string out(root);
  while (!out.empty() && out.back() == '/') out.pop_back();
  if (container_path.empty() || container_path.front() != '/') out += '/';
  out += container_path;
  return out;
}

std::pair<std::string, std::string> split_parent(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  const size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return {"/", std::string(p)};
  std::string parent(p.substr(0, slash));
  if (parent.empty()) parent = "/";
  return {parent, std::string(p.substr(slash + 1))};
}

std::string fill_file_name(std::string_view id) {
  std::string s = ".nodequake-fill-";
  for (char c : id) s += c == '/' ? '_' : c;
  return s;
}

Result<UniqueFd> open_root(pid_t pid, const std::string& proc) {
  const std::string path = proc + "/" + std::to_string(pid) + "/root";
  UniqueFd fd(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno(errno, "open " + path);
  return fd;
}

Result<UniqueFd> open_in_root(int root_fd, std::string_view container_path, int flags,
                              std::string_view field) {
  // glibc 2.36 has no openat2() wrapper.
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const std::string path(container_path);
  const long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      return Error::not_found(std::string(field) + ": " + path +
                              " does not exist in the container");
    return Error::from_errno(err, std::string(field) + ": open " + path + " in the container");
  }
  return UniqueFd(static_cast<int>(fd));
}

Result<std::string> read_boot_id() {
  NQ_ASSIGN_OR_RETURN(std::string id, read_file("/proc/sys/kernel/random/boot_id"));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

}  // namespace nq::disk
