/*
 * Just enough JSON for the front: find a member of an object or an element
 * of an array in a NUL-terminated document, decode a string, and skip any
 * value. The front reads only two fields of config.json (root.path and
 * process.args[0]) to tell a unikernel from anything else; the full check
 * of the bundle is TypeScript's. A malformed document reads as "not found".
 * Writing: a string with the escapes JSON requires.
 */
#include <stdio.h>
#include <string.h>

#include "oci.h"

/* Nesting deeper than this is treated as malformed (no unbounded recursion on hostile input). */
#define MAX_DEPTH 64

const char *json_skip_ws(const char *p)
{
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p)
{
    if (*p != '"')
        return NULL;
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p)
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

static const char *skip(const char *p, int depth)
{
    p = json_skip_ws(p);
    if (!p || depth > MAX_DEPTH)
        return NULL;
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = skip_string(json_skip_ws(p));
                p = json_skip_ws(p);
                if (!p || *p != ':')
                    return NULL;
                p++;
            }
            p = json_skip_ws(skip(p, depth + 1));
            if (!p)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    /* number, true, false, null */
    const char *start = p;
    while (*p && strchr("0123456789+-.eEtruefalsn", *p))
        p++;
    return p > start ? p : NULL;
}

const char *json_skip_value(const char *p)
{
    return skip(p, 0);
}

static unsigned hex4(const char *p, bool *ok)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            *ok = false;
    }
    return v;
}

static bool put_utf8(char *out, size_t size, size_t *n, unsigned cp)
{
    char b[4];
    size_t k;
    if (cp < 0x80) {
        b[0] = (char)cp;
        k = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        k = 4;
    }
    if (*n + k >= size)
        return false;
    memcpy(out + *n, b, k);
    *n += k;
    return true;
}

bool json_string(const char *p, char *out, size_t size)
{
    size_t n = 0;
    p = json_skip_ws(p);
    if (!p || *p != '"' || size == 0)
        return false;
    for (p++; *p != '"'; p++) {
        if (!*p || (unsigned char)*p < 0x20)
            return false;
        if (*p != '\\') {
            if (n + 1 >= size)
                return false;
            out[n++] = *p;
            continue;
        }
        p++;
        unsigned cp;
        bool ok = true;
        switch (*p) {
        case '"': case '\\': case '/': cp = (unsigned char)*p; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            cp = hex4(p + 1, &ok);
            if (!ok)
                return false;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u') {
                unsigned lo = hex4(p + 3, &ok);
                if (ok && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            break;
        default:
            return false;
        }
        if (cp == 0 || !put_utf8(out, size, &n, cp))
            return false; /* a NUL inside a path or name is never valid */
    }
    out[n] = '\0';
    return true;
}

const char *json_member(const char *obj, const char *key)
{
    char name[256];
    const char *p = json_skip_ws(obj);
    if (!p || *p != '{')
        return NULL;
    p = json_skip_ws(p + 1);
    if (*p == '}')
        return NULL;
    for (;;) {
        bool match = json_string(p, name, sizeof name) && strcmp(name, key) == 0;
        p = json_skip_ws(skip_string(json_skip_ws(p)));
        if (!p || *p != ':')
            return NULL;
        p = json_skip_ws(p + 1);
        if (match)
            return p;
        p = json_skip_ws(json_skip_value(p));
        if (!p || *p != ',')
            return NULL;
        p = json_skip_ws(p + 1);
    }
}

const char *json_index(const char *arr, int i)
{
    const char *p = json_skip_ws(arr);
    if (!p || *p != '[')
        return NULL;
    p = json_skip_ws(p + 1);
    if (*p == ']')
        return NULL;
    for (int k = 0;; k++) {
        if (k == i)
            return p;
        p = json_skip_ws(json_skip_value(p));
        if (!p || *p != ',')
            return NULL;
        p = json_skip_ws(p + 1);
    }
}

void json_put_string(char *out, size_t size, size_t *len, const char *s)
{
    char esc[8];
    const char *piece;
    size_t n;
#define PUT(str, k) do { if (*len + (k) < size) memcpy(out + *len, (str), (k)); *len += (k); } while (0)
    PUT("\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': piece = "\\\""; n = 2; break;
        case '\\': piece = "\\\\"; n = 2; break;
        case '\n': piece = "\\n"; n = 2; break;
        case '\r': piece = "\\r"; n = 2; break;
        case '\t': piece = "\\t"; n = 2; break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                piece = esc;
                n = 6;
            } else {
                piece = (const char *)p;
                n = 1;
            }
        }
        PUT(piece, n);
    }
    PUT("\"", 1);
#undef PUT
}

void json_fput_string(FILE *f, const char *s)
{
    char buf[8192];
    size_t len = 0;
    json_put_string(buf, sizeof buf, &len, s);
    if (len < sizeof buf) {
        fwrite(buf, 1, len, f);
        return;
    }
    /* Longer than the buffer: escape it piece by piece (the pieces' quotes dropped). */
    fputc('"', f);
    char piece[1025];
    for (size_t off = 0, n = strlen(s); off < n; off += 1024) {
        snprintf(piece, sizeof piece, "%.1024s", s + off);
        len = 0;
        json_put_string(buf, sizeof buf, &len, piece);
        fwrite(buf + 1, 1, len - 2, f);
    }
    fputc('"', f);
}
