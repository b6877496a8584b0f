/*
 * powerloss.c - an LD_PRELOAD shim that keeps what a disk would hold after a power cut.
 *
 * Files under CRASHSIM_ROOT (a flat directory, absolute and resolved) are written as
 * usual; the shim only watches fsync() and fdatasync(). CRASHSIM_SHADOW (a directory
 * the caller filled with a copy of ROOT while nothing was open) is "the disk":
 *
 *   - fsync/fdatasync of a regular file under ROOT copies its whole current content to
 *     SHADOW (to a temporary name, then rename(): the copy is all or nothing). Writes
 *     not followed by a sync of their file never reach SHADOW. The file's name becomes
 *     durable with it, as ext4 makes a new file's entry durable with its first fsync.
 *   - fsync/fdatasync of ROOT itself makes its names durable: names gone from ROOT are
 *     removed from SHADOW (an unlink survives a power cut only after this, as POSIX
 *     says), names new in ROOT appear in SHADOW empty (their data was never synced).
 *   - nothing else reaches SHADOW: not write(), pwrite(), ftruncate(), unlink(), nor the
 *     -shm file SQLite maps into memory and never syncs.
 *
 * After SIGKILL, SHADOW is one state a disk may legally be in after a power cut at that
 * moment: the most pessimistic one, where every unsynced write is lost.
 *
 * Build: gcc -shared -fPIC -O2 -o powerloss.so powerloss.c -ldl
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int copy_file(const char *from, const char *to) {
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.powerloss-tmp", to);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) { close(in); return -1; }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (n > 0) {
            ssize_t w = write(out, p, (size_t)n);
            if (w < 0) { rc = -1; break; }
            p += w; n -= w;
        }
        if (rc) break;
    }
    if (n < 0) rc = -1;
    close(in);
    close(out);
    if (rc == 0) rc = rename(tmp, to);
    else unlink(tmp);
    return rc;
}

static int present(const char *dir, const char *name) {
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static void sync_names(const char *root, const char *shadow) {
    DIR *d = opendir(shadow);
    struct dirent *e;
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || strstr(e->d_name, ".powerloss-tmp")) continue;
            if (!present(root, e->d_name)) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", shadow, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    d = opendir(root);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || e->d_type != DT_REG) continue;
            if (!present(shadow, e->d_name)) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", shadow, e->d_name);
                int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd >= 0) close(fd);
            }
        }
        closedir(d);
    }
}

static void persist(int fd) {
    const char *root = getenv("CRASHSIM_ROOT");
    const char *shadow = getenv("CRASHSIM_SHADOW");
    if (!root || !shadow) return;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return;
    path[n] = '\0';
    size_t len = strlen(root);
    pthread_mutex_lock(&lock);
    int saved = errno;
    size_t plen = strlen(path);
    const char *gone = " (deleted)"; /* an unlinked file: its data can no longer be found */
    if (plen > strlen(gone) && strcmp(path + plen - strlen(gone), gone) == 0) {
        /* nothing reaches the disk under a name that no longer exists */
    } else if (strcmp(path, root) == 0) {
        sync_names(root, shadow);
    } else if (strncmp(path, root, len) == 0 && path[len] == '/' && !strchr(path + len + 1, '/')) {
        char to[PATH_MAX];
        snprintf(to, sizeof to, "%s/%s", shadow, path + len + 1);
        if (copy_file(path, to) != 0) {
            fprintf(stderr, "powerloss: could not copy %s to %s\n", path, to);
            abort(); /* a shadow we cannot trust must not pass for a disk */
        }
    }
    errno = saved;
    pthread_mutex_unlock(&lock);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real(fd);
    if (rc == 0) persist(fd);
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real(fd);
    if (rc == 0) persist(fd);
    return rc;
}
