#include "proxy/block_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace fd::proxy {
namespace {

// Each test body runs on a thread of its own, so it starts from an empty cache, and the
// thread's end frees what it cached (LeakSanitizer checks that in the sanitizer build).
template <typename Body>
void on_fresh_thread(Body body) {
  std::thread t(body);
  t.join();
}

TEST(BlockCache, AFreedBlockServesTheNextRequestOfItsClass) {
  on_fresh_thread([] {
    void* a = block_cache::allocate(100);
    std::memset(a, 0xab, 100);
    block_cache::release(a);
    EXPECT_EQ(block_cache::cached_blocks(), 1u);
    void* b = block_cache::allocate(128);  // the same 64-byte class: 65..128
    EXPECT_EQ(b, a);
    EXPECT_EQ(block_cache::cached_blocks(), 0u);
    void* c = block_cache::allocate(129);  // the next class: a block of its own
    EXPECT_NE(c, a);
    block_cache::release(b);
    block_cache::release(c);
    EXPECT_EQ(block_cache::cached_blocks(), 2u);
  });
}

TEST(BlockCache, BlocksAreAlignedForAnyType) {
  on_fresh_thread([] {
    std::vector<void*> blocks;
    for (size_t size : {0, 1, 8, 63, 64, 65, 1000, 2048, 2049, 100000}) {
      void* p = block_cache::allocate(size);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t), 0u) << size;
      blocks.push_back(p);
    }
    for (void* p : blocks) {
      block_cache::release(p);
    }
  });
}

TEST(BlockCache, LargeBlocksAreNotKept) {
  on_fresh_thread([] {
    block_cache::release(block_cache::allocate(block_cache::MAX_BLOCK + 1));
    EXPECT_EQ(block_cache::cached_blocks(), 0u);
    block_cache::release(nullptr);
  });
}

TEST(BlockCache, AClassKeepsAtMostItsBudget) {
  on_fresh_thread([] {
    constexpr size_t keep = block_cache::CLASS_BUDGET / block_cache::MAX_BLOCK;
    std::vector<void*> blocks;
    for (size_t i = 0; i < keep + 10; ++i) {
      blocks.push_back(block_cache::allocate(block_cache::MAX_BLOCK));
    }
    for (void* p : blocks) {
      block_cache::release(p);
    }
    EXPECT_EQ(block_cache::cached_blocks(), keep);
  });
}

TEST(BlockCache, BlocksMayBeFreedOnAnotherThread) {
  void* p = nullptr;
  on_fresh_thread([&] { p = block_cache::allocate(200); });
  on_fresh_thread([&] {
    block_cache::release(p);
    EXPECT_EQ(block_cache::cached_blocks(), 1u);
    EXPECT_EQ(block_cache::allocate(256), p);
    block_cache::release(p);
  });
}

TEST(BlockCache, Nghttp2ReallocKeepsTheBytes) {
  on_fresh_thread([] {
    nghttp2_mem* mem = block_cache::nghttp2_allocator();
    auto* p = static_cast<unsigned char*>(mem->malloc(50, mem->mem_user_data));
    for (int i = 0; i < 50; ++i) {
      p[i] = static_cast<unsigned char>(i);
    }
    // Within the block's class: the same block.
    EXPECT_EQ(mem->realloc(p, 64, mem->mem_user_data), p);
    // To a larger class, then past the cached sizes.
    p = static_cast<unsigned char*>(mem->realloc(p, 1000, mem->mem_user_data));
    ASSERT_NE(p, nullptr);
    p = static_cast<unsigned char*>(mem->realloc(p, 100000, mem->mem_user_data));
    ASSERT_NE(p, nullptr);
    for (int i = 0; i < 50; ++i) {
      ASSERT_EQ(p[i], i);
    }
    p = static_cast<unsigned char*>(mem->realloc(p, 200000, mem->mem_user_data));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p[49], 49);
    mem->free(p, mem->mem_user_data);

    auto* z = static_cast<unsigned char*>(mem->calloc(10, 30, mem->mem_user_data));
    ASSERT_NE(z, nullptr);
    for (int i = 0; i < 300; ++i) {
      ASSERT_EQ(z[i], 0);
    }
    mem->free(z, mem->mem_user_data);
    EXPECT_EQ(mem->calloc(SIZE_MAX / 2, 4, mem->mem_user_data), nullptr);
  });
}

// GCC names AddressSanitizer with a macro, clang with a feature test.
#if defined(__SANITIZE_ADDRESS__)
#define FD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FD_TEST_ASAN 1
#endif
#endif

#if defined(FD_TEST_ASAN)
// A cached block is poisoned: touching it after release is reported like a use after free.
TEST(BlockCacheDeathTest, UseOfACachedBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto* p = static_cast<volatile char*>(block_cache::allocate(100));
        block_cache::release(const_cast<char*>(p));
        p[0] = 1;
      },
      "use-after-poison");
}
#endif

}  // namespace
}  // namespace fd::proxy
