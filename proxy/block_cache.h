#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>

namespace fd::proxy {

// Per-thread caches of freed memory blocks by size class, for what is made and destroyed once
// per request or more: HTTP/2 streams, exchanges and nghttp2's own per-stream state. With
// hundreds of requests in flight, glibc's per-thread cache (7 blocks per size) runs dry and
// its bins split and merge chunks on every call; popping a block off a list does not.
//
// Blocks up to MAX_BLOCK bytes are cached, at most CLASS_BUDGET bytes of them per size class
// and thread; larger ones, and blocks freed while their class is full, go back to free().
// A block may be freed on any thread: it joins that thread's cache. Under AddressSanitizer a
// cached block is poisoned, so that a use after free is still reported.
namespace block_cache {

inline constexpr size_t MAX_BLOCK = 2048;
inline constexpr size_t CLASS_BUDGET = 512 * 1024;

// |size| bytes aligned for any type; throws std::bad_alloc when memory runs out.
void* allocate(size_t size);
// Frees a block from allocate(); |p| may be nullptr.
void release(void* p) noexcept;
// Blocks this thread holds for reuse.
size_t cached_blocks();

// nghttp2's allocator over these caches, for nghttp2_session_server_new3.
nghttp2_mem* nghttp2_allocator();

}  // namespace block_cache

// A base for types made once per request: their new and delete go through the block cache.
struct BlockCached {
  static void* operator new(size_t size) { return block_cache::allocate(size); }
  static void operator delete(void* p) noexcept { block_cache::release(p); }
};

}  // namespace fd::proxy
