/*
 * cxx_plugin_host.c - a C program running a C++ plugin loaded with dlopen(RTLD_LOCAL) (see cxx_plugin.cc).
 * Usage: cxx_plugin_host PLUGIN.so
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    void *plugin = argc > 1 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!plugin) {
        printf("dlopen: %s\n", dlerror());
        return 2;
    }
    long (*work)(int) = (long (*)(int))dlsym(plugin, "plugin_work");
    printf("sum %ld\n", work(100));
    return 0;
}
