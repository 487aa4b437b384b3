/*
 * heuristic_stdstring.cpp - an old-ABI std::string (built with
 * -D_GLIBCXX_USE_CXX11_ABI=0, see the Makefile) held at exit.
 *
 * The old ABI's std::string is one pointer to its characters, which sit
 * 24 bytes into a heap block after the length, capacity and reference
 * count: the only pointer to that block is an interior one.  valgrind's
 * `stdstring` heuristic (on by default) counts it as still reachable
 * ("of which reachable via heuristic: stdstring"); with
 * --leak-check-heuristics=none it is possibly lost.
 *
 * `held` keeps a std::string object (8 bytes) on the heap so that no
 * static destructor frees the characters at exit.  A second string is
 * also held through a pointer to its block's start (`other_rep`): a start
 * pointer wins, so that block is plainly reachable, not via the heuristic.
 *
 * Not declared on any line: libstdc++'s emergency pool (72,704 bytes),
 * still reachable.
 */
#include <string>

// expect-exit: code=0
// expect-summary: definite=0/0 indirect=0/0 possible=0/0 reachable=72849/5 stdstring=65/1

std::string *held;
std::string *other;
const void *other_rep;

static __attribute__((noinline)) void hold()
{
    held = new std::string("forty characters, well past the SSO size"); // expect: leak bytes=73 blocks=2 kind=reachable
}

static __attribute__((noinline)) void hold_by_start()
{
    other = new std::string("a second string, also held at its block"); // expect: leak bytes=72 blocks=2 kind=reachable
    other_rep = other->data() - 24;
}

int main()
{
    hold();
    hold_by_start();
    return 0;
}
