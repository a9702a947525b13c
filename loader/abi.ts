// The Solo5 spt ABI v2 constants, in one place, grouped by the section of
// docs/abi.md that defines them. Nothing here is tunable: changing a
// value breaks binary compatibility with reference-built guests.

// abi.md §1 Guest memory layout
export const SPT_HOST_MEM_BASE = 0x10000n;
export const SPT_GUEST_MIN_BASE = 0x100000n;
export const PAGE_SIZE = 0x1000n;
export const DEFAULT_MEM_MIB = 512;
/** Upper bound we accept for --mem. The reference only lets mmap decide; an
 *  explicit bound turns "absurd" into a clear error rather than an ENOMEM. */
export const MAX_MEM_MIB = 65536;

// abi.md §2 Boot information
export const SPT_BOOT_INFO_BASE = SPT_HOST_MEM_BASE + 0x1000n; // 0x11000
export const BOOT_INFO_SIZE = 40;
export const SPT_CMDLINE_SIZE = 8192;

// abi.md §5 Notes
export const NOTE_NAME = 'Solo5';
export const NOTE_HEADER_SIZE = 20; // 12-byte nhdr + "Solo5\0" padded to 8
export const ABI1_NOTE_TYPE = 0x31494241; // "ABI1"
export const MFT1_NOTE_TYPE = 0x3154464d; // "MFT1"
export const ABI1_NOTE_ALIGN = 4;
export const MFT1_NOTE_ALIGN = 8;
export const ABI1_NOTE_MAX_SIZE = 32;
export const MFT1_NOTE_MAX_SIZE = 4 + 8 + 64 * 104;

export enum AbiTarget {
  HVT = 1,
  SPT = 2,
  VIRTIO = 3,
  MUEN = 4,
  GENODE = 5,
  XEN = 6,
}
export const SPT_ABI_VERSION = 2;

// abi.md §5.2 Manifest
export const MFT_VERSION = 1;
export const MFT_NAME_SIZE = 68;
export const MFT_ENTRY_SIZE = 104;
export const MFT_HEADER_SIZE = 8;
export const MFT_MAX_ENTRIES = 64;
export enum MftType {
  BLOCK_BASIC = 1,
  NET_BASIC = 2,
  RESERVED_FIRST = 0x40000000,
}
/** Offsets inside one struct mft_entry. */
export const MFT_ENTRY = {
  name: 0,
  type: 68,
  blockCapacity: 72,
  blockSize: 80,
  netMac: 72,
  netMtu: 78,
  hostfd: 88,
  attached: 96,
} as const;

// abi.md §6 ELF
export const ELF = {
  EI_NIDENT: 16,
  ELFCLASS64: 2,
  ELFDATA2LSB: 1,
  EV_CURRENT: 1,
  ET_EXEC: 2,
  ET_DYN: 3,
  EM_X86_64: 62,
  EHDR_SIZE: 64,
  PHDR_SIZE: 56,
  PT_LOAD: 1,
  PT_INTERP: 3,
  PT_NOTE: 4,
  PT_TLS: 7,
  PF_X: 1,
  PF_W: 2,
  PF_R: 4,
} as const;

// abi.md §9 Yield / polling
export const SPT_INTERNAL_TIMERFD = 0xfffffffen;

