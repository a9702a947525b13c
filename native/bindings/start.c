/*
 * tendril bindings: the guest entry point (abi.md §3).
 *
 * The tender jumps here (no call: there is no return address) with
 * %rsp = mem_size - 8, which is what a C function sees just after a call,
 * and %rdi = the address of struct spt_boot_info. Other registers, %fs
 * included, still hold whatever the tender had.
 *
 * This file is compiled with -fno-stack-protector: _start writes the
 * stack protector guard, so it must not itself check a canary that was
 * read before the guard changed.
 */

#include "bindings.h"

extern uintptr_t __stack_chk_guard;

void _start(void *arg) __attribute__((noreturn));

static struct solo5_start_info start_info;

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/*
 * Consume the leading --solo5: options (abi.md §12). Each one must be a whole
 * word: followed by a space or by the end of the line. Parsing stops at the
 * first word that is not one of them; that word and the rest belong to the
 * application.
 */
static const char *parse_options(const char *cmdline)
{
    static const struct {
        const char *word;
        int level;
    } options[] = {
        { "--solo5:quiet", TND_LOG_ERROR }, { "--solo5:error", TND_LOG_ERROR },
        { "--solo5:warn", TND_LOG_WARN },   { "--solo5:info", TND_LOG_INFO },
        { "--solo5:debug", TND_LOG_DEBUG },
    };
    const char *p = cmdline;
    bool matched;

    do {
        matched = false;
        for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
            size_t n = strlen(options[i].word);

            if (strncmp(p, options[i].word, n) != 0)
                continue;
            if (p[n] != ' ' && p[n] != '\0')
                continue;
            tnd_log_level = options[i].level;
            p += n;
            if (*p == ' ')
                p++;
            matched = true;
            break;
        }
    } while (matched);
    return p;
}

static void banner(uint64_t mem_size, uintptr_t heap_start)
{
    tnd_log(TND_LOG_INFO,
            "  ___   ___   _      ___   ____\n"
            " / __| / _ \\ | |    / _ \\ | ___|\n"
            " \\__ \\| (_) || |__ | (_) ||___ \\\n"
            " |___/ \\___/ |____| \\___/ |____/\n");
    tnd_log(TND_LOG_INFO, "Solo5: Bindings version %s\n",
            TENDRIL_BINDINGS_VERSION);
    tnd_log(TND_LOG_INFO, "Solo5: Memory map: %lu MB addressable:\n",
            (unsigned long)(mem_size >> 20));
    tnd_log(TND_LOG_INFO, "Solo5:   reserved @ (0x%lx - 0x%lx)\n", 0UL,
            SPT_GUEST_MIN_BASE - 1);
    tnd_log(TND_LOG_INFO, "Solo5:       text @ (0x%lx - 0x%lx)\n",
            (uintptr_t)_stext, (uintptr_t)_etext - 1);
    tnd_log(TND_LOG_INFO, "Solo5:     rodata @ (0x%lx - 0x%lx)\n",
            (uintptr_t)_etext, (uintptr_t)_erodata - 1);
    tnd_log(TND_LOG_INFO, "Solo5:       data @ (0x%lx - 0x%lx)\n",
            (uintptr_t)_erodata, heap_start - 1);
    tnd_log(TND_LOG_INFO, "Solo5:       heap >= 0x%lx < stack < 0x%lx\n",
            heap_start, (unsigned long)mem_size);
}

void _start(void *arg)
{
    const struct spt_boot_info *bi = arg;
    uintptr_t guard = (uintptr_t)rdtsc();

    /* Fold the TSC into both halves and clear the second byte, so that a
     * string overflow (which cannot write an embedded NUL) cannot forge
     * the guard. */
    guard += guard << 32;
    guard &= ~(uintptr_t)0xff00;
    __stack_chk_guard = guard;

    /* Drop the tender's TLS base: a stray TLS access now faults near 0
     * instead of silently using the tender's memory. */
    (void)tnd_sys_arch_prctl(TND_ARCH_SET_FS, 0);

    const char *cmdline = parse_options(bi->cmdline);
    uint64_t mem_size = bi->mem_size;
    uintptr_t heap_start =
        ((uintptr_t)_end + TND_PAGE_SIZE - 1) & ~(TND_PAGE_SIZE - 1);

    banner(mem_size, heap_start);

    /* The stack starts at the top of memory and grows down into the heap;
     * with less than this much room the guest would corrupt itself. Up to
     * here nothing has touched .bss, which may lie beyond the end of guest
     * memory if the image is too big. */
    if (heap_start + TND_MIN_HEAP_AND_STACK > mem_size)
        TND_PANIC("Not enough memory");

    tnd_mft_init(bi->mft);
    tnd_net_init(bi);
    tnd_block_init(bi);

    start_info.cmdline = cmdline;
    start_info.heap_start = heap_start;
    start_info.heap_size = mem_size - heap_start;

    solo5_exit(solo5_app_main(&start_info));
}
