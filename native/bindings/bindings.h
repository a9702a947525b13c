/*
 * tendril bindings: internal declarations shared by the bindings' files.
 *
 * Anything declared TND_HIDDEN is private to the bindings: the Makefile
 * turns hidden symbols into local ones when it produces bindings.o, so an
 * application can use the same names without clashing. Only the Solo5 API,
 * _start, the stack protector symbols and the mem and str functions the
 * compiler may call stay global.
 */

#ifndef TENDRIL_BINDINGS_H
#define TENDRIL_BINDINGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "solo5.h"
#include "spt_abi.h"
#include "syscall.h"

#ifndef TENDRIL_BINDINGS_VERSION
#define TENDRIL_BINDINGS_VERSION "tendril-0.1.0"
#endif

#define TND_HIDDEN   __attribute__((visibility("hidden")))
#define TND_NORETURN __attribute__((noreturn))
#define TND_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Page size of the spt layout (the linker script uses the same value). */
#define TND_PAGE_SIZE 0x1000UL

/* Memory the guest needs above the image for heap and stack (abi.md §1). */
#define TND_MIN_HEAP_AND_STACK 0x80000UL

/* lib.c: the freestanding C functions the bindings and the compiler use. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strncpy(char *restrict dst, const char *restrict src, size_t n);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);

/* log.c */
enum tnd_log_level {
    TND_LOG_ERROR = 0,
    TND_LOG_WARN = 1,
    TND_LOG_INFO = 2,
    TND_LOG_DEBUG = 3
};

/* Length of the formatting buffer of one log call, NUL included. */
#define TND_LOG_LINE_SIZE 320

TND_HIDDEN extern int tnd_log_level;
TND_HIDDEN int tnd_vsnprintf(char *buf, size_t size, const char *fmt,
                             va_list ap);
TND_HIDDEN int tnd_snprintf(char *buf, size_t size, const char *fmt, ...)
    TND_PRINTF(3, 4);
TND_HIDDEN void tnd_log(int level, const char *fmt, ...) TND_PRINTF(2, 3);

/* console.c: one raw write to the host's stdout, result ignored. */
TND_HIDDEN void tnd_console_write(const char *buf, size_t size);

/* exit.c: fatal errors. Print "Solo5: ABORT: ..." at ERROR, exit 255. */
TND_HIDDEN void tnd_abort(const char *file, int line, const char *fmt, ...)
    TND_NORETURN TND_PRINTF(3, 4);

#define TND_PANIC(...) tnd_abort(__FILE__, __LINE__, __VA_ARGS__)

#define TND_ASSERT(e)                                                         \
    do {                                                                      \
        if (!(e))                                                             \
            tnd_abort(__FILE__, __LINE__, "Assertion `%s' failed", #e);       \
    } while (0)

/* mft.c: the manifest copy and the per-device "acquired" flags. */
TND_HIDDEN void tnd_mft_init(const void *mft);
TND_HIDDEN unsigned tnd_mft_count(uint32_t type);
TND_HIDDEN solo5_result_t tnd_mft_acquire(const char *name, uint32_t type,
                                          solo5_handle_t *handle,
                                          const struct mft_entry **entry);
TND_HIDDEN const struct mft_entry *tnd_mft_get(solo5_handle_t handle,
                                               uint32_t type);

/* time.c: the fds solo5_yield() uses and how many events it can get. */
TND_HIDDEN void tnd_time_init(int epollfd, int timerfd, unsigned nnet);

/* net.c / block.c: boot-time setup. */
TND_HIDDEN void tnd_net_init(const struct spt_boot_info *bi);
TND_HIDDEN void tnd_block_init(const struct spt_boot_info *bi);

/* Linker script symbols (spt.lds). */
extern char _stext[], _etext[], _erodata[], _edata[], _end[];
extern char _stdata[], _ltdata[], _ltbss[];

#endif /* TENDRIL_BINDINGS_H */
