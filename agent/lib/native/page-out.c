// pageOut(start, end): madvise(MADV_PAGEOUT) over [start, end) of this process; 0, or the errno.
// MADV_PAGEOUT (Linux 5.4) reclaims what it can and never loses data: dirty pages stay without swap.
// trimHeap(): glibc's malloc_trim(0), which also hands back the free pages inside the heap, not only
// its top; true when it gave some back (false where the C library has no malloc_trim).
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static napi_value PageOut(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint64_t start = 0, end = 0;
  bool lossless = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_bigint_uint64(env, argv[0], &start, &lossless) != napi_ok || !lossless ||
      napi_get_value_bigint_uint64(env, argv[1], &end, &lossless) != napi_ok || !lossless || end <= start) {
    napi_throw_type_error(env, NULL, "pageOut(start, end): two bigints, start < end");
    return NULL;
  }
  int rc = madvise((void *)(uintptr_t)start, (size_t)(end - start), MADV_PAGEOUT);
  napi_value out;
  napi_create_int32(env, rc == 0 ? 0 : errno, &out);
  return out;
}

static napi_value TrimHeap(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  int released = malloc_trim(0);
#else
  int released = 0;
#endif
  napi_value out;
  napi_get_boolean(env, released != 0, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "pageOut", NAPI_AUTO_LENGTH, PageOut, NULL, &fn);
  napi_set_named_property(env, exports, "pageOut", fn);
  napi_create_function(env, "trimHeap", NAPI_AUTO_LENGTH, TrimHeap, NULL, &fn);
  napi_set_named_property(env, exports, "trimHeap", fn);
  return exports;
}
