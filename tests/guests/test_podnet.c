/*
 * test_podnet: a pod's network service, configured from its command line
 * the way Solo5 applications are (MirageOS style):
 *
 *   --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [N]
 *
 * Device: NET_BASIC "service0" (test_podnet.json). It answers ARP and ICMP
 * echo for ADDR and echoes every UDP datagram sent to ADDR (any port) back
 * to its sender, with a correct UDP checksum. It prints its configuration
 * (address, prefix, gateway, MAC, MTU) first, then one line per UDP echo,
 * and runs until killed, or until it has answered N echo requests and
 * datagrams together (then SUCCESS, exit 0). A malformed command line is
 * FAILURE, exit 1.
 */

#define UTIL_NET
#include "util.h"

#define IPPROTO_UDP 17

/* "a.b.c.d" into ip; the rest of the word (after the address) in *end. */
static bool parse_ipv4(const char *s, uint8_t ip[4], const char **end)
{
    for (int i = 0; i < 4; i++) {
        long long v;
        if (!u_parse_int(s, &v, &s) || v < 0 || v > 255)
            return false;
        ip[i] = (uint8_t)v;
        if (i < 3 && *s++ != '.')
            return false;
    }
    *end = s;
    return true;
}

static bool starts(const char *s, const char *prefix, const char **rest)
{
    while (*prefix) {
        if (*s++ != *prefix++)
            return false;
    }
    *rest = s;
    return true;
}

struct config {
    uint8_t ip[4];
    long long prefix;
    uint8_t gw[4];
    bool has_gw;
    long long limit;
};

static bool parse_cmdline(const char *p, struct config *c)
{
    bool has_ip = false;
    c->has_gw = false;
    c->limit = 0;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *rest, *end;
        if (starts(p, "--ipv4=", &rest)) {
            if (!parse_ipv4(rest, c->ip, &end) || *end != '/' || !u_parse_int(end + 1, &c->prefix, &end) || c->prefix < 0 ||
                c->prefix > 32)
                return false;
            has_ip = true;
        } else if (starts(p, "--ipv4-gateway=", &rest)) {
            if (!parse_ipv4(rest, c->gw, &end))
                return false;
            c->has_gw = true;
        } else if (!u_parse_int(p, &c->limit, &end) || c->limit < 0) {
            return false;
        }
        if (*end != ' ' && *end != '\0')
            return false;
        p = end;
    }
    return has_ip;
}

/* One's-complement sum of n bytes, added to sum (not folded). */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    for (; n > 1; n -= 2, p += 2)
        sum += get16(p);
    if (n)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* If f is a UDP datagram for us, send it back to where it came from (net_if_drain_ip()'s other frames). */
static void udp_echo(struct net_if *nif, uint8_t *f, size_t len)
{
    uint8_t *ip = f + SOLO5_NET_HLEN;
    if (len < SOLO5_NET_HLEN + 28)
        return;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    size_t total = get16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl + 8 || SOLO5_NET_HLEN + total > len)
        return;
    if (ip[9] != IPPROTO_UDP || !u_same(ip + 16, nif->ip, 4) || (get16(ip + 6) & 0x3fff) != 0)
        return;
    uint8_t *udp = ip + ihl;
    size_t udp_len = get16(udp + 4);
    if (udp_len < 8 || udp_len > total - ihl)
        return;
    uint8_t tmp[6];
    uint16_t sport = get16(udp), dport = get16(udp + 2);

    u_copy(tmp, f, 6); /* swap MACs */
    u_copy(f, f + 6, 6);
    u_copy(f + 6, tmp, 6);
    u_copy(ip + 16, ip + 12, 4); /* swap IPs */
    u_copy(ip + 12, nif->ip, 4);
    ip[8] = 64;
    put16(ip + 10, 0);
    put16(ip + 10, inet_csum(ip, ihl));
    put16(udp, dport); /* swap ports */
    put16(udp + 2, sport);
    put16(udp + 6, 0);
    uint8_t pseudo[12];
    u_copy(pseudo, ip + 12, 8);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_UDP;
    put16(pseudo + 10, (uint16_t)udp_len);
    uint16_t sum = csum_fold(csum_add(csum_add(0, pseudo, 12), udp, udp_len));
    put16(udp + 6, sum ? sum : 0xffff);
    if (solo5_net_write(nif->h, f, SOLO5_NET_HLEN + total) != SOLO5_R_OK)
        return;
    printf("UDP echo: %zu bytes to %u.%u.%u.%u port %u\n", udp_len - 8, ip[16], ip[17], ip[18], ip[19], sport);
    nif->replies++;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    struct config c;
    uintptr_t heap = si->heap_start;
    struct net_if nif;

    puts("\n**** Solo5 standalone test_podnet ****\n\n");
    if (!parse_cmdline(si->cmdline, &c))
        FAIL("usage: --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [N]; got '%s'", si->cmdline);
    if (c.has_gw)
        printf("Pod network: %u.%u.%u.%u/%d, gateway %u.%u.%u.%u\n", c.ip[0], c.ip[1], c.ip[2], c.ip[3], (int)c.prefix, c.gw[0],
               c.gw[1], c.gw[2], c.gw[3]);
    else
        printf("Pod network: %u.%u.%u.%u/%d, no gateway\n", c.ip[0], c.ip[1], c.ip[2], c.ip[3], (int)c.prefix);
    if (!net_if_open(&nif, "service0", c.ip, &heap))
        return SOLO5_EXIT_FAILURE;
    for (;;) {
        solo5_handle_set_t ready = 0;
        solo5_yield(solo5_clock_monotonic() + 1000000000ULL, &ready);
        if ((ready & (1ULL << nif.h)) && !net_if_drain_ip(&nif, NULL, udp_echo))
            FAIL("network device error");
        if (c.limit && nif.replies >= (uint64_t)c.limit)
            break;
    }
    puts("Limit reached, exiting\n");
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
