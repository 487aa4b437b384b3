/*
 * heuristic_multiple.cpp - an object held only through its second base.
 *
 * Both is a Left and a Right (each with virtual functions); `right` keeps
 * the Right* that `new Both` converts to, which points 16 bytes into the
 * block, at the Right sub-object's vtable pointer.  The only pointer to
 * the block is thus an interior one, but the word it points at and the
 * block's first word are both vtable addresses: valgrind's
 * `multipleinheritance` heuristic (on by default) counts the block as
 * still reachable ("of which reachable via heuristic:
 * multipleinheritance"); with --leak-check-heuristics=none it is possibly
 * lost.
 *
 * `tail` points 8 bytes into another Both, at Left's int, not at a vtable
 * pointer: no heuristic accepts it, that block stays possibly lost.
 *
 * Not declared on any line: libstdc++'s emergency pool (72,704 bytes),
 * still reachable.
 */

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=32/1 reachable=72736/2 multipleinheritance=32/1

struct Left {
    virtual ~Left() {}
    virtual int left() { return l; }
    int l = 1;
};

struct Right {
    virtual ~Right() {}
    virtual int right() { return r; }
    int r = 2;
};

struct Both : Left, Right {
    int left() override { return 3; }
    int right() override { return 4; }
};

Right *right;
int *tail;

static __attribute__((noinline)) void hold_by_second_base()
{
    right = new Both; // expect: leak bytes=32 blocks=1 kind=reachable
}

static __attribute__((noinline)) void hold_inside()
{
    Both *b = new Both; // expect: leak bytes=32 blocks=1 kind=possible
    tail = &b->l;
    b = nullptr;
    ESCAPE(b);
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
    hold_by_second_base();
    hold_inside();
    scribble();
    return 0;
}
