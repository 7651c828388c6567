#ifndef CMONTANA_LINUX_H
#define CMONTANA_LINUX_H
#include <stdint.h>
#include <stddef.h>

// Thin wrappers over Linux calls Swift's Glibc module does not expose (splice, pipe2,
// epoll, eventfd, SO_COOKIE). Every function returns -1 with errno set on failure, and -1 with
// errno = ENOSYS on systems without them, so callers fall back to userspace relaying.

/// 1 where the kernel relay (splice(2) + epoll) is available.
int montana_kernel_splice_available(void);
/// A non-blocking, close-on-exec pipe; `size` > 0 asks F_SETPIPE_SZ for that capacity (best
/// effort). Returns the capacity in bytes, or -1.
int montana_pipe(int fds[2], int size);
/// splice(2) of up to `len` bytes, non-blocking, SPLICE_F_MOVE: bytes moved, 0 at end of input, -1.
long montana_splice(int from, int to, size_t len);
int montana_epoll_create(void);
/// op: 1 add, 2 delete, 3 modify (EPOLL_CTL_*); events: EPOLL* bits; the fd is the event's data.
int montana_epoll_ctl(int epfd, int op, int fd, uint32_t events);
/// Waits up to `timeout_ms`; fills up to `max` (fd, events) pairs; returns how many.
int montana_epoll_wait(int epfd, int32_t *fds, uint32_t *events, int max, int timeout_ms);
uint32_t montana_epollin(void);
uint32_t montana_epollout(void);
uint32_t montana_epollerr_hup(void);
/// A non-blocking, close-on-exec eventfd.
int montana_eventfd(void);
int montana_eventfd_signal(int fd);
int montana_eventfd_drain(int fd);
/// The socket's SO_COOKIE (unique for the socket's lifetime).
int montana_socket_cookie(int fd, uint64_t *cookie);
/// The lowest descriptor of this process whose socket has `cookie` (a scan of /proc/self/fd), or -1.
int montana_find_socket(uint64_t cookie);
/// dup(2) with close-on-exec.
int montana_dup(int fd);
/// shutdown(fd, SHUT_WR).
int montana_shutdown_write(int fd);
/// close(2).
int montana_close(int fd);
/// SOL_SOCKET and SO_COOKIE, for getsockopt through SwiftNIO's SocketOptionProvider.
int montana_sol_socket(void);
int montana_so_cookie(void);
/// glibc's malloc: caps the number of arenas (mallopt M_ARENA_MAX). 0, or -1 where unsupported.
int montana_malloc_arena_max(int arenas);
/// glibc's malloc_trim(0): gives free whole pages of every arena back to the system. 1 if some
/// memory was released, 0 if none, -1 where unsupported.
int montana_malloc_trim(void);
/// glibc's mallinfo2: out[0] bytes in use (small + mmapped chunks), out[1] bytes the main and
/// thread arenas hold from the system, out[2] bytes in mmapped chunks. 0, or -1 where unsupported.
int montana_malloc_info(uint64_t out[3]);
#endif
