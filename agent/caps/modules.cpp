#include "agent/caps/modules.h"

#include <fcntl.h>
#include <linux/module.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/fd.h"

namespace nq {

ModuleLoad load_kernel_module(std::string_view name, std::string_view subdir,
                              const std::filesystem::path& modules_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists("/proc/modules", ec))
    return {false, "kernel built without loadable modules (no /proc/modules)"};
  utsname u{};
  if (::uname(&u) < 0) return {false, std::string("uname: ") + std::strerror(errno)};
  const fs::path tree = modules_dir / u.release;
  if (!fs::is_directory(tree, ec))
    return {false, "no module tree for " + std::string(u.release) + " at " + tree.string() +
                       " (mount the host's /lib/modules into the agent)"};
  const fs::path base = tree / subdir / std::string(name);
  for (const char* ext : {".ko", ".ko.xz", ".ko.zst", ".ko.gz"}) {
    const fs::path file = base.string() + ext;
    if (!fs::exists(file, ec)) continue;
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return {false, "open " + file.string() + ": " + std::strerror(errno)};
    // The kernel decompresses itself (5.17+) when told the file is compressed.
    const unsigned flags = std::strcmp(ext, ".ko") == 0 ? 0u : MODULE_INIT_COMPRESSED_FILE;
    if (::syscall(SYS_finit_module, fd.get(), "", flags) < 0) {
      const int err = errno;
      if (err == EEXIST) return {true, file.string() + " was loaded already"};
      return {false, "finit_module " + file.string() + ": " + std::strerror(err)};
    }
    return {true, "loaded " + file.string() + " with finit_module"};
  }
  return {false, "no " + std::string(name) + ".ko under " + (tree / subdir).string()};
}

}  // namespace nq
