/*
 * cpp_inlined_O2.cpp - leaks made through inlined calls, built with -O2 (see the Makefile: *_O2 targets).
 *
 * At -O2 g++ inlines std::vector::resize and push_back, std::string's
 * constructor and operator=, and the user's own fill() into leak_holder():
 * the call into the allocator comes from one PC that stands for several
 * source frames.  valgrind expands them (`resize (stl_vector.h:1011)` then
 * `fill (cpp_inlined_O2.cpp:N)` then `leak_holder (...)` at the same
 * address); a leak must be shown at the user's line, never at a line of
 * stl_vector.h or basic_string.h.  At some of these addresses the line
 * table has several rows (GCC's location views): the line shown is the
 * last row's, as valgrind shows it (new_allocator.h:137, the call, not
 * :112, the size check merged into it).
 *
 * leak_holder() news a Holder (80 bytes: a std::vector<int>, a std::string
 * and a std::vector<std::string>) and drops it: valgrind reports it
 * definitely lost; indirectly lost: the int vector's buffer (argc * 100
 * ints: 400 bytes), the name's buffer (49 characters + NUL: 50 bytes, past
 * the 15-character SSO buffer), and for the tag the vector's buffer (one
 * std::string: 32 bytes) and the string's buffer (51 bytes).  The pointer
 * escapes through an empty asm, or -O2 would delete the allocation.
 *
 * Not declared on any line: libstdc++'s emergency exception-handling pool
 * (72,704 bytes, still reachable; see cpp_object.cpp).
 */
#include <cstring>
#include <string>
#include <vector>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=80/1 indirect=533/4 possible=0/0 reachable=72704/1

struct Holder {
    std::vector<int> numbers;
    std::string name;
    std::vector<std::string> tags;
};

static inline void fill(Holder *h, int n, const char *text)
{
    h->numbers.resize(n); // expect: leak bytes=400 blocks=1 kind=indirect
    h->name = text; // expect: leak bytes=50 blocks=1 kind=indirect
    h->tags.push_back(std::string(n / 2, 't')); // expect: leak bytes=83 blocks=2 kind=indirect
}

static __attribute__((noinline)) void leak_holder(int n, const char *text)
{
    Holder *h = new Holder; // expect: leak bytes=80 blocks=1 kind=definite
    fill(h, n, text);
    ESCAPE(h);
    h = nullptr;
    ESCAPE(h);
}

static __attribute__((noinline)) void scribble()
{
    volatile char junk[4096];
    std::memset(const_cast<char *>(junk), 0, sizeof junk);
    ESCAPE(junk);
}

int main(int argc, char **argv)
{
    (void)argv;
    leak_holder(argc * 100, "a name well past the fifteen-character SSO buffer");
    scribble();
    return 0;
}
