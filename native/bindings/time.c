/*
 * tendril bindings: clocks and solo5_yield() (abi.md §8, abi.md §9).
 *
 * Solo5 monotonic time is the host's CLOCK_MONOTONIC, read with a real
 * syscall each time (there is no vDSO in the guest). Waiting is done the
 * only way the seccomp policy allows: arm the tender's timerfd with an
 * absolute deadline, then block in epoll_pwait on the tender's epoll set,
 * which holds that timerfd and every attached tap.
 */

#include "bindings.h"

static int epollfd = -1;
static int timerfd = -1;
/* Events to ask for: one per tap plus one for the timer. */
static int nevents = 1;

void tnd_time_init(int epfd, int tfd, unsigned nnet)
{
    epollfd = epfd;
    timerfd = tfd;
    if (nnet > MFT_MAX_ENTRIES)
        nnet = MFT_MAX_ENTRIES;
    nevents = (int)nnet + 1;
}

static solo5_time_t clock_ns(int clk)
{
    struct tnd_timespec ts;
    long rc = tnd_sys_clock_gettime(clk, &ts);

    TND_ASSERT(rc == 0);
    return (solo5_time_t)ts.tv_sec * 1000000000ULL
           + (solo5_time_t)ts.tv_nsec;
}

solo5_time_t solo5_clock_monotonic(void)
{
    return clock_ns(TND_CLOCK_MONOTONIC);
}

solo5_time_t solo5_clock_wall(void)
{
    return clock_ns(TND_CLOCK_REALTIME);
}

void solo5_yield(solo5_time_t deadline, solo5_handle_set_t *ready_set)
{
    struct tnd_itimerspec its = {
        .it_interval = { 0, 0 },
        .it_value = {
            .tv_sec = (int64_t)(deadline / 1000000000ULL),
            /* An all-zero it_value would disarm the timer and leave epoll
             * waiting forever; bit 0 of the nanoseconds costs 1 ns and
             * keeps even a deadline of 0 armed (it fires at once). */
            .tv_nsec = (int64_t)(deadline % 1000000000ULL) | 1,
        },
    };
    struct tnd_epoll_event events[MFT_MAX_ENTRIES + 1];
    solo5_handle_set_t ready = 0;
    long rc;

    rc = tnd_sys_timerfd_settime(timerfd, TND_TFD_TIMER_ABSTIME, &its, NULL);
    TND_ASSERT(rc == 0);

    do {
        rc = tnd_sys_epoll_pwait(epollfd, events, nevents, -1);
    } while (rc == -TND_EINTR);
    TND_ASSERT(rc >= 0);

    for (long i = 0; i < rc; i++) {
        uint64_t idx = events[i].data;

        /* The timer only says "deadline reached"; it is never read, since
         * re-arming it on the next yield clears the expiry. */
        if (idx == SPT_INTERNAL_TIMERFD)
            continue;
        if (idx < MFT_MAX_ENTRIES)
            ready |= 1ULL << idx;
    }
    if (ready_set != NULL)
        *ready_set = ready;
}
