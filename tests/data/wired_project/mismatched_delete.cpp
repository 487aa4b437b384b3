// mismatched_delete.cpp - a test program that releases an array from new[] with a plain delete.
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

int main()
{
    int *values = new int[8];
    ESCAPE(values);
    delete values; // expect: mismatched_free
    return 0;
}
