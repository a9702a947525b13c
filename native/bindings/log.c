/*
 * tendril bindings: a small printf-style formatter and the bindings' log.
 *
 * Supported conversions: %s %c %d %i %u %x %X %p %%, with the length
 * modifiers hh h l ll z, the flags '-' and '0', and a field width (digits
 * or '*'). That is all the bindings print (addresses, sizes, statuses);
 * nothing here allocates or depends on a libc.
 */

#include "bindings.h"

/* The level in force; _start lowers or raises it from --solo5: options. */
int tnd_log_level = TND_LOG_INFO;

/* Output cursor: writes past the end are counted but dropped. */
struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void pad(struct out *o, char c, int n)
{
    while (n-- > 0)
        put(o, c);
}

/*
 * Emit one converted field: an optional sign or prefix, zero or space
 * padding up to `width`, then the digits/characters.
 */
static void field(struct out *o, const char *prefix, const char *s,
                  size_t slen, int width, bool left, bool zero)
{
    size_t plen = strlen(prefix);
    int fill = width - (int)(plen + slen);

    if (!left && !zero)
        pad(o, ' ', fill);
    while (*prefix)
        put(o, *prefix++);
    if (!left && zero)
        pad(o, '0', fill);
    for (size_t i = 0; i < slen; i++)
        put(o, s[i]);
    if (left)
        pad(o, ' ', fill);
}

/* Digits of v in the given base, written backwards from the end of buf. */
static size_t utoa(unsigned long long v, unsigned base, bool upper,
                   char *buf, size_t size)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    size_t i = size;

    do {
        buf[--i] = digits[v % base];
        v /= base;
    } while (v && i);
    return i;
}

int tnd_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    char num[24];

    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            put(&o, *p);
            continue;
        }
        const char *start = p++;
        bool left = false, zero = false;
        int width = 0;
        int lng = 0; /* -2 hh, -1 h, 0 int, 1 long, 2 long long, 3 size_t */

        for (;; p++) {
            if (*p == '-')
                left = true;
            else if (*p == '0')
                zero = true;
            else
                break;
        }
        if (*p == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = true;
                width = -width;
            }
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                width = width * 10 + (*p++ - '0');
        }
        if (*p == 'h') {
            lng = -1;
            if (*++p == 'h') {
                lng = -2;
                p++;
            }
        } else if (*p == 'l') {
            lng = 1;
            if (*++p == 'l') {
                lng = 2;
                p++;
            }
        } else if (*p == 'z') {
            lng = 3;
            p++;
        }

        switch (*p) {
        case 'd':
        case 'i': {
            long long v;
            if (lng >= 2)
                v = va_arg(ap, long long);
            else if (lng == 1 || lng == 3)
                v = va_arg(ap, long);
            else
                v = va_arg(ap, int);
            if (lng == -1)
                v = (short)v;
            else if (lng == -2)
                v = (signed char)v;
            unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                         : (unsigned long long)v;
            size_t i = utoa(u, 10, false, num, sizeof num);
            field(&o, v < 0 ? "-" : "", num + i, sizeof num - i, width, left,
                  zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'p': {
            unsigned long long v;
            const char *prefix = "";
            if (*p == 'p') {
                v = (uintptr_t)va_arg(ap, void *);
                prefix = "0x";
            } else if (lng == 2) {
                v = va_arg(ap, unsigned long long);
            } else if (lng == 1 || lng == 3) {
                v = va_arg(ap, unsigned long);
            } else {
                v = va_arg(ap, unsigned int);
                if (lng == -1)
                    v = (unsigned short)v;
                else if (lng == -2)
                    v = (unsigned char)v;
            }
            size_t i = utoa(v, *p == 'u' ? 10 : 16, *p == 'X', num,
                            sizeof num);
            field(&o, prefix, num + i, sizeof num - i, width, left, zero);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            field(&o, "", s, strlen(s), width, left, false);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            field(&o, "", &c, 1, width, left, false);
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default:
            /* Unknown conversion: print it as written, so it shows. */
            for (; start <= p && *start; start++)
                put(&o, *start);
            if (*p == '\0')
                p--;
            break;
        }
    }
    if (size > 0)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int)o.len;
}

int tnd_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = tnd_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void tnd_log(int level, const char *fmt, ...)
{
    static const char trunc[] = "(truncated)\n";
    char line[TND_LOG_LINE_SIZE];
    va_list ap;
    int n;

    if (level > tnd_log_level)
        return;

    va_start(ap, fmt);
    n = tnd_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);

    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        /* Too long: keep what fits and say so at the end of the line. */
        memcpy(line + sizeof line - sizeof trunc, trunc, sizeof trunc);
        n = sizeof line - 1;
    }
    tnd_console_write(line, (size_t)n);
}
