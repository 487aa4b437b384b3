/*
 * heuristic_newarray.cpp - a new[] array of objects with a destructor,
 * held through the pointer new[] returned.
 *
 * For a type with a non-trivial destructor, new T[n] allocates 8 more
 * bytes, stores n there (delete[] needs it) and returns the block's start
 * + 8: the only pointer to the block is an interior one.  valgrind's
 * `newarray` heuristic (on by default) accepts a pointer at + 8 when the
 * first word is a count n > 0 dividing the rest of the block, and counts
 * the block still reachable ("of which reachable via heuristic:
 * newarray"); with --leak-check-heuristics=none it is possibly lost.
 *
 * `odd` points 8 bytes into a block whose first word (7) does not divide
 * the 40 bytes after it: no heuristic accepts it, it stays possibly lost.
 *
 * Not declared on any line: libstdc++'s emergency pool (72,704 bytes),
 * still reachable.
 */
#include <cstdlib>
#include <cstring>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=48/1 reachable=72772/2 newarray=68/1

struct Cell {
    ~Cell() { value = 0; }
    int value = 7;
    int pad[2] = {0, 0};
};

Cell *cells;
char *odd;

static __attribute__((noinline)) void hold_array()
{
    cells = new Cell[5]; // expect: leak bytes=68 blocks=1 kind=reachable
}

static __attribute__((noinline)) void hold_odd()
{
    char *p = static_cast<char *>(std::malloc(48)); // expect: leak bytes=48 blocks=1 kind=possible
    std::memset(p, 0, 48);
    *reinterpret_cast<unsigned long *>(p) = 7;
    odd = p + 8;
    p = nullptr;
    ESCAPE(p);
}

static __attribute__((noinline)) void scribble()
{
    volatile char junk[4096];
    for (unsigned i = 0; i < sizeof junk; i++)
        junk[i] = 0;
    ESCAPE(junk);
}

int main()
{
    hold_array();
    hold_odd();
    scribble();
    return 0;
}
