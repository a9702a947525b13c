/*
 * hello: the smallest useful Solo5 unikernel.
 *
 * A unikernel is one function, solo5_app_main(), linked with the Solo5
 * bindings into an ELF file that the tender runs as a sandboxed process.
 * There is no libc: the only ways out are the calls in <solo5.h>.
 *
 *   tendril run examples/hello/hello.spt Hello from the host
 */

#include <solo5.h>

/* No printf without a libc; these two are all this example needs. */
static void print(const char *s)
{
    size_t n = 0;

    while (s[n] != '\0')
        n++;
    /* Best effort by design: the console never reports errors, so there
     * is nothing to check. */
    solo5_console_write(s, n);
}

static void print_u64(uint64_t v)
{
    char buf[21];
    int i = sizeof buf - 1;

    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    print(&buf[i]);
}

int solo5_app_main(const struct solo5_start_info *si)
{
    /* Arguments after the kernel name on the host arrive here as one
     * string; the bindings have already removed their own --solo5:
     * options. */
    print("Hello from a Solo5 unikernel! My command line is: '");
    print(si->cmdline);
    print("'\n");

    /* Monotonic time is the only clock to measure intervals with: the wall
     * clock can jump when the host's time is set. */
    solo5_time_t start = solo5_clock_monotonic();
    print("Monotonic clock: ");
    print_u64(start);
    print(" ns\n");

    /* solo5_yield() is the only way to wait: it gives the CPU back to the
     * host until the deadline (or until a network device has data). A busy
     * loop would burn a host core for nothing. */
    solo5_yield(start + 100 * 1000 * 1000, NULL);

    print("Slept for ");
    print_u64((solo5_clock_monotonic() - start) / 1000);
    print(" us. Goodbye!\n");

    /* Returning is the same as solo5_exit(): the value becomes the exit
     * status the host sees. */
    return SOLO5_EXIT_SUCCESS;
}
