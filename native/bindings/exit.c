/*
 * tendril bindings: leaving the guest.
 *
 * exit_group is the only way out the seccomp policy allows; the kernel keeps
 * the low 8 bits of the status, which is how 300 becomes 44 and -1 becomes
 * 255 on the host (abi.md §13).
 */

#include "bindings.h"

void solo5_exit(int status)
{
    tnd_log(TND_LOG_INFO, "Solo5: solo5_exit(%d) called\n", status);
    tnd_sys_exit_group(status);
}

void solo5_abort(void)
{
    tnd_log(TND_LOG_INFO, "Solo5: solo5_abort() called\n");
    tnd_sys_exit_group(SOLO5_EXIT_ABORT);
}

void tnd_abort(const char *file, int line, const char *fmt, ...)
{
    char msg[TND_LOG_LINE_SIZE];
    va_list ap;

    /* Format the reason first so the whole report is one log line (one
     * write), and is printed even with --solo5:quiet (ERROR level). */
    va_start(ap, fmt);
    (void)tnd_vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tnd_log(TND_LOG_ERROR, "Solo5: ABORT: %s:%d: %s\n", file, line, msg);
    tnd_sys_exit_group(SOLO5_EXIT_ABORT);
}
