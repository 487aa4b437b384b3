/*
 * libc_helpers.c - blocks the program never allocates itself: libc allocates them for it.
 *
 * strdup, strndup, asprintf and getline each return a heap buffer that
 * the program owns and never frees.  The allocator is called from inside
 * libc (__strdup, __strndup, __vasprintf_internal, getdelim), so the
 * stack recorded for each block starts in libc; the leak must still be
 * shown at the line of main that called the helper (the first frame in
 * the user's code), with the libc frame kept in the stack.
 *
 * getline reads a 200-character line from a file the program creates
 * (tmpfile()): glibc's getdelim mallocs 120 bytes, then reallocs to
 * 2 * 120 = 240 bytes for the 202 it needs.  The stream's own FILE and
 * buffer are freed by fclose.  asprintf formats into a stack buffer and
 * mallocs exactly the result's size (12 bytes here).  Nothing is printed,
 * so stdout never gets a buffer.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=291/4 indirect=0/0 possible=0/0 reachable=0/0

static const char NAME[] = "copied by strdup, 32 characters"; /* 31 characters + NUL */

static __attribute__((noinline)) FILE *file_with_one_long_line(void)
{
    FILE *f = tmpfile();
    if (f == NULL)
        return NULL;
    for (int i = 0; i < 200; i++)
        fputc('a' + i % 26, f);
    fputc('\n', f);
    rewind(f);
    return f;
}

int main(void)
{
    char *copy = strdup(NAME); // expect: leak bytes=32 kind=definite
    ESCAPE(copy);

    char *prefix = strndup(NAME, 6); // expect: leak bytes=7 kind=definite
    ESCAPE(prefix);

    char *text = NULL;
    if (asprintf(&text, "%s-%d", "answer", 4242) < 0) // expect: leak bytes=12 kind=definite
        return 1;
    ESCAPE(text);

    FILE *f = file_with_one_long_line();
    if (f == NULL)
        return 1;
    char *line = NULL;
    size_t capacity = 0;
    if (getline(&line, &capacity, f) != 201) // expect: leak bytes=240 kind=definite
        return 1;
    ESCAPE(line);
    fclose(f);

    copy = prefix = text = line = NULL;
    ESCAPE(copy);
    ESCAPE(prefix);
    ESCAPE(text);
    ESCAPE(line);
    return 0;
}
