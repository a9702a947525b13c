/*
 * tendril-oci's native front: what the files of native/oci share.
 *
 * containerd's shim calls this program for every runtime command. It runs
 * them itself (they only read a small state file, write a byte to a FIFO
 * or send a signal), hands the containers that are not unikernels to runc,
 * and starts Node only for `create` of a unikernel (supervisor/oci). The
 * state file's names and keys come from supervisor/oci/contract.ts, as the
 * generated contract.h.
 */
#ifndef TENDRIL_OCI_H
#define TENDRIL_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "contract.h"

#define PROG "tendril-oci"
#define DEFAULT_ROOT "/run/tendril-oci"

/* Global options, as runc has them (plus --delegate). */
struct globals {
    const char *root;
    const char *log;       /* NULL: errors only on stderr */
    bool log_json;
    const char *delegate;  /* --delegate=PATH: the runc for non-unikernels */
    /* Options passed on unchanged to runc for delegated containers. */
    const char *pass[16];
    int npass;
};

/* log.c: the --log file, in runc's (logrus's) record format. */
void log_open(const struct globals *g);
void log_argv(int argc, char **argv);
void log_info(const char *msg);
void log_error(const char *msg);
/* Prints "tendril-oci: MSG" on stderr, logs it, exits 1. */
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);

/* json.c: just enough JSON to read config.json and to write strings. */
const char *json_skip_ws(const char *p);
const char *json_member(const char *obj, const char *key);
const char *json_index(const char *arr, int i);
bool json_string(const char *p, char *out, size_t size);
const char *json_skip_value(const char *p);
void json_put_string(char *out, size_t size, size_t *len, const char *s);
void json_fput_string(FILE *f, const char *s);

/* state.c: ROOT/ID and its record. */
#define STATE_VALUE_MAX 4096
struct state {
    char runtime[16];
    char delegate[STATE_VALUE_MAX];
    pid_t pid;
    char start_time[32];
    char bundle[STATE_VALUE_MAX];
    char rootfs[STATE_VALUE_MAX];
    char created[64];
    char *annotations;     /* malloc'd JSON, "{}" if none */
    char netns[STATE_VALUE_MAX];
    char pod_iface[32];
    char pod_addr[64];
    char pod_gateway[64];
    char pod_tap[32];
    /* A jailed guest: its host pid and start time (the pid above is its waiter), and its cgroups, ':'-separated. */
    pid_t guest_pid;
    char guest_start_time[32];
    char cgroups[STATE_VALUE_MAX];
};
void check_id(const char *id);
void container_dir(char *out, size_t size, const char *root, const char *id);
bool container_exists(const char *root, const char *id);
/* false if ROOT/ID/state does not exist (or cannot be read). */
bool state_load(const char *root, const char *id, struct state *st);
void state_save_delegated(const char *root, const char *id, const char *delegate, const char *bundle);
void remove_tree(const char *path);

/* proc.c: the container's process, as /proc shows it. */
enum status { ST_CREATED, ST_RUNNING, ST_PAUSED, ST_STOPPED };
const char *status_name(enum status s);
enum status status_of(const struct state *st);
bool still_ours(const struct state *st);
bool wait_gone(const struct state *st, int ms);
bool guest_still_ours(const struct state *st);
void remove_cgroups(const struct state *st);
int seccomp_mode(pid_t pid);

/* verbs.c: the commands for unikernel containers. */
int verb_start(const struct globals *g, const char *id, struct state *st);
int verb_state(const char *id, struct state *st);
int verb_kill(const char *id, struct state *st, const char *sig, bool all);
int verb_pause(const char *id, struct state *st, bool resume);
int verb_ps(const char *id, struct state *st, const char *format);
int verb_delete(const struct globals *g, const char *id, struct state *st, bool force);
int parse_signal(const char *word);

/* podnet.c: hand the pod's interface back after its guest is gone. */
void podnet_restore(const struct state *st);

/* classify.c: is process.args[0] of the bundle a Solo5 unikernel? */
bool bundle_is_unikernel(const char *bundle, char *why, size_t why_size);

/* delegate.c: runc for everything that is not a unikernel. */
const char *find_runc(const struct globals *g);
int run_runc(const char *runc, const struct globals *g, const char *runc_root, int argc, char **argv, bool wait);

#endif
