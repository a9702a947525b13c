/*
 * tendril test guests: shared helpers.
 *
 * Test guests use nothing but <solo5.h>: this header gives them console
 * output (puts, a small printf), a few string helpers and a decimal parser,
 * all as static inline functions so that each guest is one .c file plus
 * this header. Every printf() is formatted into a buffer and sent with a
 * single solo5_console_write(), so a line never interleaves.
 *
 * Define UTIL_NET before including it to get the ARP/ICMP echo responder
 * the network guests share.
 */

#ifndef TENDRIL_TEST_UTIL_H
#define TENDRIL_TEST_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <solo5.h>

#define UNUSED __attribute__((unused))

static inline size_t u_strlen(const char *s)
{
    size_t n = 0;

    while (s[n])
        n++;
    return n;
}

static inline int u_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (int)(unsigned char)*a - (int)(unsigned char)*b;
}

static inline void puts(const char *s)
{
    solo5_console_write(s, u_strlen(s));
}

/* Append-only text buffer: writes past the end are dropped. */
struct u_buf {
    char *p;
    size_t size;
    size_t len;
};

static inline void u_putc(struct u_buf *b, char c)
{
    if (b->len < b->size)
        b->p[b->len] = c;
    b->len++;
}

static inline void u_putnum(struct u_buf *b, unsigned long long v,
                            unsigned base, int width, char padc)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (; width > n; width--)
        u_putc(b, padc);
    while (n)
        u_putc(b, tmp[--n]);
}

/*
 * printf subset: %s %c %d %u %x %p %%, modifiers l, ll, z, and a width
 * with optional 0 flag for numbers.
 */
static inline size_t u_vformat(char *out, size_t size, const char *fmt,
                               va_list ap)
{
    struct u_buf b = { out, size, 0 };

    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            u_putc(&b, *f);
            continue;
        }
        f++;
        char padc = ' ';
        int width = 0, lng = 0;

        if (*f == '0') {
            padc = '0';
            f++;
        }
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        while (*f == 'l' || *f == 'z') {
            lng++;
            f++;
        }
        switch (*f) {
        case 'd': {
            long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            if (v < 0) {
                u_putc(&b, '-');
                u_putnum(&b, 0ULL - (unsigned long long)v, 10, width - 1,
                         padc);
            } else {
                u_putnum(&b, (unsigned long long)v, 10, width, padc);
            }
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = lng ? va_arg(ap, unsigned long long)
                                       : va_arg(ap, unsigned int);
            u_putnum(&b, v, *f == 'u' ? 10 : 16, width, padc);
            break;
        }
        case 'p':
            u_putc(&b, '0');
            u_putc(&b, 'x');
            u_putnum(&b, (uintptr_t)va_arg(ap, void *), 16, width, padc);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            while (*s)
                u_putc(&b, *s++);
            break;
        }
        case 'c':
            u_putc(&b, (char)va_arg(ap, int));
            break;
        case '%':
            u_putc(&b, '%');
            break;
        default:
            return b.len; /* unsupported: stop rather than misread args */
        }
    }
    return b.len;
}

static inline void printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = u_vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    solo5_console_write(buf, n < sizeof buf ? n : sizeof buf);
}

/*
 * Parse an optionally signed decimal number at the start of s. Returns
 * false if s does not start with one; *end (if not NULL) is set past it.
 */
static inline bool u_parse_int(const char *s, long long *out, const char **end)
{
    bool neg = false;
    long long v = 0;

    while (*s == ' ')
        s++;
    if (*s == '-' || *s == '+')
        neg = (*s++ == '-');
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    *out = neg ? -v : v;
    if (end != NULL)
        *end = s;
    return true;
}

/*
 * The first decimal word of the command line, or `dflt` if there is none.
 * Other words ("limit", for instance) are skipped.
 */
static inline long long u_cmdline_number(const char *cmdline, long long dflt)
{
    const char *p = cmdline;

    while (*p) {
        long long v;
        const char *end;

        while (*p == ' ')
            p++;
        if (u_parse_int(p, &v, &end) && (*end == ' ' || *end == '\0'))
            return v;
        while (*p && *p != ' ')
            p++;
    }
    return dflt;
}

/* Stop the test with FAILURE, naming the check that failed. */
#define FAIL(...)                                                             \
    do {                                                                      \
        printf("FAILURE: " __VA_ARGS__);                                      \
        puts("\n");                                                           \
        return SOLO5_EXIT_FAILURE;                                            \
    } while (0)

/* Launder a value so the compiler cannot reason about it. */
#define OPAQUE(v)                                                             \
    ({                                                                        \
        __typeof__(v) opaque_v_ = (v);                                        \
        __asm__ __volatile__("" : "+r"(opaque_v_));                           \
        opaque_v_;                                                            \
    })

#ifdef UTIL_NET
/* ------------------------------------------------------------------------
 * ARP and ICMP echo responder for the network guests.
 *
 * Enough IPv4 to answer `ping`: reply to ARP requests for our address and
 * turn ICMP echo requests into echo replies in place. Everything else is
 * ignored.
 */

#define ETHERTYPE_IP  0x0800
#define ETHERTYPE_ARP 0x0806
#define IPPROTO_ICMP  1
#define ICMP_ECHO_REPLY   0
#define ICMP_ECHO_REQUEST 8

struct net_if {
    const char *name;
    solo5_handle_t h;
    struct solo5_net_info info;
    uint8_t ip[4];
    uint8_t *buf;    /* mtu + SOLO5_NET_HLEN bytes */
    uint64_t replies;
};

static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void u_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    while (n--)
        *dst++ = *src++;
}

static inline bool u_same(const uint8_t *a, const uint8_t *b, size_t n)
{
    while (n--) {
        if (*a++ != *b++)
            return false;
    }
    return true;
}

/* The Internet checksum (RFC 1071) of n bytes. */
static inline uint16_t inet_csum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;

    for (; n > 1; n -= 2, p += 2)
        sum += get16(p);
    if (n)
        sum += (uint32_t)p[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* "xx:xx:xx:xx:xx:xx" into out (18 bytes). */
static inline void mac_str(const uint8_t *mac, char *out)
{
    for (int i = 0; i < 6; i++) {
        out[3 * i] = "0123456789abcdef"[mac[i] >> 4];
        out[3 * i + 1] = "0123456789abcdef"[mac[i] & 15];
        out[3 * i + 2] = i < 5 ? ':' : '\0';
    }
}

/* Acquire the device and carve its frame buffer out of *heap. */
static inline bool net_if_open(struct net_if *nif, const char *name,
                               const uint8_t ip[4], uintptr_t *heap)
{
    char mac[18];

    nif->name = name;
    if (solo5_net_acquire(name, &nif->h, &nif->info) != SOLO5_R_OK) {
        printf("Could not acquire network device '%s'\n", name);
        return false;
    }
    u_copy(nif->ip, ip, 4);
    nif->buf = (uint8_t *)*heap;
    *heap += (nif->info.mtu + SOLO5_NET_HLEN + 63) & ~(size_t)63;
    nif->replies = 0;
    mac_str(nif->info.mac_address, mac);
    printf("Serving ping on %u.%u.%u.%u (%s), MAC %s, MTU %zu\n", ip[0],
           ip[1], ip[2], ip[3], name, mac, nif->info.mtu);
    return true;
}

/*
 * Answer an ARP request for our address. Returns true if a reply was sent.
 */
static inline bool handle_arp(struct net_if *nif, uint8_t *f, size_t len)
{
    uint8_t *a = f + SOLO5_NET_HLEN;

    if (len < SOLO5_NET_HLEN + 28)
        return false;
    /* Ethernet/IPv4 request (htype 1, ptype 0x0800, 6, 4, op 1). */
    if (get16(a) != 1 || get16(a + 2) != ETHERTYPE_IP || a[4] != 6
        || a[5] != 4 || get16(a + 6) != 1)
        return false;
    if (!u_same(a + 24, nif->ip, 4))
        return false;

    put16(a + 6, 2);                             /* op: reply */
    u_copy(a + 18, a + 8, 10);                   /* target = sender */
    u_copy(a + 8, nif->info.mac_address, 6);     /* sender = us */
    u_copy(a + 14, nif->ip, 4);
    u_copy(f, a + 18, 6);                        /* to the asker */
    u_copy(f + 6, nif->info.mac_address, 6);
    return solo5_net_write(nif->h, f, SOLO5_NET_HLEN + 28) == SOLO5_R_OK;
}

/*
 * If f is an ICMP echo request for us, return its ICMP message (and its
 * length in *icmp_len) so the caller can look at the payload; else NULL.
 */
static inline uint8_t *icmp_echo_request(struct net_if *nif, uint8_t *f,
                                         size_t len, size_t *icmp_len)
{
    uint8_t *ip = f + SOLO5_NET_HLEN;

    if (len < SOLO5_NET_HLEN + 20)
        return NULL;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    size_t total = get16(ip + 2);

    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl + 8
        || SOLO5_NET_HLEN + total > len)
        return NULL;
    if (ip[9] != IPPROTO_ICMP || !u_same(ip + 16, nif->ip, 4))
        return NULL;
    if ((get16(ip + 6) & 0x3fff) != 0) /* fragments: not handled */
        return NULL;
    uint8_t *icmp = ip + ihl;
    if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0)
        return NULL;
    *icmp_len = total - ihl;
    return icmp;
}

/* Turn the echo request in f into a reply and send it. */
static inline bool icmp_echo_reply(struct net_if *nif, uint8_t *f,
                                   uint8_t *icmp, size_t icmp_len)
{
    uint8_t *ip = f + SOLO5_NET_HLEN;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    uint8_t tmp[6];

    u_copy(tmp, f, 6);                           /* swap MACs */
    u_copy(f, f + 6, 6);
    u_copy(f + 6, tmp, 6);
    u_copy(ip + 16, ip + 12, 4);                 /* swap IPs */
    u_copy(ip + 12, nif->ip, 4);
    ip[8] = 64;                                  /* fresh TTL */
    put16(ip + 10, 0);
    put16(ip + 10, inet_csum(ip, ihl));
    icmp[0] = ICMP_ECHO_REPLY;
    put16(icmp + 2, 0);
    put16(icmp + 2, inet_csum(icmp, icmp_len));
    if (solo5_net_write(nif->h, f, SOLO5_NET_HLEN + ihl + icmp_len)
        != SOLO5_R_OK)
        return false;
    nif->replies++;
    return true;
}

/* Frames handled per net_if_drain() call, so a busy device cannot starve
 * the others: the next solo5_yield() returns at once if more are queued. */
#define NET_DRAIN_BATCH 64

/*
 * Read and handle the frames queued on nif, up to NET_DRAIN_BATCH.
 * check(), if not NULL, is shown each echo request's ICMP message before it
 * is answered; other(), if not NULL, gets every other IPv4 frame (a guest's
 * own protocol, e.g. a UDP echo). Returns false on a device error.
 */
static inline bool net_if_drain_ip(struct net_if *nif,
                                   void (*check)(const uint8_t *icmp,
                                                 size_t icmp_len),
                                   void (*other)(struct net_if *nif,
                                                 uint8_t *frame, size_t len))
{
    for (int n = 0; n < NET_DRAIN_BATCH; n++) {
        size_t len;
        solo5_result_t r = solo5_net_read(nif->h, nif->buf,
                                          nif->info.mtu + SOLO5_NET_HLEN,
                                          &len);
        if (r == SOLO5_R_AGAIN)
            return true;
        if (r != SOLO5_R_OK) {
            printf("%s: solo5_net_read() failed: %d\n", nif->name, (int)r);
            return false;
        }
        if (len < SOLO5_NET_HLEN)
            continue;

        uint8_t *f = nif->buf;
        uint16_t type = get16(f + 12);

        if (type == ETHERTYPE_ARP) {
            (void)handle_arp(nif, f, len);
        } else if (type == ETHERTYPE_IP) {
            size_t icmp_len;
            uint8_t *icmp = icmp_echo_request(nif, f, len, &icmp_len);

            if (icmp == NULL) {
                if (other != NULL)
                    other(nif, f, len);
                continue;
            }
            if (check != NULL)
                check(icmp, icmp_len);
            (void)icmp_echo_reply(nif, f, icmp, icmp_len);
        }
    }
    return true;
}

static inline bool net_if_drain(struct net_if *nif,
                                void (*check)(const uint8_t *icmp,
                                              size_t icmp_len))
{
    return net_if_drain_ip(nif, check, NULL);
}

/*
 * Serve ping on every interface until each has sent `limit` echo replies
 * (never, if limit is 0). check() as for net_if_drain(). Returns false on
 * a device error.
 */
static inline bool net_serve(struct net_if *nifs, int n, uint64_t limit,
                             void (*check)(const uint8_t *icmp,
                                           size_t icmp_len))
{
    for (;;) {
        solo5_handle_set_t ready = 0;
        bool done = limit != 0;

        /* Wake up at least once a second even if nothing arrives. */
        solo5_yield(solo5_clock_monotonic() + 1000000000ULL, &ready);
        for (int i = 0; i < n; i++) {
            if ((ready & (1ULL << nifs[i].h)) && !net_if_drain(&nifs[i], check))
                return false;
            if (nifs[i].replies < limit)
                done = false;
        }
        if (done)
            return true;
    }
}
#endif /* UTIL_NET */

#endif /* TENDRIL_TEST_UTIL_H */
