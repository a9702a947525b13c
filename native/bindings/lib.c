/*
 * tendril bindings: the few C library functions a freestanding guest needs.
 *
 * GCC may emit calls to memset/memcpy/memmove/memcmp even in freestanding
 * code (struct copies, large initialisers), so these must exist somewhere
 * in every guest. They are weak: an application that brings its own C
 * library overrides them without a duplicate-symbol error.
 *
 * The loops are plain on purpose. The bindings are built with
 * -fno-tree-loop-distribute-patterns so that GCC does not turn the loop in
 * memset() back into a call to memset().
 */

#include "bindings.h"

#define TND_WEAK __attribute__((weak))

/* A 64-bit word that may alias anything, for the word-wise copy. */
typedef uint64_t __attribute__((may_alias)) tnd_word_t;

TND_WEAK void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;

    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

TND_WEAK void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    /* Word-at-a-time when both sides allow it: console and block buffers
     * are copied through here. */
    if ((((uintptr_t)d | (uintptr_t)s) & 7) == 0) {
        while (n >= 8) {
            *(tnd_word_t *)(void *)d = *(const tnd_word_t *)(const void *)s;
            d += 8;
            s += 8;
            n -= 8;
        }
    }
    while (n--)
        *d++ = *s++;
    return dst;
}

TND_WEAK void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;

    if (d == s || n == 0)
        return dst;
    if (d < s || d >= s + n) {
        while (n--)
            *d++ = *s++;
    } else {
        /* Overlap with dst above src: copy from the end. */
        d += n;
        s += n;
        while (n--)
            *--d = *--s;
    }
    return dst;
}

TND_WEAK int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;

    for (; n; n--, p++, q++) {
        if (*p != *q)
            return *p < *q ? -1 : 1;
    }
    return 0;
}

TND_WEAK size_t strlen(const char *s)
{
    const char *p = s;

    while (*p)
        p++;
    return (size_t)(p - s);
}

TND_WEAK size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;

    while (n < max && s[n])
        n++;
    return n;
}

TND_WEAK int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

TND_WEAK int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (int)(unsigned char)*a - (int)(unsigned char)*b;
        if (*a == '\0')
            break;
    }
    return 0;
}

TND_WEAK char *strncpy(char *restrict dst, const char *restrict src, size_t n)
{
    size_t i = 0;

    for (; i < n && src[i]; i++)
        dst[i] = src[i];
    for (; i < n; i++)
        dst[i] = '\0';
    return dst;
}

TND_WEAK char *strchr(const char *s, int c)
{
    for (;; s++) {
        if (*s == (char)c)
            return (char *)s;
        if (*s == '\0')
            return NULL;
    }
}

TND_WEAK char *strrchr(const char *s, int c)
{
    const char *found = NULL;

    for (;; s++) {
        if (*s == (char)c)
            found = s;
        if (*s == '\0')
            return (char *)found;
    }
}
