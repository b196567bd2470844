#include "controller/prom/client.h"

#include <curl/curl.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

namespace nq::prom {
namespace {

using json = nlohmann::json;

// Prometheus sends sample values as strings ("1.5", "NaN", "+Inf") so that
// they survive JSON, which has no NaN or infinities.
Result<double> parse_value(const json& pair, const std::string& field) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_string())
    return Error::invalid_argument(field, "not a [timestamp, \"value\"] pair");
  const std::string text = pair[1].get<std::string>();
  if (text == "NaN") return std::nan("");
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    return Error::invalid_argument(field, "\"" + text + "\" is not a number");
  return v;
}

Code code_for_error_type(const std::string& type) {
  if (type == "bad_data") return Code::kInvalidArgument;
  if (type == "timeout") return Code::kDeadlineExceeded;
  if (type == "canceled") return Code::kCancelled;
  if (type == "unavailable") return Code::kUnavailable;
  return Code::kInternal;  // "execution", "internal", unknown
}

struct CurlFree {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
  void operator()(char* s) const noexcept { curl_free(s); }
};

}  // namespace

Result<QueryResult> parse_query_response(std::string_view body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error::invalid_argument("response", "not a JSON object");
  const std::string status = j.value("status", "");
  if (status == "error") {
    const std::string type = j.value("errorType", "unknown");
    return Error::status(
        code_for_error_type(type),
        "prometheus: " + type + ": " + j.value("error", std::string("(no message)")));
  }
  if (status != "success")
    return Error::invalid_argument("response.status", "\"" + status + "\" is not success or error");
  auto data = j.find("data");
  if (data == j.end() || !data->is_object())
    return Error::invalid_argument("response.data", "missing");
  const std::string type = data->value("resultType", "");
  auto result = data->find("result");
  if (result == data->end()) return Error::invalid_argument("response.data.result", "missing");

  QueryResult out;
  if (auto w = j.find("warnings"); w != j.end() && w->is_array())
    for (const auto& s : *w)
      if (s.is_string()) out.warnings.push_back(s.get<std::string>());
  if (type == "scalar") {
    out.type = QueryResult::Type::kScalar;
    Sample s;
    NQ_ASSIGN_OR_RETURN(s.value, parse_value(*result, "response.data.result"));
    s.timestamp = (*result)[0].get<double>();
    out.samples.push_back(std::move(s));
    return out;
  }
  if (type != "vector")
    return Error::invalid_argument(
        "response.data.resultType",
        "\"" + type + "\" (only vector and scalar results are supported)");
  if (!result->is_array()) return Error::invalid_argument("response.data.result", "not an array");
  for (size_t i = 0; i < result->size(); ++i) {
    const json& item = (*result)[i];
    const std::string field = "response.data.result[" + std::to_string(i) + "]";
    if (!item.is_object()) return Error::invalid_argument(field, "not an object");
    Sample s;
    if (auto m = item.find("metric"); m != item.end() && m->is_object())
      for (const auto& [k, v] : m->items())
        if (v.is_string()) s.labels[k] = v.get<std::string>();
    auto value = item.find("value");
    if (value == item.end()) return Error::invalid_argument(field + ".value", "missing");
    NQ_ASSIGN_OR_RETURN(s.value, parse_value(*value, field + ".value"));
    s.timestamp = (*value)[0].get<double>();
    out.samples.push_back(std::move(s));
  }
  return out;
}

Result<QueryResult> PromClient::query(const std::string& promql) {
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return Error::internal("curl_easy_init failed");
  std::unique_ptr<char, CurlFree> escaped(
      curl_easy_escape(curl.get(), promql.data(), static_cast<int>(promql.size())));
  if (!escaped) return Error::internal("curl_easy_escape failed");
  std::string base = options_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = base + "/api/v1/query?query=" + escaped.get();

  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.timeout.count()));
  // Without it libcurl uses signals for DNS timeouts, which is unsafe in a
  // threaded process.
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(
      curl.get(), CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t n, void* out) -> size_t {
        static_cast<std::string*>(out)->append(p, size * n);
        return size * n;
      });
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr,
                                                                      &curl_slist_free_all);
  if (!options_.bearer_token.empty()) {
    const std::string h = "Authorization: Bearer " + options_.bearer_token;
    headers.reset(curl_slist_append(nullptr, h.c_str()));
    curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers.get());
  }

  const CURLcode rc = curl_easy_perform(curl.get());
  const std::string context = "prometheus query " + promql;
  if (rc != CURLE_OK) {
    const std::string what = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return Error::status(
        rc == CURLE_OPERATION_TIMEDOUT ? Code::kDeadlineExceeded : Code::kUnavailable,
        context + ": " + what);
  }
  long http = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &http);
  // Prometheus answers 400/422/503 with the error JSON; parse it for the message.
  auto parsed = parse_query_response(body);
  if (!parsed.ok()) {
    if (http != 200 && parsed.error().status_code() == Code::kInvalidArgument &&
        parsed.error().context().rfind("prometheus:", 0) != 0)
      return Error::unavailable(context + ": HTTP " + std::to_string(http));
    return std::move(parsed).error().wrapped(context);
  }
  return parsed;
}

}  // namespace nq::prom
