#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/client.h"
#include "common/macro.h"

/* A reply carries every domain; 16 MiB is far beyond thousands of them. */
#define REPLY_MAX (16u * 1024 * 1024)

int client_request(const char *socket_path, json_object *req, json_object **ret, char *err, size_t errlen) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        if (strlen(socket_path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "%s: socket path too long", socket_path);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot reach tided at %s: %s (is tided running? start it with 'tided', or "
                                      "'systemctl start tided')",
                         socket_path, strerror(errno));
                return r;
        }

        const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
        size_t tlen = strlen(text);
        char *line = malloc(tlen + 2);
        if (!line)
                return -ENOMEM;
        memcpy(line, text, tlen);
        line[tlen] = '\n';
        for (size_t off = 0; off < tlen + 1;) {
                ssize_t n = send(fd, line + off, tlen + 1 - off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = -errno;
                        free(line);
                        snprintf(err, errlen, "%s: sending the request failed: %s", socket_path, strerror(errno));
                        return r;
                }
                off += (size_t) n;
        }
        free(line);

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                r = poll(&p, 1, CLIENT_TIMEOUT_MSEC);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r == 0) {
                        snprintf(err, errlen, "%s: tided did not answer within %d s", socket_path,
                                 CLIENT_TIMEOUT_MSEC / 1000);
                        return -ETIMEDOUT;
                }
                if (len + 4096 + 1 > cap) {
                        if (cap >= REPLY_MAX) {
                                snprintf(err, errlen, "%s: reply larger than %u bytes", socket_path, REPLY_MAX);
                                return -EFBIG;
                        }
                        cap = cap ? cap * 2 : 65536;
                        char *grown = realloc(buf, cap);
                        if (!grown)
                                return -ENOMEM;
                        buf = grown;
                }
                ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = -errno;
                        snprintf(err, errlen, "%s: reading the reply failed: %s", socket_path, strerror(errno));
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (!buf || len == 0) {
                snprintf(err, errlen, "%s: tided closed the connection without answering", socket_path);
                return -ECONNRESET;
        }
        buf[len] = '\0';

        json_object *reply = json_tokener_parse(buf), *ok, *e;
        if (!reply || !json_object_is_type(reply, json_type_object) ||
            !json_object_object_get_ex(reply, "ok", &ok)) {
                json_object_put(reply);
                snprintf(err, errlen, "%s: tided sent a reply tidectl does not understand", socket_path);
                return -EPROTO;
        }
        if (!json_object_get_boolean(ok)) {
                snprintf(err, errlen, "%s",
                         json_object_object_get_ex(reply, "error", &e) ? json_object_get_string(e) : "failed");
                json_object_put(reply);
                return -EREMOTEIO;
        }
        *ret = reply;
        return 0;
}
