/*
 * cpp_mismatch.cpp - C++ allocation/release pairs, right and wrong.
 *
 * Three releases by the wrong family (valgrind: "Mismatched free() / delete / delete []"); the block is still
 * released. `new` calling malloc inside libstdc++ is one block, allocator "new". One std::vector-owning object
 * leaks through `new` (definite) with its buffer (indirect).
 */
#include <cstdlib>
#include <vector>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=24/1 indirect=12/1 possible=0/0 reachable=72704/1

struct Holder {
    std::vector<int> values;
};

static __attribute__((noinline)) void leak_holder()
{
    Holder *h = new Holder; // expect: leak bytes=24 kind=definite
    h->values.resize(3); // expect: leak bytes=12 kind=indirect
    ESCAPE(h);
}

int main()
{
    int *array = new int[4];
    ESCAPE(array);
    delete array; // expect: mismatched_free

    int *raw = static_cast<int *>(malloc(sizeof(int)));
    ESCAPE(raw);
    delete raw; // expect: mismatched_free

    int *single = new int(7);
    ESCAPE(single);
    free(single); // expect: mismatched_free

    int *right = new int[2];
    ESCAPE(right);
    delete[] right;

    leak_holder();
    return 0;
}
