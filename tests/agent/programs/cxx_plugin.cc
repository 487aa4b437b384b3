/*
 * cxx_plugin.cc - a C++ plugin that cxx_plugin_host.c (a C program) dlopens RTLD_LOCAL: its libstdc++ is then outside
 * the global scope, so the recorder's C++ hooks (which the plugin's calls reach) cannot find the next operator by
 * the usual look-up. 100 strings made and deleted, one array of 10 ints leaked.
 */
#include <string>

extern "C" long plugin_work(int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++) {
        std::string *s = new std::string(100 + i, 'x');
        sum += (long)s->size();
        delete s;
    }
    int *leak = new int[10];
    leak[0] = 1;
    __asm__ volatile("" : : "r"(leak) : "memory");
    return sum;
}
