#include "proxy/deferred_writes.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include <string>

namespace fd::proxy {
namespace {

// Events on a base set up as EventLoop sets up its own. Each one appends its name to order_
// when it runs; a waiting write also leaves the queue, as SocketTransport's does.
class DeferredWritesTest : public ::testing::Test {
 protected:
  struct Named {
    DeferredWritesTest* test;
    char name;
    event* ev = nullptr;
    event* then = nullptr;  // activated by this one's callback
  };

  DeferredWritesTest() : base_(event_base_new()) {
    event_base_priority_init(base_, DeferredWrites::PRIORITIES);
  }
  ~DeferredWritesTest() override {
    for (Named* n : {&w_, &x_, &n_, &m_}) {
      event_free(n->ev);
    }
    event_base_free(base_);
  }

  void SetUp() override {
    for (Named* n : {&w_, &x_, &n_, &m_}) {
      n->ev = event_new(base_, -1, 0, &DeferredWritesTest::on_event, n);
    }
  }

  static void on_event(evutil_socket_t, short, void* arg) {
    auto* n = static_cast<Named*>(arg);
    n->test->writes_.forget(n->ev);
    n->test->order_ += n->name;
    if (n->then != nullptr) {
      event_active(n->then, EV_WRITE, 0);
    }
  }

  // Runs until every active callback has run, as one EventLoop::run iteration does.
  void run_until_dry() { event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK); }

  event_base* base_;
  DeferredWrites writes_;
  Named w_{this, 'w'};
  Named x_{this, 'x'};
  Named n_{this, 'n'};
  Named m_{this, 'm'};
  std::string order_;
};

TEST_F(DeferredWritesTest, TheLoopIsBusyFromItsEighthReadUntilACycleWithFewer) {
  EXPECT_FALSE(writes_.busy());
  for (int i = 1; i < DeferredWrites::BUSY_READS; ++i) {
    writes_.note_read();
  }
  EXPECT_FALSE(writes_.busy());
  writes_.note_read();
  EXPECT_TRUE(writes_.busy());
  writes_.ran_dry();
  EXPECT_TRUE(writes_.busy()) << "the next cycle starts busy after a busy one";
  writes_.note_read();
  writes_.ran_dry();
  EXPECT_FALSE(writes_.busy());
}

TEST_F(DeferredWritesTest, AWaitingWriteRunsAfterAllWorkThatBecameReadyBehindIt) {
  writes_.defer(w_.ev);
  writes_.defer(x_.ev);
  n_.then = m_.ev;
  event_active(n_.ev, EV_READ, 0);
  EXPECT_EQ(writes_.waiting(), 2u);
  run_until_dry();
  // m became ready only while n ran, and still went first: the writes waited for a dry loop,
  // then left in the order they were deferred.
  EXPECT_EQ(order_, "nmwx");
  EXPECT_EQ(writes_.waiting(), 0u);
}

TEST_F(DeferredWritesTest, ReadsPastTheBudgetSendTheWaitingWritesAtTheNormalPriority) {
  writes_.defer(w_.ev);
  for (int i = 1; i < DeferredWrites::BUDGET; ++i) {
    writes_.note_read();
  }
  EXPECT_EQ(writes_.waiting(), 1u);
  writes_.note_read();
  EXPECT_EQ(writes_.waiting(), 0u);
  event_active(n_.ev, EV_READ, 0);
  run_until_dry();
  EXPECT_EQ(order_, "wn") << "promoted, w is ahead of what became ready after it";
}

TEST_F(DeferredWritesTest, AWriteThatRanStartsTheBudgetAfresh) {
  writes_.defer(w_.ev);
  for (int i = 1; i < DeferredWrites::BUDGET; ++i) {
    writes_.note_read();
  }
  run_until_dry();
  EXPECT_EQ(order_, "w");
  writes_.defer(x_.ev);
  writes_.note_read();
  EXPECT_EQ(writes_.waiting(), 1u) << "one read into a new wait does not promote it";
}

TEST_F(DeferredWritesTest, AForgottenWriteNeitherRunsNorIsPromoted) {
  writes_.defer(w_.ev);
  event_del(w_.ev);
  writes_.forget(w_.ev);
  EXPECT_EQ(writes_.waiting(), 0u);
  for (int i = 0; i < DeferredWrites::BUDGET; ++i) {
    writes_.note_read();
  }
  run_until_dry();
  EXPECT_EQ(order_, "");
}

}  // namespace
}  // namespace fd::proxy
