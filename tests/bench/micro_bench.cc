// Micro-benchmarks of the pure functions every proxied request runs through: parsing the
// client's head, rewriting it for the upstream, rewriting the answer, routing and balancing.
// They give the per-call cost of each step, to set against the proxy CPU per request that
// ../shared/bench measures end to end. Not run for timing by CTest (see tests/bench/CMakeLists).
#include <benchmark/benchmark.h>

#include <random>
#include <type_traits>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/balancer.h"
#include "proxy/header_rewrite.h"
#include "proxy/http1_parser.h"
#include "proxy/router.h"

namespace fd::proxy {
namespace {

// What a browser sends for a page behind the proxy: 9 headers, 477 bytes.
constexpr std::string_view BROWSER_REQUEST =
    "GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n"
    "Host: app.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=2b6f1c9e0d8a4f7b; theme=dark\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "\r\n";

// What the load generator of ../shared/bench sends.
constexpr std::string_view SMALL_REQUEST = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

// An application server's answer (uvicorn-like), 6 headers and a 13-byte body.
constexpr std::string_view APP_RESPONSE =
    "HTTP/1.1 200 OK\r\n"
    "date: Wed, 25 Nov 2026 10:00:00 GMT\r\n"
    "server: uvicorn\r\n"
    "content-type: application/json\r\n"
    "content-length: 13\r\n"
    "cache-control: no-store\r\n"
    "x-app-instance: worker-2\r\n"
    "\r\n"
    "{\"items\": []}";

class CountingHandler : public Http1Parser::Handler {
 public:
  bool on_head() override { return false; }
  void on_body(const char*, size_t len) override { body += len; }
  void on_message_complete() override { ++messages; }
  size_t body = 0;
  size_t messages = 0;
};

void parse(benchmark::State& state, Http1Parser::Kind kind, std::string_view bytes) {
  CountingHandler handler;
  Http1Parser parser(kind, &handler, 16 * 1024, 100);
  for (auto _ : state) {
    auto out = parser.execute(bytes.data(), bytes.size());
    if (out.status != Http1Parser::Status::message_done) {
      state.SkipWithError("the message did not parse");
      break;
    }
    parser.next_message();
  }
  benchmark::DoNotOptimize(handler.messages);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

void BM_ParseBrowserRequest(benchmark::State& state) {
  parse(state, Http1Parser::Kind::request, BROWSER_REQUEST);
}
BENCHMARK(BM_ParseBrowserRequest);

void BM_ParseSmallRequest(benchmark::State& state) {
  parse(state, Http1Parser::Kind::request, SMALL_REQUEST);
}
BENCHMARK(BM_ParseSmallRequest);

void BM_ParseAppResponse(benchmark::State& state) {
  parse(state, Http1Parser::Kind::response, APP_RESPONSE);
}
BENCHMARK(BM_ParseAppResponse);

template <typename Head>
Head parsed(Http1Parser::Kind kind, std::string_view bytes) {
  CountingHandler handler;
  Http1Parser parser(kind, &handler, 16 * 1024, 100);
  parser.execute(bytes.data(), bytes.size());
  if constexpr (std::is_same_v<Head, RequestHead>) {
    return parser.request();
  } else {
    return parser.response();
  }
}

void BM_BuildUpstreamRequest(benchmark::State& state) {
  RequestHead req = parsed<RequestHead>(Http1Parser::Kind::request, BROWSER_REQUEST);
  ForwardContext ctx{"203.0.113.7", "https", "9f2c4e1a7b3d5f60812a4c6e8b0d2f41"};
  std::string head;
  for (auto _ : state) {
    head.clear();
    build_upstream_request(req, ctx, &head);
    benchmark::DoNotOptimize(head.data());
  }
}
BENCHMARK(BM_BuildUpstreamRequest);

void BM_BuildDownstreamResponse(benchmark::State& state) {
  ResponseHead resp = parsed<ResponseHead>(Http1Parser::Kind::response, APP_RESPONSE);
  for (auto _ : state) {
    BodyFraming framing = response_framing(resp, false, false);
    std::string head = build_downstream_response(resp, framing, false);
    benchmark::DoNotOptimize(head.data());
  }
}
BENCHMARK(BM_BuildDownstreamResponse);

void BM_RequestHost(benchmark::State& state) {
  RequestHead req = parsed<RequestHead>(Http1Parser::Kind::request, BROWSER_REQUEST);
  for (auto _ : state) {
    std::string host = request_host(req);
    benchmark::DoNotOptimize(host.data());
  }
}
BENCHMARK(BM_RequestHost);

// A site with |rules| routes, each host with an /api and a catch-all rule; the request matches
// the last host's /api rule, the worst case of first-match routing.
void BM_Route(benchmark::State& state) {
  std::vector<Router::Rule> rules;
  int hosts = static_cast<int>(state.range(0)) / 2;
  for (int i = 0; i < hosts; ++i) {
    std::string host = "app" + std::to_string(i) + ".example.com";
    rules.push_back({host, "/api/", static_cast<size_t>(2 * i)});
    rules.push_back({host, "/", static_cast<size_t>(2 * i + 1)});
  }
  rules.push_back({"*.example.com", "/", 0});
  Router router(std::move(rules));
  std::string host = "app" + std::to_string(hosts - 1) + ".example.com";
  for (auto _ : state) {
    auto group = router.route(host, "/api/v1/items");
    benchmark::DoNotOptimize(group);
  }
}
BENCHMARK(BM_Route)->Arg(2)->Arg(20);

std::vector<Candidate> candidates(int n, bool equal_weights) {
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(Candidate{equal_weights ? 1 : 1 + i % 3, (i * 7) % 5, i % 4 != 3});
  }
  return out;
}

void BM_PickRoundRobin(benchmark::State& state) {
  auto c = candidates(static_cast<int>(state.range(0)), true);
  uint64_t ticket = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pick_round_robin(c, ticket++));
  }
}
BENCHMARK(BM_PickRoundRobin)->Arg(3)->Arg(32);

void BM_PickSmoothWeighted(benchmark::State& state) {
  auto c = candidates(static_cast<int>(state.range(0)), false);
  std::vector<int64_t> current(c.size(), 0);
  for (auto _ : state) {
    benchmark::DoNotOptimize(pick_smooth_weighted(c, &current));
  }
}
BENCHMARK(BM_PickSmoothWeighted)->Arg(3)->Arg(32);

void BM_PickLeastConn(benchmark::State& state) {
  auto c = candidates(static_cast<int>(state.range(0)), false);
  uint64_t ticket = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pick_least_conn(c, ticket++));
  }
}
BENCHMARK(BM_PickLeastConn)->Arg(3)->Arg(32);

void BM_PickRandomTwo(benchmark::State& state) {
  auto c = candidates(static_cast<int>(state.range(0)), false);
  std::mt19937_64 rng(42);
  for (auto _ : state) {
    benchmark::DoNotOptimize(pick_random_two(c, &rng));
  }
}
BENCHMARK(BM_PickRandomTwo)->Arg(3)->Arg(32);

}  // namespace
}  // namespace fd::proxy

BENCHMARK_MAIN();
