#include "coreparking/irq.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "coreparking/plan.h"

/* Sends msg, root's credentials attached (irqbalance acts only on those in the message). */
static int send_credited(int fd, const char *msg) {
        union {
                char buf[CMSG_SPACE(sizeof(struct ucred))];
                struct cmsghdr align;
        } control = { 0 };
        struct iovec iov = { .iov_base = (void *) msg, .iov_len = strlen(msg) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
        struct ucred cred = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };
        memcpy(CMSG_DATA(c), &cred, sizeof(cred));
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        return n < 0 ? -errno : (size_t) n < iov.iov_len ? -EIO : 0;
}

/* A connection to the irqbalance that runs: the first irqbalance<pid>.sock in dir that accepts
 * (one of a dead irqbalance refuses). Returns the socket, -ENOENT when none accepts, -errno. */
static int irq_connect(const char *dir) {
        dir = dir ? dir : PARKING_IRQBALANCE_DIR;
        DIR *d = opendir(dir);
        int r = -ENOENT;
        if (!d)
                return r;
        for (struct dirent *e; r == -ENOENT && (e = readdir(d));) {
                int pid, end = 0;
                struct sockaddr_un addr = { .sun_family = AF_UNIX };
                if (sscanf(e->d_name, "irqbalance%d.sock%n", &pid, &end) != 1 || pid <= 0 || end == 0 ||
                    e->d_name[end] != '\0')
                        continue;
                int n = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, e->d_name);
                if (n < 0 || (size_t) n >= sizeof(addr.sun_path))
                        continue;
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        r = -errno;
                        break;
                }
                /* connect() on a Unix socket waits on a full backlog for the send timeout. */
                struct timeval tv = { .tv_sec = 0, .tv_usec = PARKING_IRQBALANCE_TIMEOUT_MS * 1000 };
                if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
                        r = -errno;
                        close(fd);
                        break;
                }
                if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) == 0) {
                        r = fd;
                        break;
                }
                int e2 = errno;
                close(fd);
                if (e2 != ECONNREFUSED && e2 != ENOENT && e2 != ENOTSOCK)
                        r = -e2;
        }
        closedir(d);
        return r;
}

/* irqbalance's mask: 32-bit words in hex, most significant first, separated by commas. */
static int parse_mask(const char *s, struct hv_cpuset *ret) {
        size_t len = strspn(s, "0123456789abcdefABCDEF,");
        unsigned bit = 0;
        *ret = (struct hv_cpuset){ 0 };
        if (!len)
                return -EPROTO;
        for (size_t i = len; i > 0; i--) {
                char c = s[i - 1];
                if (c == ',')
                        continue;
                unsigned v = (unsigned) (isdigit((unsigned char) c) ? c - '0' : tolower((unsigned char) c) - 'a' + 10);
                for (unsigned b = 0; b < 4; b++, bit++)
                        if (v >> b & 1) {
                                if (bit >= HV_CPUSET_MAX)
                                        return -ERANGE;
                                hv_cpuset_set(ret, bit);
                        }
        }
        return 0;
}

int parking_irqbalance_banned(const char *dir, struct hv_cpuset *ret) {
        char buf[16384];
        size_t got = 0;
        if (!ret)
                return -EINVAL;
        int fd = irq_connect(dir);
        if (fd < 0)
                return fd;
        int r = send_credited(fd, "setup");
        while (r == 0 && got < sizeof(buf) - 1) {
                ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
                if (n < 0)
                        r = -errno;
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        close(fd);
        if (r < 0)
                return r;
        buf[got] = '\0';
        const char *m = strstr(buf, "BANNED ");
        return m ? parse_mask(m + strlen("BANNED "), ret) : -EPROTO;
}

int parking_irqbalance_ban(const char *dir, const struct hv_cpuset *banned) {
        char msg[8192] = "settings cpus ";
        size_t off = strlen(msg);
        if (!banned || !hv_cpuset_count(banned))
                snprintf(msg + off, sizeof(msg) - off, "NULL");
        else if (!parking_cpulist_format(banned, msg + off, sizeof(msg) - off))
                return -E2BIG;
        int fd = irq_connect(dir);
        if (fd < 0)
                return fd;
        int r = send_credited(fd, msg);
        close(fd);
        return r;
}
