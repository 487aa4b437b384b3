/*
 * cpp_string.cpp - a leaked heap object holding a std::string, made by a helper.
 *
 * make_record() news a Record (40 bytes: a long and a std::string) and
 * assigns it a 51-character name, past the 15-character SSO buffer, so
 * the string's 52-byte buffer comes from operator new called inside
 * libstdc++ (std::string::_M_replace -> _M_mutate, out of line in
 * libstdc++.so).  The record is dropped: valgrind reports it definitely
 * lost and the name's buffer indirectly lost.  The buffer's leak must be
 * shown at the user's line that assigned the name, with the libstdc++
 * frames kept in its stack.
 *
 * Not declared on any line: libstdc++'s emergency exception-handling pool
 * (72,704 bytes, still reachable; see cpp_object.cpp).
 */
#include <cstring>
#include <string>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=40/1 indirect=52/1 possible=0/0 reachable=72704/1

struct Record {
    long id;
    std::string name;
};

static __attribute__((noinline)) Record *make_record(long id, const char *name)
{
    Record *r = new Record; // expect: leak bytes=40 blocks=1 kind=definite
    r->id = id;
    r->name.assign(name); // expect: leak bytes=52 blocks=1 kind=indirect
    return r;
}

static __attribute__((noinline)) void drop_record()
{
    Record *r = make_record(7, "a record name well past the 15-character SSO buffer");
    ESCAPE(r);
    r = nullptr;
    ESCAPE(r);
}

static __attribute__((noinline)) void scribble()
{
    volatile char junk[4096];
    std::memset(const_cast<char *>(junk), 0, sizeof junk);
    ESCAPE(junk);
}

int main()
{
    drop_record();
    scribble();
    return 0;
}
