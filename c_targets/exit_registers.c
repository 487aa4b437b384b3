/*
 * exit_registers.c - the last pointer to a block sits in a caller-saved register when the program calls _exit.
 *
 * _exit never returns, so rax, rcx, rdx, rsi, rdi and r8-r11 of the exiting thread are dead there: valgrind,
 * which checks after the exit_group system call, reports the block definitely lost. At -O0 the pointer stays in
 * rax after `p = NULL` (the store to the stack slot is overwritten; the register is not).
 */
#include <stdlib.h>
#include <unistd.h>

// expect-exit: code=0
// expect-summary: definite=222/1 indirect=0/0 possible=0/0 reachable=0/0

int main(void)
{
    char *volatile p = malloc(222); // expect: leak bytes=222 kind=definite
    p = NULL;
    _exit(0);
}
