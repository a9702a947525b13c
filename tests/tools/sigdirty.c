/*
 * sigdirty PROGRAM ARGS...: execs PROGRAM with a dirty signal state, the
 * kind a careless launcher (a shell with traps, a daemon) leaves behind:
 * SIGINT, SIGTERM, SIGPIPE, SIGHUP and SIGXFSZ ignored, SIGUSR1, SIGUSR2 and
 * SIGALRM blocked. Tests use it to check that a guest starts with every
 * signal at its default and none blocked, whatever launched tendril.
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sigdirty PROGRAM ARGS...\n");
        return 2;
    }
    int ignored[] = { SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGXFSZ };
    for (unsigned i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        signal(ignored[i], SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    execvp(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
