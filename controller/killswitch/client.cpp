#include "controller/killswitch/client.h"

#include <curl/curl.h>

#include <memory>

namespace nq::killswitch {

Result<HttpAnswer> request(const std::string& method, const std::string& url,
                           const std::string& token, const std::string& body, long timeout_ms) {
  HttpAnswer out;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) return Error::internal("curl_easy_init failed");
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (!body.empty()) curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(
      curl_slist_append(nullptr, ("Authorization: Bearer " + token).c_str()), &curl_slist_free_all);
  headers.reset(curl_slist_append(headers.release(), "Content-Type: application/json"));
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* o) -> size_t {
        static_cast<std::string*>(o)->append(p, size * n);
        return size * n;
      });
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) return Error::unavailable(method + " " + url + ": " + curl_easy_strerror(rc));
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &out.status);
  return out;
}

}  // namespace nq::killswitch
