/*
 * The runtime log containerd's shim asks for (--log FILE --log-format
 * json): one record per line with level, msg and time (RFC 3339), as runc
 * writes them with logrus. The shim reads the last record of level "error"
 * to explain a failed command, so error records must be valid JSON with a
 * parseable time. Every invocation is logged (its argv, at level info), so
 * the log shows which commands and flags the shim really used. Without
 * --log only errors are printed, on stderr. A log that cannot be written
 * never turns a working command into a failure.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

static int log_fd = -1;
static bool log_json;

void log_open(const struct globals *g)
{
    log_json = g->log_json;
    if (g->log)
        log_fd = open(g->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static void now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* logfmt: a value of plain characters stands as it is, anything else is quoted. */
static void text_value(char *out, size_t size, size_t *len, const char *s)
{
    bool plain = *s != '\0';
    for (const char *p = s; *p; p++) {
        if (!strchr("_./:@,+-", *p) && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            plain = false;
    }
    if (!plain) {
        json_put_string(out, size, len, s);
        return;
    }
    size_t n = strlen(s);
    if (*len + n < size)
        memcpy(out + *len, s, n);
    *len += n;
}

static void put(char *out, size_t size, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n < size)
        memcpy(out + *len, s, n);
    *len += n;
}

/* One record; `argv` (may be NULL) is added as a field. */
static void record(const char *level, const char *msg, int argc, char **argv)
{
    if (log_fd < 0)
        return;
    static char line[65536];
    char time[40];
    size_t len = 0;
    size_t size = sizeof line - 2;
    now(time, sizeof time);
    if (log_json) {
        put(line, size, &len, "{\"level\":");
        json_put_string(line, size, &len, level);
        put(line, size, &len, ",\"msg\":");
        json_put_string(line, size, &len, msg);
        put(line, size, &len, ",\"time\":");
        json_put_string(line, size, &len, time);
        if (argv) {
            put(line, size, &len, ",\"argv\":[");
            for (int i = 0; i < argc; i++) {
                if (i)
                    put(line, size, &len, ",");
                json_put_string(line, size, &len, argv[i]);
            }
            put(line, size, &len, "]");
        }
        put(line, size, &len, "}");
    } else {
        put(line, size, &len, "time=");
        text_value(line, size, &len, time);
        put(line, size, &len, " level=");
        put(line, size, &len, level);
        put(line, size, &len, " msg=");
        text_value(line, size, &len, msg);
    }
    if (len >= size)
        return; /* a record that does not fit is dropped rather than cut into invalid JSON */
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}

void log_argv(int argc, char **argv)
{
    static char msg[16384];
    size_t len = 0;
    put(msg, sizeof msg - 1, &len, PROG);
    for (int i = 0; i < argc; i++) {
        put(msg, sizeof msg - 1, &len, " ");
        put(msg, sizeof msg - 1, &len, argv[i]);
    }
    msg[len < sizeof msg ? len : sizeof msg - 1] = '\0';
    record("info", msg, argc, argv);
}

void log_info(const char *msg)
{
    record("info", msg, 0, NULL);
}

void log_error(const char *msg)
{
    record("error", msg, 0, NULL);
}

void fail(const char *fmt, ...)
{
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_error(msg);
    dprintf(2, "%s: %s\n", PROG, msg);
    exit(1);
}
