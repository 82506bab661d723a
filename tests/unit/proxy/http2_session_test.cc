// Http2Session and Http2Stream driven by an nghttp2 client session in the same process: bytes
// go back and forth through evbuffers, no sockets, no Exchange (the test handler answers).
#include "proxy/http2_session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace fd::proxy {
namespace {

struct ClientStream {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool ended = false;
  uint32_t reset_code = 0xffffffff;  // none
};

// The client half: an nghttp2 client session recording what it receives.
class Client {
 public:
  explicit Client(bool auto_window = true, int32_t initial_window = 65535) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Client::on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Client::on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Client::on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Client::on_close);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, auto_window ? 0 : 1);
    nghttp2_session_client_new2(&session, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(initial_window)}};
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~Client() { nghttp2_session_del(session); }

  int32_t request(const std::vector<std::pair<std::string, std::string>>& fields,
                  const std::string* body = nullptr) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : fields) {
      nva.push_back(
          {(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    upload = body != nullptr ? *body : std::string();
    upload_pos = 0;
    nghttp2_data_provider prd{};
    prd.source.ptr = this;
    prd.read_callback = &Client::read_upload;
    return nghttp2_submit_request(session, nullptr, nva.data(), nva.size(),
                                  body != nullptr ? &prd : nullptr, nullptr);
  }

  static std::vector<std::pair<std::string, std::string>> get(const std::string& path) {
    return {
        {":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", path}};
  }

  nghttp2_session* session = nullptr;
  std::map<int32_t, ClientStream> streams;
  std::vector<int32_t> data_order;  // the stream of each DATA chunk, in arrival order
  bool goaway = false;
  int32_t goaway_last_stream = -1;
  uint32_t goaway_code = 0;
  std::string upload;
  size_t upload_pos = 0;

 private:
  static Client& self(void* p) { return *static_cast<Client*>(p); }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                       const uint8_t* v, size_t vl, uint8_t, void* p) {
    self(p).streams[f->hd.stream_id].headers.emplace_back(std::string((const char*)n, nl),
                                                          std::string((const char*)v, vl));
    return 0;
  }
  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* p) {
    self(p).streams[id].body.append((const char*)d, len);
    self(p).data_order.push_back(id);
    return 0;
  }
  static int on_frame(nghttp2_session*, const nghttp2_frame* f, void* p) {
    if (f->hd.type == NGHTTP2_GOAWAY) {
      self(p).goaway = true;
      self(p).goaway_last_stream = f->goaway.last_stream_id;
      self(p).goaway_code = f->goaway.error_code;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      self(p).streams[f->hd.stream_id].ended = true;
    }
    if (f->hd.type == NGHTTP2_RST_STREAM) {
      self(p).streams[f->hd.stream_id].reset_code = f->rst_stream.error_code;
    }
    return 0;
  }
  static int on_close(nghttp2_session*, int32_t, uint32_t, void*) { return 0; }
  static ssize_t read_upload(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* fl,
                             nghttp2_data_source* src, void*) {
    Client& c = *static_cast<Client*>(src->ptr);
    size_t n = std::min(len, c.upload.size() - c.upload_pos);
    std::memcpy(buf, c.upload.data() + c.upload_pos, n);
    c.upload_pos += n;
    if (c.upload_pos == c.upload.size()) {
      *fl |= NGHTTP2_DATA_FLAG_EOF;
    }
    return static_cast<ssize_t>(n);
  }
};

class Http2SessionTest : public ::testing::Test, public Http2Session::Handler {
 protected:
  Http2SessionTest() : out_(evbuffer_new()), in_(evbuffer_new()) {}
  ~Http2SessionTest() override {
    session_.reset();
    loop_run();  // deferred streams
    evbuffer_free(out_);
    evbuffer_free(in_);
  }

  void start(Http2Session::Settings settings = {}) {
    auto s = Http2Session::create(loop_, out_, *this, ClientInfo{"127.0.0.1", true}, settings);
    ASSERT_TRUE(s.has_value());
    session_ = std::move(*s);
    session_->send();
  }

  void on_stream_request(Http2Stream& stream) override {
    requests_.push_back(stream.take_request());
    streams_[stream.id()] = &stream;
    if (on_request) {
      on_request(stream);
    }
  }
  void on_session_activity() override { ++activity_; }

  void loop_run() { event_base_loop(loop_.base(), EVLOOP_NONBLOCK); }

  // Moves bytes both ways until neither side has anything to say.
  void pump(Client& c) {
    for (int i = 0; i < 1000; ++i) {
      bool moved = false;
      const uint8_t* data = nullptr;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(c.session, &data)) > 0) {
        evbuffer_add(in_, data, static_cast<size_t>(n));
        moved = true;
      }
      if (evbuffer_get_length(in_) > 0) {
        server_ok_ = session_->receive(in_) && server_ok_;
      }
      loop_run();
      size_t len = evbuffer_get_length(out_);
      if (len > 0) {
        std::string bytes(len, '\0');
        evbuffer_remove(out_, bytes.data(), len);
        nghttp2_session_mem_recv(c.session, (const uint8_t*)bytes.data(), len);
        moved = true;
        session_->send();  // the output buffer emptied, as a socket write would report
      }
      if (!moved) {
        return;
      }
    }
  }

  static std::string find(const std::vector<Header>& hs, const std::string& name) {
    for (const auto& h : hs) {
      if (h.name == name) {
        return h.value;
      }
    }
    return "<none>";
  }
  static std::string find(const ClientStream& s, const std::string& name) {
    for (const auto& [n, v] : s.headers) {
      if (n == name) {
        return v;
      }
    }
    return "<none>";
  }

  EventLoop loop_;
  evbuffer* out_;
  evbuffer* in_;
  std::unique_ptr<Http2Session> session_;
  std::vector<RequestHead> requests_;
  std::map<int32_t, Http2Stream*> streams_;
  std::function<void(Http2Stream&)> on_request;
  int activity_ = 0;
  bool server_ok_ = true;
};

void answer(Http2Stream& s, int status, const std::string& body, std::vector<Header> extra = {}) {
  ResponseHead head;
  head.status = status;
  head.headers = std::move(extra);
  head.headers.push_back({"Content-Length", std::to_string(body.size())});
  head.content_length = static_cast<int64_t>(body.size());
  s.send_head(head);
  s.send_body(body.data(), body.size());
  s.send_end();
}

TEST_F(Http2SessionTest, AnnouncesLimitsInSettings) {
  Http2Session::Settings settings;
  settings.max_header_list_size = 8192;
  start(settings);
  Client c;
  pump(c);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
            100u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
            8192u);
}

// RFC 9113 deprecates RFC 7540's priority tree: SETTINGS_NO_RFC7540_PRIORITIES says that
// responses are scheduled by RFC 9218 urgency instead. One of urgency 0 leaves before one of
// urgency 7 that was answered first.
TEST_F(Http2SessionTest, SchedulesResponsesByUrgency) {
  start();
  Client c;
  pump(c);
  EXPECT_EQ(nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES),
            1u);
  std::vector<Http2Stream*> answered_later;
  on_request = [&](Http2Stream& s) { answered_later.push_back(&s); };
  auto low = Client::get("/low");
  low.push_back({"priority", "u=7"});
  auto high = Client::get("/high");
  high.push_back({"priority", "u=0"});
  int32_t low_id = c.request(low);
  int32_t high_id = c.request(high);
  pump(c);
  ASSERT_EQ(answered_later.size(), 2u);
  std::string body(40000, 'x');
  for (Http2Stream* s : answered_later) {
    answer(*s, 200, body);
  }
  pump(c);
  ASSERT_EQ(c.streams[low_id].body, body);
  ASSERT_EQ(c.streams[high_id].body, body);
  auto first_low = std::find(c.data_order.begin(), c.data_order.end(), low_id);
  auto last_high = std::find(c.data_order.rbegin(), c.data_order.rend(), high_id).base();
  EXPECT_TRUE(last_high <= first_low) << "urgency 7 DATA came before urgency 0 was done";
}

TEST_F(Http2SessionTest, ConvertsRequestHeadForHttp1) {
  start();
  Client c;
  int32_t id = c.request({{":method", "GET"},
                          {":scheme", "https"},
                          {":authority", "Example.com:8443"},
                          {":path", "/p?q=1"},
                          {"host", "other.example"},
                          {"cookie", "a=1"},
                          {"x-custom", "yes"},
                          {"cookie", "b=2"}});
  pump(c);
  ASSERT_EQ(requests_.size(), 1u);
  const RequestHead& req = requests_[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.target, "/p?q=1");
  ASSERT_FALSE(req.headers.empty());
  EXPECT_EQ(req.headers[0].name, "host");
  EXPECT_EQ(req.headers[0].value, "Example.com:8443");  // :authority wins over Host
  int hosts = 0;
  for (const auto& h : req.headers) {
    hosts += h.name == "host" ? 1 : 0;
  }
  EXPECT_EQ(hosts, 1);
  EXPECT_EQ(find(req.headers, "cookie"), "a=1; b=2");
  EXPECT_EQ(find(req.headers, "x-custom"), "yes");
  EXPECT_FALSE(req.chunked);
  EXPECT_FALSE(req.has_body());
  EXPECT_EQ(id, 1);
}

TEST_F(Http2SessionTest, BodyWithoutLengthGoesChunked) {
  start();
  Client c;
  std::string body(1000, 'x');
  auto fields = Client::get("/up");
  fields[0].second = "POST";
  c.request(fields, &body);
  auto with_length = fields;
  with_length.emplace_back("content-length", "1000");
  c.request(with_length, &body);
  pump(c);
  ASSERT_EQ(requests_.size(), 2u);
  EXPECT_TRUE(requests_[0].chunked);
  EXPECT_EQ(requests_[0].content_length, -1);
  EXPECT_FALSE(requests_[1].chunked);
  EXPECT_EQ(requests_[1].content_length, 1000);
}

TEST_F(Http2SessionTest, ConnectionSpecificHeaderIsAStreamError) {
  start();
  Client c;
  auto fields = Client::get("/");
  fields.emplace_back("connection", "keep-alive");
  int32_t id = c.request(fields);
  pump(c);
  EXPECT_TRUE(requests_.empty());
  EXPECT_EQ(c.streams[id].reset_code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_FALSE(c.goaway);  // the connection stays usable
  on_request = [](Http2Stream& s) { answer(s, 200, "ok"); };
  int32_t id2 = c.request(Client::get("/"));
  pump(c);
  EXPECT_EQ(c.streams[id2].body, "ok");
}

TEST_F(Http2SessionTest, ResponseDropsConnectionSpecificHeaders) {
  start();
  on_request = [](Http2Stream& s) {
    answer(s, 201, "hello",
           {{"Connection", "close, X-Hop"}, {"X-Hop", "1"}, {"Keep-Alive", "x"}, {"X-Kept", "2"}});
  };
  Client c;
  int32_t id = c.request(Client::get("/"));
  pump(c);
  const ClientStream& s = c.streams[id];
  EXPECT_EQ(find(s, ":status"), "201");
  EXPECT_EQ(find(s, "x-kept"), "2");
  EXPECT_EQ(find(s, "connection"), "<none>");
  EXPECT_EQ(find(s, "x-hop"), "<none>");
  EXPECT_EQ(find(s, "keep-alive"), "<none>");
  EXPECT_EQ(find(s, "content-length"), "5");
  EXPECT_EQ(s.body, "hello");
  EXPECT_TRUE(s.ended);
}

TEST_F(Http2SessionTest, SlowReaderKeepsResponseInTheStream) {
  start();
  Http2Stream* stream = nullptr;
  on_request = [&](Http2Stream& s) {
    stream = &s;
    ResponseHead head;
    head.status = 200;
    head.chunked = true;
    s.send_head(head);
  };
  Client c(/*auto_window=*/false, /*initial_window=*/16384);
  int32_t id = c.request(Client::get("/big"));
  pump(c);
  ASSERT_NE(stream, nullptr);
  std::string mib(1 << 20, 'z');
  stream->send_body(mib.data(), mib.size());
  stream->send_end();
  pump(c);
  // The client acknowledged nothing: only its window left, the rest waits in the stream, where
  // buffered() makes an Exchange pause its upstream.
  EXPECT_EQ(c.streams[id].body.size(), 16384u);
  EXPECT_EQ(stream->buffered(), mib.size() - 16384);
  EXPECT_EQ(evbuffer_get_length(out_), 0u);
  // Reading resumes the flow until the end.
  for (int i = 0; i < 200 && !c.streams[id].ended; ++i) {
    size_t got = c.streams[id].body.size();
    nghttp2_session_consume(c.session, id, got - c.upload_pos);
    c.upload_pos = got;  // reused as "consumed so far"
    pump(c);
  }
  EXPECT_TRUE(c.streams[id].ended);
  EXPECT_EQ(c.streams[id].body, mib);
}

TEST_F(Http2SessionTest, PausedStreamStopsTheClientAtItsWindow) {
  Http2Session::Settings settings;
  settings.stream_window = 65536;
  start(settings);
  Http2Stream* stream = nullptr;
  on_request = [&](Http2Stream& s) {
    stream = &s;
    s.pause_request_body(true);  // what an Exchange does when its upstream is full
  };
  Client c;
  std::string body(1 << 20, 'u');
  auto fields = Client::get("/up");
  fields[0].second = "POST";
  int32_t id = c.request(fields, &body);
  pump(c);
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(c.upload_pos, 65536u);  // the client could not send more than the window
  EXPECT_EQ(nghttp2_session_get_stream_remote_window_size(c.session, id), 0);
  stream->pause_request_body(false);
  loop_run();
  pump(c);
  EXPECT_GT(c.upload_pos, 65536u);
  for (int i = 0; i < 100 && c.upload_pos < body.size(); ++i) {
    pump(c);
  }
  EXPECT_EQ(c.upload_pos, body.size());
}

TEST_F(Http2SessionTest, HeaderListOverTheLimitGets431) {
  Http2Session::Settings settings;
  settings.max_header_list_size = 4096;
  start(settings);
  Client c;
  auto fields = Client::get("/");
  fields.emplace_back("x-big", std::string(5000, 'b'));
  int32_t id = c.request(fields);
  pump(c);
  EXPECT_TRUE(requests_.empty());
  EXPECT_EQ(find(c.streams[id], ":status"), "431");
  EXPECT_TRUE(c.streams[id].ended);
}

TEST_F(Http2SessionTest, DrainSendsGoawayAndLetsOpenStreamsFinish) {
  start();
  Http2Stream* stream = nullptr;
  on_request = [&](Http2Stream& s) { stream = &s; };
  Client c;
  int32_t id = c.request(Client::get("/slow"));
  pump(c);
  ASSERT_NE(stream, nullptr);
  session_->drain();
  pump(c);
  EXPECT_TRUE(c.goaway);
  EXPECT_EQ(c.goaway_last_stream, id);
  EXPECT_EQ(c.goaway_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_FALSE(session_->finished());
  answer(*stream, 200, "done");
  pump(c);
  EXPECT_EQ(c.streams[id].body, "done");
  EXPECT_TRUE(c.streams[id].ended);
  EXPECT_TRUE(session_->finished());
}

TEST_F(Http2SessionTest, RapidResetEndsTheConnectionWithEnhanceYourCalm) {
  start();
  Client c;
  pump(c);
  int i = 0;
  for (; i < 3000 && !c.goaway; ++i) {
    int32_t id = c.request(Client::get("/r"));
    const uint8_t* data = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c.session, &data)) > 0) {
      evbuffer_add(in_, data, static_cast<size_t>(n));
    }
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump(c);
  }
  EXPECT_TRUE(c.goaway);
  EXPECT_EQ(c.goaway_code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM)) << "after " << i;
  EXPECT_TRUE(session_->finished());
}

// The error code of the first GOAWAY frame in |bytes| (server frames, no preface), or -1.
int64_t goaway_code(const std::string& bytes) {
  size_t pos = 0;
  while (pos + 9 <= bytes.size()) {
    auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[pos + i]); };
    size_t len = (size_t{byte(0)} << 16) | (size_t{byte(1)} << 8) | byte(2);
    if (byte(3) == NGHTTP2_GOAWAY && len >= 8 && pos + 9 + len <= bytes.size()) {
      pos += 9 + 4;
      return (int64_t{byte(0)} << 24) | (int64_t{byte(1)} << 16) | (int64_t{byte(2)} << 8) |
             byte(3);
    }
    pos += 9 + len;
  }
  return -1;
}

TEST_F(Http2SessionTest, UnacknowledgedSettingsEndTheConnection) {
  Http2Session::Settings settings;
  settings.settings_timeout = std::chrono::milliseconds(20);
  start(settings);
  // A client preface and an empty SETTINGS frame, and then nothing: our SETTINGS stay
  // unacknowledged.
  static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  evbuffer_add(in_, PREFACE, sizeof PREFACE - 1);
  const char settings_frame[9] = {0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0};
  evbuffer_add(in_, settings_frame, sizeof settings_frame);
  ASSERT_TRUE(session_->receive(in_));
  EXPECT_FALSE(session_->finished());
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  event_base_loop(loop_.base(), EVLOOP_ONCE);
  std::string out(evbuffer_get_length(out_), '\0');
  evbuffer_remove(out_, out.data(), out.size());
  EXPECT_EQ(goaway_code(out), NGHTTP2_SETTINGS_TIMEOUT);
  EXPECT_TRUE(session_->finished());
}

TEST_F(Http2SessionTest, AcknowledgedSettingsKeepTheConnection) {
  Http2Session::Settings settings;
  settings.settings_timeout = std::chrono::milliseconds(20);
  start(settings);
  Client c;
  pump(c);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  loop_run();
  pump(c);
  EXPECT_FALSE(c.goaway);
  EXPECT_FALSE(session_->finished());
}

}  // namespace
}  // namespace fd::proxy
