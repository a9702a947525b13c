/*
 * What this CPU offers a guest, in the terms a snapshot records
 * (struct snapshot_cpu in loader/formats.ts): the instruction-set feature
 * words, XCR0, the standard-format XSAVE layout and the components enabled
 * only on first use. The monitor records them with a snapshot; `tendril-stub
 * --cpu` describes this CPU to the supervisor, which refuses to restore a
 * snapshot onto a CPU that lacks any of it: a guest that detected AVX2 at
 * boot never wakes on a CPU without it, and an XSAVE area is only loaded
 * into the layout it was saved from. (cpuid is slow under virtualization,
 * tens of µs a call, so a restore itself never executes it.)
 *
 * Included by stub.c (one translation unit, no libc).
 */
#ifndef TENDRIL_STUB_CPU_H
#define TENDRIL_STUB_CPU_H

#define XFEATURE_PKRU 9

static inline void cpuid2(u32 leaf, u32 sub, u32 r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

/* The XSAVE layout table holds u32 pairs in a byte array: read and write it bytewise. */
static inline u32 get_u32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static inline void put_u32(u8 *p, u32 v)
{
    p[0] = (u8)v;
    p[1] = (u8)(v >> 8);
    p[2] = (u8)(v >> 16);
    p[3] = (u8)(v >> 24);
}

static inline u64 xgetbv0(void)
{
    u32 lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((u64)hi << 32) | lo;
}

/*
 * Bits that describe the machine or the OS rather than instructions a
 * program can use, so they must not decide a restore: the hypervisor bit
 * (leaf 1 ecx 31), the APIC-related and speculation-control bits of leaf 7
 * edx (everything but the instruction bits kept below).
 */
#define CPUID_1_ECX_MASK 0x7fffffffu
/* leaf 7 edx: AVX512_4VNNIW 2, AVX512_4FMAPS 3, FSRM 4, AVX512_VP2INTERSECT 8,
 * SERIALIZE 14, TSXLDTRK 16, AMX_BF16 22, AVX512_FP16 23, AMX_TILE 24, AMX_INT8 25. */
#define CPUID_7_EDX_MASK ((1u << 2) | (1u << 3) | (1u << 4) | (1u << 8) | (1u << 14) | (1u << 16) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25))

/* Whether this CPU and kernel have XSAVE enabled (CPUID.1:ECX.OSXSAVE). */
static inline int cpu_has_osxsave(void)
{
    u32 r[4];
    cpuid2(1, 0, r);
    return (r[2] >> 27) & 1;
}

/* Fills the feature words, xcr0 and the XSAVE layout of snapshot_cpu c. */
static void cpu_identify(struct snapshot_cpu *c)
{
    u32 r[4];
    cpuid2(0, 0, r);
    u32 max = r[0];
    cpuid2(1, 0, r);
    c->cpuid_1_ecx = r[2] & CPUID_1_ECX_MASK;
    c->cpuid_1_edx = r[3];
    if (max >= 7) {
        cpuid2(7, 0, r);
        c->cpuid_7_ebx = r[1];
        c->cpuid_7_ecx = r[2];
        c->cpuid_7_edx = r[3] & CPUID_7_EDX_MASK;
    }
    cpuid2(0x80000000u, 0, r);
    if (r[0] >= 0x80000001u) {
        cpuid2(0x80000001u, 0, r);
        c->cpuid_81_ecx = r[2];
        c->cpuid_81_edx = r[3];
    }
    for (u32 i = 0; i < sizeof c->xsave_layout; i++)
        c->xsave_layout[i] = 0;
    c->xcr0 = 0;
    c->xfd_components = 0;
    if (max < 0xd || !cpu_has_osxsave())
        return;
    cpuid2(0xd, 1, r);
    c->cpuid_d1_eax = r[0];
    c->xcr0 = xgetbv0();
    for (u32 i = 2; i < SNAPSHOT_XSAVE_COMPONENTS; i++) {
        if (!((c->xcr0 >> i) & 1))
            continue;
        cpuid2(0xd, i, r);
        put_u32(c->xsave_layout + 8 * i, r[1]);     /* offset */
        put_u32(c->xsave_layout + 8 * i + 4, r[0]); /* size */
        if (r[2] & 4)
            c->xfd_components |= 1ul << i;
    }
}

/* `tendril-stub --cpu`: this CPU's snapshot_cpu (no registers) on stdout. */
__attribute__((noreturn)) static void cpu_probe(void)
{
    struct snapshot_cpu c = { .magic = SNAPSHOT_CPU_MAGIC, .flags = 0 };
    cpu_identify(&c);
    if (c.xcr0)
        c.flags = SNAPSHOT_CPU_F_XSAVE;
    const u8 *p = (const u8 *)&c;
    u64 left = sizeof c;
    while (left > 0) {
        long n = sys_write(1, p, left);
        if (n <= 0)
            sys_exit_group(1);
        p += n;
        left -= (u64)n;
    }
    sys_exit_group(0);
}

#endif
