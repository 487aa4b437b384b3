/* attach_cxx.cc - the C++ operators attach_host.c's threads call (new[] and delete[] through libstdc++). */
#include <cstddef>

extern "C" void *cxx_new(size_t n) { return new char[n]; }
extern "C" void cxx_delete(void *p) { delete[] static_cast<char *>(p); }
