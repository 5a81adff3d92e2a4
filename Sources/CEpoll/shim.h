// Linux's epoll, eventfd and accept4, which Swift's Glibc module does not import.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);

/// Accepts a connection already non-blocking and close-on-exec.
static inline int cepoll_accept(int listener) {
    return accept4(listener, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
