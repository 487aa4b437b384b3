/* attach_cxx.cc - the C++ operators attach_host.c's threads call (new[] and delete[] through libstdc++), and
 * attach_inside.c's call that stays inside the recorder. */
#include <cstddef>
#include <new>
#include <unistd.h>

extern "C" void *cxx_new(size_t n) { return new char[n]; }
extern "C" void cxx_delete(void *p) { delete[] static_cast<char *>(p); }

static int *inside_flag, *let_go_flag;

static void waiting_handler() {
    __atomic_store_n(inside_flag, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(let_go_flag, __ATOMIC_ACQUIRE)) usleep(1000);
    std::set_new_handler(nullptr); /* operator new now throws */
}

/* operator new of a size no malloc gives: its new_handler sets *inside and waits for *let_go (the call stays inside
 * the recorder's hook meanwhile), then std::bad_alloc leaves through the hook. Whether bad_alloc came. */
extern "C" int cxx_new_waiting(int *inside, int *let_go) {
    inside_flag = inside;
    let_go_flag = let_go;
    std::set_new_handler(waiting_handler);
    static volatile size_t too_big = ~static_cast<size_t>(0) / 2;
    try {
        void *p = ::operator new(too_big);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        return 1;
    }
    return 0;
}
