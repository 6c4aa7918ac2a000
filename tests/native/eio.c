/* An I/O error injector for tests (tests/e2e/test_store_outage.py), loaded with LD_PRELOAD
 * into a real `keyledger serve`: while the file named by KEYLEDGER_EIO_WHILE exists, every
 * write and sync of a file whose path contains KEYLEDGER_EIO_PATHS fails with EIO, the
 * error a failing disk gives (write(2), fsync(2): "EIO  A low-level I/O error occurred").
 * Anything else passes through to libc unchanged. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int failing(int fd) {
    const char *while_exists = getenv("KEYLEDGER_EIO_WHILE");
    const char *paths = getenv("KEYLEDGER_EIO_PATHS");
    if (while_exists == NULL || paths == NULL || access(while_exists, F_OK) != 0)
        return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return strstr(path, paths) != NULL;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

/* Each wrapper finds the next definition of its name (libc's) once, then fails or passes. */
#define WRAP(ret, name, fn_type, params, args)                         \
    ret name params {                                                  \
        static fn_type real = NULL;                                    \
        if (real == NULL)                                              \
            real = (fn_type)dlsym(RTLD_NEXT, #name);                   \
        if (failing(fd)) {                                             \
            errno = EIO;                                               \
            return -1;                                                 \
        }                                                              \
        return real args;                                              \
    }

WRAP(ssize_t, write, write_fn, (int fd, const void *buf, size_t count), (fd, buf, count))
WRAP(ssize_t, pwrite, pwrite_fn, (int fd, const void *buf, size_t count, off_t offset),
     (fd, buf, count, offset))
WRAP(ssize_t, pwrite64, pwrite_fn, (int fd, const void *buf, size_t count, off_t offset),
     (fd, buf, count, offset))
WRAP(int, fsync, sync_fn, (int fd), (fd))
WRAP(int, fdatasync, sync_fn, (int fd), (fd))
