/*
 * C code that uses the C library as C programs do: the printf family
 * (its own variadic function forwarding a va_list too), buffered streams
 * on files and pipes, and read-write locks between threads. Built with
 * cc into the std guest std-clib (tests/std/build.rs), and natively with
 * NATIVE_MAIN by the suite (std_runtime.rs), which compares the two
 * outputs: every line starting "c: " must be the same under glibc.
 *
 * clib_run(dir) works on files in dir ("" for the guest's disk root) and
 * returns the number of failed checks.
 */
#define _GNU_SOURCE
/* The truncation below is the point. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            failures++;                                                      \
            printf("c: FAILED line %d: %s (errno %d)\n", __LINE__, #cond,    \
                   errno);                                                   \
        }                                                                    \
    } while (0)

static char path_buf[512];

static const char *in_dir(const char *dir, const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

/* A variadic function of the program's own: C's va_start, then the C
 * library's vsnprintf over the va_list. */
static int fmt(char *buf, size_t n, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int r = vsnprintf(buf, n, f, ap);
    va_end(ap);
    return r;
}

static void formats(void)
{
    char buf[256];
    fmt(buf, sizeof buf, "[%5d|%-5d|%05.1f|%x|%#o|%e|%g|%s|%c|%%|%p]", 42, -7,
        3.14159, 255u, 8u, 12345.678, 0.0001, "str", 'Z', (void *)0);
    printf("c: formats %s\n", buf);
    long long big = -1234567890123LL;
    unsigned long ul = 18446744073709551615UL;
    size_t z = 4096;
    short h = -2;
    fmt(buf, sizeof buf, "%lld %lu %zu %hd %hhu %.3s %*d %-*.*f|", big, ul, z,
        h, 300, "abcdef", 6, 1, 8, 2, 2.5);
    printf("c: lengths %s\n", buf);
    int n = snprintf(buf, 8, "%s", "truncated output");
    printf("c: snprintf kept \"%s\" of %d\n", buf, n);
    char *a = NULL;
    int m = asprintf(&a, "%d-%s-%.2f", 7, "x", 0.125);
    printf("c: asprintf %d \"%s\"\n", m, a);
    free(a);
    fmt(buf, sizeof buf,
        "%d %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f %.1f %.1f %.1f %.1f "
        "%.1f %.1f %s",
        1, 2, 3, 4, 5, 6, 7, 8, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0,
        10.0, "end");
    printf("c: many %s\n", buf);
    sprintf(buf, "%Lf %Lg %.3Le", (long double)1.5, (long double)1e20,
            (long double)-0.25);
    printf("c: long double %s\n", buf);
    long double third = 1.0L / 3;
    sprintf(buf, "%.20Lf %Lg %.25Le %La %.3La %Le %Lg", third, third, third,
            third, (long double)1.5, 1e4000L, 1e-4000L);
    printf("c: long double beyond double %s\n", buf);
    int count = 0;
    printf("c: %%n counts%n", &count);
    printf(" %d\n", count);
    int k = 0, used = 0;
    double d = 0;
    char word[16] = "", rest[16] = "";
    int got = sscanf("key=42 3.5e1 name; tail", "key=%d %lf %15[^;]; %n%s", &k,
                     &d, word, &used, rest);
    printf("c: sscanf %d: %d %g \"%s\" at %d \"%s\"\n", got, k, d, word, used,
           rest);
    printf("c: sscanf of nothing %d, of a mismatch %d\n", sscanf("", "%d", &k),
           sscanf("x", "%d", &k));
    puts("c: puts adds the newline");
    putchar('c');
    putchar(':');
    fputc(' ', stdout);
    putc('!', stdout);
    fputs("\n", stdout);
}

static void files(const char *dir)
{
    char line[64];
    FILE *f = fopen(in_dir(dir, "clib.txt"), "w+");
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 0; i < 1000; i++)
        fprintf(f, "line %04d %s\n", i, i % 2 ? "odd" : "even");
    printf("c: wrote %ld bytes\n", ftell(f));
    rewind(f);
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines++;
    printf("c: read %d lines, eof %d error %d\n", lines, feof(f) != 0,
           ferror(f) != 0);
    CHECK(fseek(f, 15 + 14, SEEK_SET) == 0);
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "line 0002 even\n") == 0);
    CHECK(ftell(f) == 44);
    CHECK(fgetc(f) == 'l');
    CHECK(ungetc('L', f) == 'L');
    CHECK(ftell(f) == 44);
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "Line 0003 odd\n") == 0);
    CHECK(fseeko(f, -4, SEEK_END) == 0);
    CHECK(fread(line, 1, sizeof line, f) == 4 && memcmp(line, "odd\n", 4) == 0);
    CHECK(feof(f));
    /* A write after a read, at a position the program chose. */
    CHECK(fseek(f, 0, SEEK_SET) == 0);
    CHECK(fputs("LINE", f) >= 0);
    CHECK(fseek(f, 0, SEEK_CUR) == 0 && ftello(f) == 4);
    rewind(f);
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "LINE 0000 even\n") == 0);
    fpos_t pos;
    CHECK(fgetpos(f, &pos) == 0);
    CHECK(fgets(line, sizeof line, f) != NULL);
    CHECK(fsetpos(f, &pos) == 0);
    CHECK(fgets(line, sizeof line, f) && strcmp(line, "line 0001 odd\n") == 0);
    CHECK(fclose(f) == 0);

    f = fopen(in_dir(dir, "clib.txt"), "a");
    CHECK(f != NULL);
    fprintf(f, "appended %s\n", "at the end");
    CHECK(fclose(f) == 0);
    f = fopen(in_dir(dir, "clib.txt"), "re");
    CHECK(f != NULL);
    CHECK(fputs("x", f) == EOF && ferror(f));
    clearerr(f);
    CHECK(!ferror(f));
    char *got = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0;
    while ((len = getline(&got, &cap, f)) > 0) {
        n++;
        if (n == 1001)
            printf("c: getline %d: %zd \"%.*s\"\n", n, len, (int)len - 1, got);
    }
    printf("c: getline read %d lines\n", n);
    free(got);
    CHECK(fclose(f) == 0);

    errno = 0;
    CHECK(fopen(in_dir(dir, "no such dir/x"), "r") == NULL && errno == ENOENT);
    errno = 0;
    CHECK(fopen(in_dir(dir, "clib.txt"), "wx") == NULL && errno == EEXIST);
    errno = 0;
    CHECK(fopen(in_dir(dir, "clib.txt"), "q") == NULL && errno == EINVAL);

    int data[300];
    for (int i = 0; i < 300; i++)
        data[i] = i * i;
    f = fopen(in_dir(dir, "clib.bin"), "wb");
    CHECK(f != NULL && setvbuf(f, NULL, _IOFBF, 100) == 0);
    CHECK(fwrite(data, sizeof data[0], 300, f) == 300);
    CHECK(fclose(f) == 0);
    int back[400];
    f = fopen(in_dir(dir, "clib.bin"), "rb");
    CHECK(f != NULL && setvbuf(f, NULL, _IONBF, 0) == 0);
    CHECK(fread(back, sizeof back[0], 400, f) == 300 && feof(f));
    CHECK(memcmp(back, data, sizeof data) == 0);
    CHECK(fclose(f) == 0);
    printf("c: binary round trip of %zu bytes\n", sizeof data);
    /* The 64-bit names (_LARGEFILE64_SOURCE). */
    FILE *g = fopen64(in_dir(dir, "clib.txt"), "r");
    CHECK(g != NULL);
    fpos64_t p64;
    CHECK(fseeko64(g, 0, SEEK_END) == 0 && ftello64(g) == 14520);
    CHECK(fgetpos64(g, &p64) == 0 && fsetpos64(g, &p64) == 0);
    CHECK(fclose(g) == 0);
    CHECK(unlink(in_dir(dir, "clib.bin")) == 0);
    /* remove: a file, then a directory; a missing name is ENOENT. */
    CHECK(remove(in_dir(dir, "clib.txt")) == 0);
    CHECK(mkdir(in_dir(dir, "clibdir"), 0755) == 0);
    CHECK(remove(in_dir(dir, "clibdir")) == 0);
    errno = 0;
    CHECK(remove(in_dir(dir, "clibdir")) == -1);
    printf("c: remove of a file and a directory, then of nothing: errno %d\n", errno);

    int fds[2];
    CHECK(pipe(fds) == 0);
    FILE *w = fdopen(fds[1], "w");
    FILE *r = fdopen(fds[0], "r");
    CHECK(w && r);
    fprintf(w, "through a pipe %d\n", 99);
    CHECK(fflush(w) == 0);
    CHECK(fgets(line, sizeof line, r) != NULL);
    printf("c: pipe gave %s", line);
    CHECK(fclose(w) == 0);
    CHECK(fgetc(r) == EOF && feof(r));
    CHECK(fclose(r) == 0);
}

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static int value, readers_in, max_readers, torn;

static void *reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 40; i++) {
        CHECK(pthread_rwlock_rdlock(&lock) == 0);
        int in = __atomic_add_fetch(&readers_in, 1, __ATOMIC_SEQ_CST);
        int seen = __atomic_load_n(&max_readers, __ATOMIC_SEQ_CST);
        while (in > seen && !__atomic_compare_exchange_n(&max_readers, &seen, in,
                                                        0, __ATOMIC_SEQ_CST,
                                                        __ATOMIC_SEQ_CST))
            ;
        int v = value;
        usleep(200);
        if (value != v)
            __atomic_add_fetch(&torn, 1, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&readers_in, 1, __ATOMIC_SEQ_CST);
        CHECK(pthread_rwlock_unlock(&lock) == 0);
        usleep(50);
    }
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 40; i++) {
        CHECK(pthread_rwlock_wrlock(&lock) == 0);
        if (__atomic_load_n(&readers_in, __ATOMIC_SEQ_CST) != 0)
            __atomic_add_fetch(&torn, 1, __ATOMIC_SEQ_CST);
        int v = value;
        usleep(100);
        value = v + 1;
        CHECK(pthread_rwlock_unlock(&lock) == 0);
        usleep(50);
    }
    return NULL;
}

static void rwlocks(void)
{
    pthread_t t[5];
    for (int i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, reader, NULL) == 0);
    for (int i = 3; i < 5; i++)
        CHECK(pthread_create(&t[i], NULL, writer, NULL) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    printf("c: rwlock: value %d, readers together %d, torn %d\n", value,
           max_readers >= 2, torn);

    CHECK(pthread_rwlock_rdlock(&lock) == 0);
    CHECK(pthread_rwlock_trywrlock(&lock) == EBUSY);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 20 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    CHECK(pthread_rwlock_timedwrlock(&lock, &until) == ETIMEDOUT);
    CHECK(pthread_rwlock_tryrdlock(&lock) == 0);
    CHECK(pthread_rwlock_unlock(&lock) == 0);
    CHECK(pthread_rwlock_unlock(&lock) == 0);
    CHECK(pthread_rwlock_wrlock(&lock) == 0);
    CHECK(pthread_rwlock_tryrdlock(&lock) == EBUSY);
    CHECK(pthread_rwlock_trywrlock(&lock) == EBUSY);
    CHECK(pthread_rwlock_unlock(&lock) == 0);
    CHECK(pthread_rwlock_destroy(&lock) == 0);
    printf("c: rwlock: try and timed forms as glibc\n");
}

/* Positional printf arguments, streams in memory, fscanf on streams,
 * freopen: the same lines as under glibc. */
static void more_streams(const char *dir)
{
    char buf[256];
    fmt(buf, sizeof buf, "%3$s %1$d %2$.2f %1$x|%2$*4$.1f|%4$-*1$d|", 25, 2.5,
        "third", 7);
    printf("c: positional %s\n", buf);
    fmt(buf, sizeof buf, "%2$d %d %d|%y%5.2hh|", 1, 2);
    printf("c: positional mixed %s\n", buf);

    char mem[16] = "xxxxxxxxxxxxxxx";
    FILE *f = fmemopen(mem, 8, "w");
    CHECK(f != NULL);
    fprintf(f, "%d-%d", 12, 34);
    fflush(f);
    printf("c: fmemopen \"%s\" at %ld\n", mem, ftell(f));
    int full = fputs("overflowing", f) >= 0 && fflush(f) == 0;
    printf("c: fmemopen full: flushed %d, \"%.8s\", error %d\n", full, mem,
           ferror(f) != 0);
    fclose(f);
    f = fmemopen("17 0x1f 2.5e3 word rest", 23, "r");
    int a = 0;
    unsigned x = 0;
    double d = 0;
    char word[8] = "";
    int n = -1;
    int got = fscanf(f, "%d %x %lf %7s%n", &a, &x, &d, word, &n);
    printf("c: fscanf %d: %d %u %g \"%s\" %d, then '%c'\n", got, a, x, d, word,
           n, fgetc(f));
    got = fscanf(f, "%d", &a);
    printf("c: fscanf of a mismatch %d, left '%c'\n", got, fgetc(f));
    fclose(f);
    f = fmemopen("-x 0xg nanq", 11, "r");
    got = fscanf(f, "%d", &a);
    printf("c: fscanf sign only %d, left '%c'\n", got, fgetc(f));
    got = fscanf(f, "%x", &x);
    printf("c: fscanf 0x %d %u, left '%c'\n", got, x, fgetc(f));
    got = fscanf(f, "%lf", &d);
    printf("c: fscanf nan %d, left %d\n", got, fgetc(f));
    printf("c: fscanf at the end %d\n", fscanf(f, "%d", &a));
    fclose(f);

    char *p = NULL;
    size_t size = 0;
    f = open_memstream(&p, &size);
    CHECK(f != NULL);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "%d,", i);
    fflush(f);
    printf("c: open_memstream %zu bytes, \"%.12s\"\n", size, p);
    fseek(f, 4, SEEK_SET);
    fputs("!", f);
    fclose(f);
    printf("c: open_memstream after a seek %zu \"%.12s\"\n", size, p);
    free(p);

    f = tmpfile();
    CHECK(f != NULL);
    fprintf(f, "temporary %d\n", 5);
    rewind(f);
    fgets(buf, sizeof buf, f);
    printf("c: tmpfile gave %s", buf);
    fclose(f);

    f = fopen(in_dir(dir, "reopened.txt"), "w");
    CHECK(f != NULL);
    fputs("first\n", f);
    f = freopen(in_dir(dir, "reopened.txt"), "a+", f);
    CHECK(f != NULL);
    fputs("second\n", f);
    rewind(f);
    int lines = 0;
    while (fgets(buf, sizeof buf, f))
        lines++;
    printf("c: freopen: %d lines, last %s", lines, buf);
    errno = 0;
    CHECK(freopen(in_dir(dir, "no/such/dir"), "r", f) == NULL);
    printf("c: freopen of a missing path: errno %d\n", errno);
    unlink(in_dir(dir, "reopened.txt"));
}

int clib_run(const char *dir)
{
    formats();
    more_streams(dir);
    files(dir);
    rwlocks();
    fprintf(stderr, "c: to stderr %d %s\n", 2, "unbuffered");
    errno = ENOENT;
    perror("c: perror");
    printf("c: %d failures\n", failures);
    fflush(stdout);
    /* Left in stdout's buffer: exit writes it. */
    printf("c: buffered until exit\n");
    return failures;
}

#ifdef NATIVE_MAIN
int main(int argc, char **argv)
{
    int r = clib_run(argc > 1 ? argv[1] : ".");
    static const char done[] = "rust: done\n";
    if (write(1, done, sizeof done - 1) < 0)
        return 2;
    return r != 0;
}
#endif
