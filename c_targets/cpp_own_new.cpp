// cpp_own_new.cpp - a program that brings its own operator new and operator new[] (the C++ way to count or
// instrument allocations). Its operator new[] calls malloc itself and says so with printf: that printf is the
// program's first use of stdout, so stdio allocates stdout's buffer while operator new[] runs; an allocation that
// serves the program's operator, not the operator's own block. Its operator new gets its memory through a helper
// function. valgrind replaces both operators in the executable and never runs them (stdout's buffer is allocated by
// main's printf there): the same allocations, counted once each.
#include <cstdio>
#include <cstdlib>
#include <new>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=72/2 indirect=0/0 possible=0/0 reachable=76800/2

static __attribute__((noinline)) void *obtain(std::size_t size)
{
    void *block = std::malloc(size ? size : 1);
    if (block == nullptr)
        throw std::bad_alloc();
    return block;
}

void *operator new(std::size_t size)
{
    return obtain(size);
}

void *operator new[](std::size_t size)
{
    void *block = std::malloc(size ? size : 1);
    if (block == nullptr)
        throw std::bad_alloc();
    std::printf("operator new[] gave %zu bytes\n", size);
    return block;
}

struct sample {
    long values[3];
};

int main()
{
    sample *kept = new sample[2];       // expect: leak bytes=48 blocks=1 kind=definite
    ESCAPE(kept);
    kept = nullptr;
    long *scratch = new long[4];
    ESCAPE(scratch);
    delete[] scratch;
    sample *one = new sample;           // expect: leak bytes=24 blocks=1 kind=definite
    ESCAPE(one);
    one = nullptr;
    std::printf("done\n");
    return 0;
}
