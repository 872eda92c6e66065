/* What the tender needs of glibc that musl lacks, when it is linked against
 * musl (tender/build.rs; docs/startup.md says why and how). Three functions,
 * each referenced by code compiled for glibc: libseccomp.a, libgcc_eh.a and
 * Rust's standard library (the undefined symbols of the link); everything
 * else they call, musl has. C, because __fprintf_chk takes `...`, which
 * stable Rust cannot define. Compiled against musl's headers. */
#define _GNU_SOURCE
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Whether `format` has a %n conversion (which writes through an argument):
 * skips "%%", then the flags, field width, precision, argument position and
 * length modifiers of each conversion to its conversion character. */
static int writes_through_argument(const char *format)
{
	for (const char *p = format; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (*p == '%')
			continue;
		while (*p && ((*p >= '0' && *p <= '9') || *p == '$' || *p == '.' || *p == '*' ||
			      *p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '\'' ||
			      *p == 'h' || *p == 'l' || *p == 'L' || *p == 'q' || *p == 'j' ||
			      *p == 'z' || *p == 't'))
			p++;
		if (*p == 'n')
			return 1;
		if (!*p)
			break;
	}
	return 0;
}

/* libseccomp.a: Debian builds it with _FORTIFY_SOURCE=2, so its fprintf
 * calls (the PFC text of `tender --print-seccomp`, gen_pfc.c) became calls
 * of glibc's __fprintf_chk. That is fprintf, except that at a fortify level
 * above 0 (`flag` > 0) glibc ends the process with abort() on a %n
 * conversion in a format string in writable memory. This ends it on any %n
 * at that level: stricter, and libseccomp's formats are literals without
 * one. */
int __fprintf_chk(FILE *restrict stream, int flag, const char *restrict format, ...)
{
	if (flag > 0 && writes_through_argument(format))
		abort();
	va_list ap;
	va_start(ap, format);
	int n = vfprintf(stream, format, ap);
	va_end(ap);
	return n;
}

/* glibc's struct dl_find_object on x86-64 (<dlfcn.h>, glibc 2.35:
 * DLFO_STRUCT_HAS_EH_DBASE and DLFO_STRUCT_HAS_EH_COUNT are 0 there). */
struct dl_find_object {
	unsigned long long dlfo_flags;
	void *dlfo_map_start;
	void *dlfo_map_end;
	struct link_map *dlfo_link_map;
	void *dlfo_eh_frame;
	unsigned long long dlfo_reserved[7];
};

struct lookup {
	uintptr_t address;
	struct dl_find_object *result;
};

static int find_in(struct dl_phdr_info *info, size_t size, void *data)
{
	struct lookup *l = data;
	(void)size;
	uintptr_t start = UINTPTR_MAX, end = 0;
	void *eh_frame = NULL;
	int found = 0;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t from = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_GNU_EH_FRAME)
			eh_frame = (void *)from;
		if (ph->p_type != PT_LOAD)
			continue;
		if (l->address >= from && l->address - from < ph->p_memsz)
			found = 1;
		if (from < start)
			start = from;
		if (from + ph->p_memsz > end)
			end = from + ph->p_memsz;
	}
	if (!found)
		return 0;
	*l->result = (struct dl_find_object){
		.dlfo_map_start = (void *)start,
		.dlfo_map_end = (void *)end,
		.dlfo_eh_frame = eh_frame,
	};
	return 1;
}

/* libgcc_eh.a: GCC 12's unwinder, built against glibc 2.35 or later, finds
 * the unwind tables of the code at `address` (a return address, while Rust
 * unwinds a panic or takes a backtrace) with glibc's _dl_find_object, and
 * gives up if it fails. As glibc's: 0 and `result` filled in if `address`
 * lies in a loaded segment of an object (here the program, all that musl's
 * static dl_iterate_phdr reports), its eh_frame the start of its
 * PT_GNU_EH_FRAME segment (.eh_frame_hdr) or NULL if it has none; -1 if it
 * lies in none. No link_map: musl has none for a static program, and the
 * unwinder does not read it. */
int _dl_find_object(void *address, struct dl_find_object *result)
{
	struct lookup l = { (uintptr_t)address, result };
	return dl_iterate_phdr(find_in, &l) ? 0 : -1;
}

/* Rust's standard library (built for glibc) asks for glibc's version before
 * it spawns a process with posix_spawn, which it uses only from glibc 2.24 on
 * (older ones did not report a failed exec), and otherwise forks and execs
 * itself. This is not glibc: a version std does not parse ("musl"), so that
 * it takes the path that assumes nothing of the C library. Only the unit
 * tests' harness spawns processes; the tender never does. */
const char *gnu_get_libc_version(void)
{
	return "musl";
}
