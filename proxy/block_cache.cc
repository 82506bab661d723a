#include "proxy/block_cache.h"

#include <sanitizer/asan_interface.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fd::proxy::block_cache {
namespace {

constexpr size_t GRANULE = 64;
constexpr size_t CLASSES = MAX_BLOCK / GRANULE;
constexpr uint32_t UNCACHED = UINT32_MAX;

// In front of every block. The list link lives here rather than in the block, so that a
// cached block stays poisoned whole under AddressSanitizer.
struct alignas(std::max_align_t) Header {
  uint32_t cls;
  union {
    size_t size;   // UNCACHED: the usable size
    Header* next;  // a class block on its free list
  };
};

size_t capacity(const Header* h) {
  return h->cls == UNCACHED ? h->size : (h->cls + 1) * GRANULE;
}

Header* header_of(void* p) {
  return static_cast<Header*>(p) - 1;
}

// Trivially destructible, so that a block freed during thread exit, after the Reaper ran,
// still finds valid storage (and |closed|).
struct Lists {
  Header* head[CLASSES];
  size_t count[CLASSES];
  bool closed;
};
thread_local Lists lists;

// Frees what the thread holds when it ends; blocks released after that go to free().
struct Reaper {
  bool armed = false;
  ~Reaper() {
    for (size_t c = 0; c < CLASSES; ++c) {
      while (Header* h = lists.head[c]) {
        lists.head[c] = h->next;
        std::free(h);
      }
      lists.count[c] = 0;
    }
    lists.closed = true;
  }
};
thread_local Reaper reaper;

Header* from_malloc(size_t usable) {
  auto* h = static_cast<Header*>(std::malloc(sizeof(Header) + usable));
  if (h == nullptr) {
    throw std::bad_alloc();
  }
  return h;
}

void* nghttp2_malloc(size_t size, void*) {
  try {
    return allocate(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void nghttp2_free(void* p, void*) {
  release(p);
}

void* nghttp2_calloc(size_t n, size_t size, void*) {
  if (size != 0 && n > SIZE_MAX / size) {
    return nullptr;
  }
  void* p = nghttp2_malloc(n * size, nullptr);
  if (p != nullptr) {
    std::memset(p, 0, n * size);
  }
  return p;
}

void* nghttp2_realloc(void* p, size_t size, void*) {
  if (p == nullptr) {
    return nghttp2_malloc(size, nullptr);
  }
  Header* h = header_of(p);
  size_t have = capacity(h);
  if (size <= have) {
    return p;
  }
  if (h->cls == UNCACHED) {
    auto* grown = static_cast<Header*>(std::realloc(h, sizeof(Header) + size));
    if (grown == nullptr) {
      return nullptr;
    }
    grown->size = size;
    return grown + 1;
  }
  void* moved = nghttp2_malloc(size, nullptr);
  if (moved != nullptr) {
    std::memcpy(moved, p, have);
    release(p);
  }
  return moved;
}

nghttp2_mem allocator = {nullptr, &nghttp2_malloc, &nghttp2_free, &nghttp2_calloc,
                         &nghttp2_realloc};

}  // namespace

void* allocate(size_t size) {
  if (size > MAX_BLOCK) {
    Header* h = from_malloc(size);
    h->cls = UNCACHED;
    h->size = size;
    return h + 1;
  }
  size_t cls = size == 0 ? 0 : (size - 1) / GRANULE;
  Header* h = lists.head[cls];
  if (h != nullptr) {
    lists.head[cls] = h->next;
    --lists.count[cls];
    ASAN_UNPOISON_MEMORY_REGION(h + 1, capacity(h));
    return h + 1;
  }
  h = from_malloc((cls + 1) * GRANULE);
  h->cls = static_cast<uint32_t>(cls);
  return h + 1;
}

void release(void* p) noexcept {
  if (p == nullptr) {
    return;
  }
  Header* h = header_of(p);
  if (h->cls == UNCACHED || lists.closed ||
      (lists.count[h->cls] + 1) * capacity(h) > CLASS_BUDGET) {
    std::free(h);
    return;
  }
  if (lists.count[h->cls] == 0) {
    reaper.armed = true;  // the first use on a thread registers its destructor
  }
  ASAN_POISON_MEMORY_REGION(p, capacity(h));
  h->next = lists.head[h->cls];
  lists.head[h->cls] = h;
  ++lists.count[h->cls];
}

size_t cached_blocks() {
  size_t n = 0;
  for (size_t c = 0; c < CLASSES; ++c) {
    n += lists.count[c];
  }
  return n;
}

nghttp2_mem* nghttp2_allocator() {
  return &allocator;
}

}  // namespace fd::proxy::block_cache
