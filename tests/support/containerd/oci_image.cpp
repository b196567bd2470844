#include "tests/support/containerd/oci_image.h"

#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace nq::testing {
namespace {

using nlohmann::json;

// One 512-byte ustar header. Names fit in 100 bytes here (our images are
// tiny and flat), so no prefix field or pax extension is needed.
Result<std::string> tar_header(const std::string& name, char type, size_t size, unsigned mode,
                               const std::string& link) {
  if (name.size() >= 100 || link.size() >= 100)
    return Error::invalid_argument("entry.path", "longer than ustar's 99 bytes: " + name);
  char h[512] = {};
  std::memcpy(h, name.data(), name.size());
  std::snprintf(h + 100, 8, "%07o", mode & 07777);
  std::snprintf(h + 108, 8, "%07o", 0);
  std::snprintf(h + 116, 8, "%07o", 0);
  std::snprintf(h + 124, 12, "%011zo", size);
  std::snprintf(h + 136, 12, "%011o", 0);
  h[156] = type;
  std::memcpy(h + 157, link.data(), link.size());
  std::memcpy(h + 257, "ustar", 6);  // magic "ustar\0" + version "00"
  std::memcpy(h + 263, "00", 2);
  // The checksum is computed with its own field as spaces.
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  return std::string(h, sizeof(h));
}

void pad(std::string& tar) {
  tar.append((512 - tar.size() % 512) % 512, '\0');
}

Status add_file(std::string& tar, const std::string& name, std::string_view data, unsigned mode) {
  NQ_ASSIGN_OR_RETURN(std::string h, tar_header(name, '0', data.size(), mode, ""));
  tar += h;
  tar += data;
  pad(tar);
  return ok();
}

Result<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Error::from_errno(errno, "open " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += digits[md[i] >> 4];
    out += digits[md[i] & 15];
  }
  return out;
}

Result<std::string> build_layer(const std::vector<ImageEntry>& entries) {
  std::string tar;
  for (const ImageEntry& e : entries) {
    if (!e.link_target.empty()) {
      NQ_ASSIGN_OR_RETURN(std::string h, tar_header(e.path, '2', 0, 0777, e.link_target));
      tar += h;
    } else if (e.source.empty()) {
      NQ_ASSIGN_OR_RETURN(std::string h, tar_header(e.path + "/", '5', 0, e.mode, ""));
      tar += h;
    } else {
      NQ_ASSIGN_OR_RETURN(std::string data, read_file(e.source));
      NQ_TRY(add_file(tar, e.path, data, e.mode));
    }
  }
  tar.append(1024, '\0');  // end of archive
  return tar;
}

Status write_oci_archive(const ImageSpec& spec, const std::filesystem::path& out) {
  NQ_ASSIGN_OR_RETURN(std::string layer, build_layer(spec.entries));
  const std::string layer_digest = "sha256:" + sha256_hex(layer);
  const std::string config = json{{"architecture", "amd64"},
                                  {"os", "linux"},
                                  {"config", {{"Entrypoint", spec.entrypoint}, {"Env", spec.env}}},
                                  {"rootfs", {{"type", "layers"}, {"diff_ids", {layer_digest}}}}}
                                 .dump();
  const std::string manifest = json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config",
       {{"mediaType", "application/vnd.oci.image.config.v1+json"},
        {"digest", "sha256:" + sha256_hex(config)},
        {"size", config.size()}}},
      {"layers",
       {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
         {"digest", layer_digest},
         {"size", layer.size()}}}}}.dump();
  const std::string index = json{{"schemaVersion", 2},
                                 {"manifests",
                                  {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                    {"digest", "sha256:" + sha256_hex(manifest)},
                                    {"size", manifest.size()},
                                    {"annotations", {{"io.containerd.image.name", spec.name}}}}}}}
                                .dump();

  std::string tar;
  NQ_TRY(add_file(tar, "oci-layout", R"({"imageLayoutVersion":"1.0.0"})", 0644));
  NQ_TRY(add_file(tar, "index.json", index, 0644));
  for (const std::string* blob :
       std::initializer_list<const std::string*>{&layer, &config, &manifest})
    NQ_TRY(add_file(tar, "blobs/sha256/" + sha256_hex(*blob), *blob, 0644));
  tar.append(1024, '\0');
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  if (!f) return Error::from_errno(errno, "create " + out.string());
  f.write(tar.data(), static_cast<std::streamsize>(tar.size()));
  f.close();
  if (!f) return Error::from_errno(errno, "write " + out.string());
  return ok();
}

}  // namespace nq::testing
