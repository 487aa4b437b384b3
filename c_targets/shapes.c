/*
 * shapes.c - one small leaking program, built in every process shape (see the Makefile):
 *
 *   bin/shapes                      default build (PIE on Debian/Ubuntu)
 *   bin/shapes_pie                  -fPIE -pie
 *   bin/shapes_nopie                -fno-pie -no-pie
 *   bin/shapes_static               -static (glibc's malloc linked into the executable)
 *   bin/shapes_stripped             `strip` of bin/shapes: no symbols, no line table
 *   bin/libshapes.so + shapes_lib   the shape functions (SHAPES_LIBRARY) in the user's own shared library,
 *                                   main (SHAPES_PROGRAM) linked to it with rpath $ORIGIN
 *
 * Two leaks, both definitely lost: one of three 32-byte shapes (the other two are freed) and one
 * calloc'ed point array.  Everything else is freed, including a block grown with realloc.  Nothing is
 * printed.  The markers below hold for every build; in shapes_lib the two leaking lines run in
 * libshapes.so.
 */
#include <stdlib.h>
#include <string.h>

#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

// expect-exit: code=0
// expect-summary: definite=96/2 indirect=0/0 possible=0/0 reachable=0/0

struct shape {
    int sides;
    double size;
    char name[16];
};

struct shape *shape_new(int sides, double size, const char *name);
double *shape_points(const struct shape *s);
long shape_scratch(int rounds);

#ifndef SHAPES_PROGRAM  /* the shape functions: in the program, or alone in libshapes.so */

__attribute__((noinline)) struct shape *shape_new(int sides, double size, const char *name)
{
    struct shape *s = malloc(sizeof *s); // expect: leak bytes=32 kind=definite
    s->sides = sides;
    s->size = size;
    strncpy(s->name, name, sizeof s->name - 1);
    s->name[sizeof s->name - 1] = '\0';
    return s;
}

__attribute__((noinline)) double *shape_points(const struct shape *s)
{
    double *xy = calloc((size_t)s->sides, 2 * sizeof *xy); // expect: leak bytes=64 kind=definite
    for (int i = 0; i < s->sides; i++)
        xy[2 * i] = s->size * i;
    return xy;
}

__attribute__((noinline)) long shape_scratch(int rounds)
{
    long sum = 0;
    char *buf = malloc(16);
    for (int i = 0; i < rounds; i++) {
        buf = realloc(buf, 16 + 64 * (size_t)i);
        buf[0] = (char)i;
        sum += buf[0];
    }
    free(buf);
    return sum;
}

#endif

#ifndef SHAPES_LIBRARY  /* main: in the program, or in shapes_lib calling libshapes.so */

static __attribute__((noinline)) void drop(void *p)
{
    ESCAPE(p);
}

int main(void)
{
    struct shape *tri = shape_new(3, 1.5, "triangle");
    struct shape *sq = shape_new(4, 2.0, "square");
    struct shape *hex = shape_new(6, 0.5, "hexagon");
    double *points = shape_points(sq);
    ESCAPE(points);

    free(tri);
    free(hex);
    long sum = shape_scratch(4);
    ESCAPE(sum);

    drop(sq);  /* the square and its points are never freed */
    sq = NULL;
    points = NULL;
    ESCAPE(sq);
    ESCAPE(points);
    return 0;
}

#endif
