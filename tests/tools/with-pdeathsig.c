/*
 * with-pdeathsig PROGRAM ARGS...: execs PROGRAM so that it gets SIGTERM
 * when the process that started it ends. Test servers start through it: a
 * test run killed from outside (a timeout, Ctrl-C) skips its teardowns,
 * and its servers must not outlive it. The death signal survives execve.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: with-pdeathsig PROGRAM ARGS...\n");
        return 2;
    }
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        perror("with-pdeathsig: prctl(PR_SET_PDEATHSIG)");
        return 127;
    }
    /* The parent may have ended before the death signal was armed. */
    if (getppid() != parent)
        return 127;
    execvp(argv[1], argv + 1);
    perror("with-pdeathsig: execvp");
    return 127;
}
