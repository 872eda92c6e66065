/* The native peer of examples/hello for `nabla bench startup`: a static
 * C program that prints the same greeting and its arguments, one a line.
 * Built with `gcc -O2 -static`. */
#include <stdio.h>

int main(int argc, char **argv) {
    puts("Hello, world!");
    for (int i = 1; i < argc; i++)
        puts(argv[i]);
    return 0;
}
