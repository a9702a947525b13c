/*
 * execplan: the floor for launch latency. Runs a program N times with
 * fork + execve + waitpid from C and prints per-launch latencies (µs), one
 * per line. Two modes:
 *   execplan stub STUB PLANFILE N   the tendril stub on a ready launch plan
 *                                   (a plan made for the 'place' fd layout:
 *                                   epoll at 3, timerfd at 4, plan at 5)
 *   execplan exec PROGRAM N          any program, e.g. /bin/true
 * The guest's stdout goes to /dev/null.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void move_fd(int from, int to)
{
    if (from != to && (dup2(from, to) < 0 || close(from) < 0)) {
        perror("dup2");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    int stub_mode = argc == 5 && strcmp(argv[1], "stub") == 0;
    if (!stub_mode && !(argc == 4 && strcmp(argv[1], "exec") == 0)) {
        fprintf(stderr, "usage: execplan stub STUB PLANFILE N | execplan exec PROGRAM N\n");
        return 2;
    }
    int n = atoi(argv[stub_mode ? 4 : 3]);
    int plan = -1;
    if (stub_mode) {
        /* fds 3..5 must be ours: park anything inherited there. */
        for (int fd = 3; fd <= 5; fd++)
            close(fd);
        int ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        move_fd(ep, 3);
        move_fd(tfd, 4);
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0xfffffffe };
        epoll_ctl(3, EPOLL_CTL_ADD, 4, &ev);
        int src = open(argv[3], O_RDONLY);
        struct stat st;
        if (src < 0 || fstat(src, &st) < 0) {
            perror(argv[3]);
            return 2;
        }
        plan = memfd_create("plan", 0);
        char *buf = malloc(st.st_size);
        if (read(src, buf, st.st_size) != st.st_size || write(plan, buf, st.st_size) != st.st_size) {
            perror("copy plan");
            return 2;
        }
        close(src);
        move_fd(plan, 5);
        plan = 5;
    }
    int devnull = open("/dev/null", O_WRONLY);
    for (int i = 0; i < n; i++) {
        if (plan >= 0)
            lseek(plan, 0, SEEK_SET); /* the stub reads from the shared offset */
        double t0 = now_us();
        pid_t pid = fork();
        if (pid == 0) {
            dup2(devnull, 1);
            if (stub_mode) {
                char *args[] = { "tendril: bench", "5", NULL };
                execve(argv[2], args, (char *[]){ NULL });
            } else {
                char *args[] = { argv[2], NULL };
                execve(argv[2], args, (char *[]){ NULL });
            }
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        double t1 = now_us();
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "execplan: run %d ended with status 0x%x\n", i, status);
            return 1;
        }
        printf("%.1f\n", t1 - t0);
    }
    return 0;
}
