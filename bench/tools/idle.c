/*
 * idle: the measured baseline for a running guest's resident memory. The
 * smallest honest C program (no stdio, so no buffers) in the state a Solo5
 * guest spends its life in: started, then asleep in epoll_pwait() on a
 * timerfd, as in solo5_yield(). Built static (-static -O2): no dynamic loader
 * or shared library is counted, as none is in a guest. Writes "ready" when it
 * is about to wait, then waits until it is killed.
 */
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
    int ep = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec its = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
    struct epoll_event ev = { .events = EPOLLIN }, got;
    if (ep < 0 || tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
        static const char msg[] = "idle: cannot set up its timer\n";
        (void)!write(2, msg, sizeof msg - 1);
        return 1;
    }
    if (write(1, "ready\n", 6) != 6)
        return 1;
    for (;;) {
        uint64_t ticks;
        if (epoll_pwait(ep, &got, 1, -1, NULL) > 0 && read(tfd, &ticks, sizeof ticks) < 0)
            return 1;
    }
}
