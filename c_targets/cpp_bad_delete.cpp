/*
 * cpp_bad_delete.cpp - an invalid `delete` (of a stack object) and an invalid `delete[]` (of a `new` object's
 * interior), each skipped by the CLI as valgrind does, must not end tracking in that thread: the later `new[]` and
 * malloc are tracked and leak.
 */
#include <cstdlib>

#pragma GCC diagnostic ignored "-Wfree-nonheap-object" // the bad deletes are the point

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: signal=SIGABRT
// expect-cli-exit: code=0
// expect-summary: definite=108/2 indirect=0/0 possible=0/0 reachable=72704/1

int main()
{
    int x = 1;
    int *on_stack = &x;
    ESCAPE(on_stack);
    delete on_stack; // expect: invalid_free

    long *pair = new long[2];
    ESCAPE(pair);
    delete[] (pair + 1); // expect: invalid_free
    delete[] pair;

    int *array = new int[25]; // expect: leak bytes=100 kind=definite
    ESCAPE(array);
    array = nullptr;
    void *bytes = malloc(8); // expect: leak bytes=8 kind=definite
    ESCAPE(bytes);
    bytes = nullptr;
    return 0;
}
