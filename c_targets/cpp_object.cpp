/*
 * cpp_object.cpp - a leaked C++ object that owns heap memory.
 *
 * leak_owner() news an Owner (56 bytes: a std::vector<int> and a
 * std::string) and drops the pointer.  The vector's buffer (reserve(16):
 * 64 bytes) and the string's buffer (40 characters, past the 15-character
 * SSO buffer: 41 bytes) are reachable only through the object: valgrind
 * reports the object definitely lost and both buffers indirectly lost.
 *
 * Not declared on any line: libstdc++'s emergency exception-handling pool
 * (72,704 bytes, 1 block), malloc'ed by libstdc++'s own start-up code
 * before main.  With --run-cxx-freeres=no it is never freed and valgrind
 * reports it "still reachable"; it is counted in the expect-summary.
 */
#include <cstring>
#include <string>
#include <vector>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=56/1 indirect=105/2 possible=0/0 reachable=72704/1

struct Owner {
    std::vector<int> numbers;
    std::string name;
};

static __attribute__((noinline)) void leak_owner()
{
    Owner *o = new Owner; // expect: leak bytes=56 blocks=1 kind=definite
    o->numbers.reserve(16); // expect: leak bytes=64 blocks=1 kind=indirect
    for (int i = 0; i < 10; i++)
        o->numbers.push_back(i * i);
    o->name.assign("forty characters, well past the SSO size"); // expect: leak bytes=41 blocks=1 kind=indirect
    ESCAPE(o);
    o = nullptr;
    ESCAPE(o);
}

static __attribute__((noinline)) void scribble()
{
    volatile char junk[4096];
    std::memset(const_cast<char *>(junk), 0, sizeof junk);
    ESCAPE(junk);
}

int main()
{
    leak_owner();
    scribble();
    return 0;
}
