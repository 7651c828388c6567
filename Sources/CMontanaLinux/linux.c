#define _GNU_SOURCE
#include "CMontanaLinux.h"
#include <errno.h>
#include <unistd.h>
#include <stdlib.h>

#ifdef __linux__
#include <dirent.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

int montana_kernel_splice_available(void) { return 1; }

int montana_pipe(int fds[2], int size) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return -1;
    if (size > 0) (void)fcntl(fds[0], F_SETPIPE_SZ, size);
    int capacity = fcntl(fds[0], F_GETPIPE_SZ);
    return capacity > 0 ? capacity : 65536;
}

long montana_splice(int from, int to, size_t len) {
    return (long)splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int montana_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int montana_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = 0;
    ev.data.fd = fd;
    return epoll_ctl(epfd, op, fd, &ev);
}

int montana_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event list[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, list, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = list[i].data.fd;
        events[i] = list[i].events;
    }
    return n;
}

uint32_t montana_epollin(void) { return EPOLLIN; }
uint32_t montana_epollout(void) { return EPOLLOUT; }
uint32_t montana_epollerr_hup(void) { return EPOLLERR | EPOLLHUP; }

int montana_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
int montana_eventfd_signal(int fd) { uint64_t one = 1; return write(fd, &one, sizeof one) == sizeof one ? 0 : -1; }
int montana_eventfd_drain(int fd) { uint64_t v; return read(fd, &v, sizeof v) == sizeof v ? 0 : -1; }

int montana_socket_cookie(int fd, uint64_t *cookie) {
    socklen_t len = sizeof *cookie;
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len);
}

int montana_find_socket(uint64_t cookie) {
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL) return -1;
    int self = dirfd(dir), found = -1;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        int fd = atoi(entry->d_name);
        uint64_t value = 0;
        if (fd == self || montana_socket_cookie(fd, &value) != 0) continue;
        if (value == cookie && (found < 0 || fd < found)) found = fd;
    }
    closedir(dir);
    if (found < 0) errno = ENOENT;
    return found;
}

int montana_dup(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }
int montana_shutdown_write(int fd) { return shutdown(fd, SHUT_WR); }
int montana_sol_socket(void) { return SOL_SOCKET; }
int montana_so_cookie(void) { return SO_COOKIE; }

int montana_close(int fd) { return close(fd); }

#if defined(__GLIBC__)
#include <malloc.h>
int montana_malloc_arena_max(int arenas) { return mallopt(M_ARENA_MAX, arenas) == 1 ? 0 : -1; }
int montana_malloc_trim(void) { return malloc_trim(0); }
int montana_malloc_info(uint64_t out[3]) {
#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33)
    struct mallinfo2 info = mallinfo2();
    out[0] = (uint64_t)info.uordblks + (uint64_t)info.hblkhd;
    out[1] = (uint64_t)info.arena;
    out[2] = (uint64_t)info.hblkhd;
    return 0;
#else
    (void)out; errno = ENOSYS; return -1;
#endif
}
#else
int montana_malloc_arena_max(int arenas) { (void)arenas; errno = ENOSYS; return -1; }
int montana_malloc_trim(void) { errno = ENOSYS; return -1; }
int montana_malloc_info(uint64_t out[3]) { (void)out; errno = ENOSYS; return -1; }
#endif

#else
static int nosys(void) { errno = ENOSYS; return -1; }
int montana_kernel_splice_available(void) { return 0; }
int montana_pipe(int fds[2], int size) { (void)fds; (void)size; return nosys(); }
long montana_splice(int from, int to, size_t len) { (void)from; (void)to; (void)len; return nosys(); }
int montana_epoll_create(void) { return nosys(); }
int montana_epoll_ctl(int epfd, int op, int fd, uint32_t events) { (void)epfd; (void)op; (void)fd; (void)events; return nosys(); }
int montana_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms) { (void)epfd; (void)fds; (void)events; (void)max; (void)timeout_ms; return nosys(); }
uint32_t montana_epollin(void) { return 1; }
uint32_t montana_epollout(void) { return 4; }
uint32_t montana_epollerr_hup(void) { return 24; }
int montana_eventfd(void) { return nosys(); }
int montana_eventfd_signal(int fd) { (void)fd; return nosys(); }
int montana_eventfd_drain(int fd) { (void)fd; return nosys(); }
int montana_socket_cookie(int fd, uint64_t *cookie) { (void)fd; (void)cookie; return nosys(); }
int montana_find_socket(uint64_t cookie) { (void)cookie; return nosys(); }
int montana_dup(int fd) { return dup(fd); }
int montana_close(int fd) { return close(fd); }
int montana_shutdown_write(int fd) { (void)fd; return nosys(); }
int montana_sol_socket(void) { return 0xffff; }
int montana_so_cookie(void) { return -1; }
int montana_malloc_arena_max(int arenas) { (void)arenas; return nosys(); }
int montana_malloc_trim(void) { return nosys(); }
int montana_malloc_info(uint64_t out[3]) { (void)out; return nosys(); }
#endif
