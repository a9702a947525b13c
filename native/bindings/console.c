/*
 * tendril bindings: the console.
 *
 * The console is the tender's stdout (fd 1), the only fd the seccomp policy
 * lets the guest write to besides its taps. A write is made exactly once:
 * the API promises nothing more than best effort, and a retry loop would
 * turn a host that has closed stdout into a guest that spins.
 */

#include "bindings.h"

void tnd_console_write(const char *buf, size_t size)
{
    (void)tnd_sys_write(1, buf, size);
}

void solo5_console_write(const char *buf, size_t size)
{
    tnd_console_write(buf, size);
}
