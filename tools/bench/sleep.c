/* The native peer of `guest-basics sleep 120` for `nabla bench memory`: a
 * static C program that says it is up, then idles for 120 s.
 * Built with `gcc -O2 -static`. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    fputs("sleeping\n", stdout);
    fflush(stdout);
    sleep(120);
    return 0;
}
