// Container images built on this machine, without a registry or a builder:
// an OCI image layout (one uncompressed layer) written as the tar archive
// that `ctr images import` takes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace nq::testing {

struct ImageEntry {
  std::string path;              // inside the image, relative ("bin/busybox")
  std::filesystem::path source;  // host file to copy; empty for a directory or a symlink
  std::string link_target;       // non-empty: a symlink to this
  unsigned mode = 0755;
};

struct ImageSpec {
  std::string name;  // "nq.local/busybox:1": the reference containerd records
  std::vector<ImageEntry> entries;
  std::vector<std::string> entrypoint;
  std::vector<std::string> env = {"PATH=/bin"};
};

// A ustar archive of `entries` (the layer). Directories first as given;
// file contents read from their sources.
Result<std::string> build_layer(const std::vector<ImageEntry>& entries);

// The OCI layout (oci-layout, index.json with the image name in the
// io.containerd.image.name annotation, blobs/sha256/...) as a tar at `out`.
Status write_oci_archive(const ImageSpec& spec, const std::filesystem::path& out);

// Hex sha256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace nq::testing
