// A blocking HTTP request with libcurl, for the kill switch endpoint tests.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

namespace nq::testing {

struct HttpAnswer {
  long status = 0;  // 0: no answer (curl_error says why)
  std::string body;
  std::string curl_error;
};

inline HttpAnswer http_call(const std::string& method, const std::string& url,
                            const std::string& bearer = "", const std::string& body = "") {
  HttpAnswer out;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  if (!body.empty()) curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr,
                                                                      &curl_slist_free_all);
  if (!bearer.empty()) {
    headers.reset(curl_slist_append(nullptr, ("Authorization: Bearer " + bearer).c_str()));
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  }
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &out.body);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* o) -> size_t {
        static_cast<std::string*>(o)->append(p, size * n);
        return size * n;
      });
  const CURLcode rc = curl_easy_perform(curl.get());
  if (rc != CURLE_OK) {
    out.curl_error = curl_easy_strerror(rc);
    return out;
  }
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &out.status);
  return out;
}

}  // namespace nq::testing
