/*
 * tendril bindings: devices in the manifest (abi.md §2, abi.md §5.2, abi.md §15.3).
 *
 * The tender leaves its filled-in copy of the manifest in low memory; a
 * device's handle is its index in that manifest. The spt bindings trust the
 * copy (the tender validated the note it came from and wrote the rest).
 *
 * solo5.h says a device may be acquired once. The reference bindings do not
 * enforce it (defect D2); tendril keeps one "acquired" flag per entry here,
 * in the bindings' own memory rather than in the manifest copy, so the copy
 * stays exactly what the tender wrote.
 */

#include "bindings.h"

static const struct mft *mft;
static bool acquired[MFT_MAX_ENTRIES];

void tnd_mft_init(const void *p)
{
    mft = p;
}

static uint32_t entry_count(void)
{
    if (mft == NULL)
        return 0;
    return mft->entries < MFT_MAX_ENTRIES ? mft->entries : MFT_MAX_ENTRIES;
}

unsigned tnd_mft_count(uint32_t type)
{
    unsigned n = 0;

    for (uint32_t i = 0; i < entry_count(); i++) {
        if (mft->e[i].type == type)
            n++;
    }
    return n;
}

solo5_result_t tnd_mft_acquire(const char *name, uint32_t type,
                               solo5_handle_t *handle,
                               const struct mft_entry **entry)
{
    if (name == NULL || handle == NULL)
        return SOLO5_R_EINVAL;

    for (uint32_t i = 0; i < entry_count(); i++) {
        const struct mft_entry *e = &mft->e[i];

        if (e->type != type || !e->attached)
            continue;
        /* Entry names are NUL-terminated within MFT_NAME_SIZE, so comparing
         * that many bytes also rejects a longer name with the same start. */
        if (strncmp(name, e->name, MFT_NAME_SIZE) != 0)
            continue;
        if (acquired[i])
            return SOLO5_R_EINVAL;
        acquired[i] = true;
        *handle = i;
        *entry = e;
        return SOLO5_R_OK;
    }
    return SOLO5_R_EINVAL;
}

const struct mft_entry *tnd_mft_get(solo5_handle_t handle, uint32_t type)
{
    if (handle >= entry_count() || !acquired[handle])
        return NULL;

    const struct mft_entry *e = &mft->e[handle];

    if (e->type != type || !e->attached)
        return NULL;
    return e;
}
