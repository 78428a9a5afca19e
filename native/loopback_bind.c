/*
 * libbeamline_loopback.so: TCP servers that ask for every interface get loopback.
 *
 * Loaded with LD_PRELOAD into the JVMs Beamline starts (the embedded Flink job
 * server, the cluster's TaskManager).  Beam Java's FnAPI servers are built with
 * NettyServerBuilder.forPort(port), which binds every interface although Beam
 * allocated a loopback address and advertises "localhost:<port>"; no option of
 * Beam's or Flink's changes that.  This bind() replaces a wildcard address of a
 * stream socket with loopback before the kernel sees it:
 *
 *   0.0.0.0            -> 127.0.0.1
 *   ::  (dual-stack)   -> ::ffff:127.0.0.1   (IPv4 clients of "localhost" reach it)
 *   ::  (IPV6_V6ONLY)  -> ::1
 *
 * Any other address, and every datagram socket, is passed through unchanged.
 * Go programs (Prism) make the system call themselves and are not affected.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int is_stream(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

static int v6_only(int fd) {
  int only = 0;
  socklen_t len = sizeof only;
  return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) == 0 && only;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind;
  if (real_bind == NULL) {
    real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (real_bind == NULL) {
      errno = ENOSYS;
      return -1;
    }
  }
  if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    struct sockaddr_in in4;
    memcpy(&in4, addr, sizeof in4);
    if (in4.sin_addr.s_addr == htonl(INADDR_ANY) && is_stream(fd)) {
      in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return real_bind(fd, (const struct sockaddr *)&in4, sizeof in4);
    }
  } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    struct sockaddr_in6 in6;
    memcpy(&in6, addr, sizeof in6);
    if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr) && is_stream(fd)) {
      if (v6_only(fd)) {
        in6.sin6_addr = in6addr_loopback;
      } else {
        static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
        memcpy(&in6.sin6_addr, mapped, sizeof mapped);
      }
      return real_bind(fd, (const struct sockaddr *)&in6, sizeof in6);
    }
  }
  return real_bind(fd, addr, len);
}
