#include "coreparking/irq.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "coreparking/plan.h"

int parking_irqbalance_find(const char *dir, char ret_path[static PARKING_IRQBALANCE_PATH_MAX]) {
        DIR *d = opendir(dir ? dir : PARKING_IRQBALANCE_DIR);
        int r = -ENOENT;
        if (!d)
                return r;
        for (struct dirent *e; r == -ENOENT && (e = readdir(d));) {
                int pid, end = 0;
                /* irqbalance<pid>.sock, nothing else. */
                if (sscanf(e->d_name, "irqbalance%d.sock%n", &pid, &end) != 1 || pid <= 0 ||
                    e->d_name[end] != '\0' || end == 0)
                        continue;
                int n = snprintf(ret_path, PARKING_IRQBALANCE_PATH_MAX, "%s/%s", dir ? dir : PARKING_IRQBALANCE_DIR,
                                 e->d_name);
                r = n < 0 || n >= PARKING_IRQBALANCE_PATH_MAX ? -ENAMETOOLONG : 0;
        }
        closedir(d);
        return r;
}

int parking_irqbalance_ban(const char *path, const struct hv_cpuset *banned) {
        char msg[8192] = "settings cpus ";
        size_t off = strlen(msg);
        if (!path || strlen(path) >= PARKING_IRQBALANCE_PATH_MAX)
                return -EINVAL;
        if (!banned || !hv_cpuset_count(banned))
                snprintf(msg + off, sizeof(msg) - off, "NULL");
        else if (!parking_cpulist_format(banned, msg + off, sizeof(msg) - off))
                return -E2BIG;

        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        memcpy(addr.sun_path, path, strlen(path) + 1);
        if (connect(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        /* irqbalance acts only for root, and looks for the credentials in the message itself. */
        union {
                char buf[CMSG_SPACE(sizeof(struct ucred))];
                struct cmsghdr align;
        } control = { 0 };
        struct iovec iov = { .iov_base = msg, .iov_len = strlen(msg) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
        struct ucred cred = { .pid = getpid(), .uid = geteuid(), .gid = getegid() };
        memcpy(CMSG_DATA(c), &cred, sizeof(cred));
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        int r = n < 0 ? -errno : (size_t) n < iov.iov_len ? -EIO : 0;
        close(fd);
        return r;
}
