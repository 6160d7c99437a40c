/* A fake irqbalance for tests: a socket irqbalance4242.sock in a fresh directory, served on a
 * thread as irqbalance's sock_handle() does: one recvmsg per connection, "setup" answered with
 * "SLEEP 10 BANNED <own mask>", "settings ..." recorded with whether root's credentials came. */
#pragma once

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct {
        char dir[64];
        int fd;
        pthread_t thread;
        pthread_mutex_t lock;
        char own[64];        /* its own mask, as "setup" answers it */
        char last[256];      /* the last "settings ..." */
        int settings, setups, not_root;
} fake_irqb = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void *fake_irqb_serve(void *arg) {
        (void) arg;
        for (;;) {
                int c = accept(fake_irqb.fd, NULL, NULL);
                if (c < 0)
                        return NULL;
                char buf[256] = "";
                union {
                        char b[CMSG_SPACE(sizeof(struct ucred))];
                        struct cmsghdr a;
                } ctl;
                struct iovec iov = { buf, sizeof(buf) - 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                     .msg_controllen = sizeof(ctl.b) };
                ssize_t n = recvmsg(c, &mh, 0);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                bool root = cm && cm->cmsg_type == SCM_CREDENTIALS && ((struct ucred *) CMSG_DATA(cm))->uid == 0;
                pthread_mutex_lock(&fake_irqb.lock);
                if (n > 0) {
                        buf[n] = '\0';
                        fake_irqb.not_root += !root;
                        if (strncmp(buf, "setup", 5) == 0) {
                                char answer[128];
                                snprintf(answer, sizeof(answer), "SLEEP 10 BANNED %s", fake_irqb.own);
                                (void) !send(c, answer, strlen(answer), MSG_NOSIGNAL);
                                fake_irqb.setups++;
                        } else {
                                snprintf(fake_irqb.last, sizeof(fake_irqb.last), "%s", buf);
                                fake_irqb.settings++;
                        }
                }
                pthread_mutex_unlock(&fake_irqb.lock);
                close(c);
        }
}

/* Up in a new directory (fake_irqb.dir), its own mask `own`. */
static void fake_irqb_up(const char *own) {
        snprintf(fake_irqb.dir, sizeof(fake_irqb.dir), "/tmp/tide-irqb-XXXXXX");
        cr_assert_not_null(mkdtemp(fake_irqb.dir));
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof(a.sun_path), "%s/irqbalance4242.sock", fake_irqb.dir);
        fake_irqb.fd = socket(AF_UNIX, SOCK_STREAM, 0);
        int one = 1;
        cr_assert_eq(setsockopt(fake_irqb.fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);
        cr_assert_eq(bind(fake_irqb.fd, (struct sockaddr *) &a, sizeof(a)), 0);
        cr_assert_eq(listen(fake_irqb.fd, 8), 0);
        snprintf(fake_irqb.own, sizeof(fake_irqb.own), "%s", own);
        fake_irqb.settings = fake_irqb.setups = fake_irqb.not_root = 0;
        fake_irqb.last[0] = '\0';
        cr_assert_eq(pthread_create(&fake_irqb.thread, NULL, fake_irqb_serve, NULL), 0);
}

static void fake_irqb_down(void) {
        shutdown(fake_irqb.fd, SHUT_RDWR);
        close(fake_irqb.fd);
        pthread_join(fake_irqb.thread, NULL);
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", fake_irqb.dir);
        cr_expect_eq(system(cmd), 0);
}

/* The last "settings ..." once n have come (it answers on its own thread). */
static const char *fake_irqb_wait(int n) {
        static char copy[256];
        for (int i = 0; i < 500; i++) {
                pthread_mutex_lock(&fake_irqb.lock);
                bool got = fake_irqb.settings >= n;
                snprintf(copy, sizeof(copy), "%s", fake_irqb.last);
                pthread_mutex_unlock(&fake_irqb.lock);
                if (got)
                        return copy;
                usleep(2000);
        }
        return "(nothing came)";
}
