/* memload: the memory workload of tide's test guest.
 *
 * Runs small scripts that allocate, hold and release memory, so that an end-to-end test can
 * make a guest's demand rise and fall on cue while tided balloons it. The cue is the host's:
 * with `--control NAME` (init passes org.tide.memload.0, a virtio-serial port), every
 * line the host writes there is a script, run as soon as it arrives. A test therefore starts
 * the load when it is ready for it, however long the guest took to boot; a script scheduled on
 * guest uptime would race the boot. A script may also come from `tide.load=` on the kernel
 * command line (run at boot: for loads that need no timing, such as `exit`), from
 * `--script TEXT`, or from a command-line-format file given with `--cmdline FILE`.
 *
 * Script: steps separated by ',' ';' or newlines; a step is a command and an optional argument
 * separated by ':' '=' or blanks:
 *   sleep N | hold N   wait N seconds (decimal; suffix s, m or h allowed)
 *   spin N             keep one CPU busy for N seconds (core parking's load); a new script from
 *                      the host still replaces it within ~50 ms
 *   alloc N            malloc N MiB (suffix M, MiB, G or GiB allowed) in 1 MiB chunks, write
 *                      every page, keep them
 *   free               release everything held
 *   every N            print a status line every N seconds while waiting (default 10, 0 = off)
 *   log TEXT           print TEXT (quote the whole parameter on the kernel command line when
 *                      TEXT has blanks: tide.load="log two words,hold:5")
 *   loop               start again from the first step (must be last; needs a wait before it)
 *   exit               release everything and exit 0 (must be last)
 *   agent kill         SIGKILL every running /sbin/tide-agent: the agent crashes (no bye), as
 *                      an end-to-end test needs it to, on the host's cue
 *   agent start        start /sbin/tide-agent again (no arguments) unless one runs; its output
 *                      goes to the console as init's does
 * When the script ends without loop or exit, memload keeps what it holds and waits forever,
 * still printing status, because a test usually wants the last level to stay.
 *
 * The whole script is checked before the first step runs: one bad step rejects all of it with
 * a message naming the step, and memload exits 2 (the guest's init keeps running).
 *
 * Every line starts with "tide-memload: up=SECONDS" (guest uptime, CLOCK_BOOTTIME) and status
 * lines carry held_mib, memtotal_kib and memavail_kib, so a test can grep the console log.
 *
 * Control port protocol (host `tools/vm load`; one line each way, '\n'-terminated):
 *   host -> guest   a script, at most MAX_SCRIPT - 1 bytes
 *   guest -> host   "ok id=N steps=K": accepted; it replaces whatever script was running (at once,
 *                   or after the allocation in progress); memory already held stays held
 *                   "error: WHY": rejected, the running script goes on
 *                   "done id=N held_mib=M": script N reached its end (never sent for loop/exit)
 * The host side may be absent: virtio_console then makes poll() report POLLIN|POLLHUP, read()
 * return 0 and write() fail with EAGAIN, so the port is looked at every 200 ms and "done" lines
 * nobody reads are dropped.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAX_STEPS 256
#define MAX_SCRIPT 8192 /* x86 COMMAND_LINE_SIZE is 2048; leave room for --script */
#define MAX_LOG 200
#define MAX_SECS 1e7              /* ~115 days: larger is surely a typo */
#define MAX_ALLOC_MIB (1UL << 20) /* 1 TiB */
#define CHUNK_BYTES (1UL << 20)
#define DEFAULT_EVERY_SECS 10.0
/* How often a port whose host side is absent is looked at again (poll() reports POLLHUP at once
 * then, so it cannot be waited on). */
#define HUP_RETRY_SECS 0.2
/* How often the control port is looked for until the guest has it. */
#define CONTROL_FIND_RETRY_SECS 0.5
/* How long a reply waits for the host side to show up (see reply()). */
#define REPLY_RETRY_SECS 3.0

enum op { OP_SLEEP, OP_HOLD, OP_ALLOC, OP_FREE, OP_EVERY, OP_LOG, OP_LOOP, OP_EXIT, OP_SPIN, OP_AGENT };
/* The in-guest agent the `agent` step kills and starts (init starts it at boot). */
#define AGENT_PATH "/sbin/tide-agent"
#define AGENT_COMM "tide-agent"

static const char *const op_names[] = {
    [OP_SLEEP] = "sleep", [OP_HOLD] = "hold", [OP_ALLOC] = "alloc", [OP_FREE] = "free",
    [OP_EVERY] = "every", [OP_LOG] = "log",   [OP_LOOP] = "loop",   [OP_EXIT] = "exit",
    [OP_SPIN] = "spin", [OP_AGENT] = "agent",
};

struct step {
  enum op op;
  double secs;
  unsigned long mib;
  char text[MAX_LOG + 1];
  bool start; /* agent: start (true) or kill */
};

struct script {
  struct step steps[MAX_STEPS];
  unsigned n;
};

/* ---- output ---- */

static double uptime_secs(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
    return 0.0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_secs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  va_list ap;
  printf("tide-memload: up=%.2f ", uptime_secs());
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
}

/* Prints text from the script without control characters, which could garble the console. */
static void sanitize(const char *in, char *out, size_t outsz) {
  size_t i = 0;
  for (; *in && i + 1 < outsz; in++)
    out[i++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
  out[i] = '\0';
}

/* ---- parsing ---- */

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Trims blanks in place; returns the start. */
static char *trim(char *s) {
  while (is_blank(*s))
    s++;
  size_t len = strlen(s);
  while (len > 0 && is_blank(s[len - 1]))
    s[--len] = '\0';
  return s;
}

/* Decimal seconds with an optional s/m/h suffix; a hand-written parser because strtod also
 * takes "inf", "nan" and hex floats, none of which belong in a load script. */
static int parse_secs(const char *s, double *ret) {
  double v = 0.0, scale = 1.0;
  bool digits = false, dot = false;
  double frac = 0.1;
  const char *p = s;
  for (; *p; p++) {
    if (*p >= '0' && *p <= '9') {
      digits = true;
      if (!dot) {
        v = v * 10.0 + (*p - '0');
      } else {
        v += (*p - '0') * frac;
        frac /= 10.0;
      }
      if (v > MAX_SECS * 2)
        return -ERANGE;
    } else if (*p == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (!digits)
    return -EINVAL;
  if (*p == 's' || *p == 'S') {
    p++;
  } else if (*p == 'm' || *p == 'M') {
    scale = 60.0;
    p++;
  } else if (*p == 'h' || *p == 'H') {
    scale = 3600.0;
    p++;
  }
  if (*p != '\0')
    return -EINVAL;
  v *= scale;
  if (v > MAX_SECS)
    return -ERANGE;
  *ret = v;
  return 0;
}

static int parse_mib(const char *s, unsigned long *ret) {
  unsigned long v = 0;
  const char *p = s;
  if (*p < '0' || *p > '9')
    return -EINVAL;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > MAX_ALLOC_MIB)
      return -ERANGE;
  }
  unsigned long mult = 1;
  if (*p == '\0' || strcmp(p, "M") == 0 || strcmp(p, "MiB") == 0 || strcmp(p, "m") == 0)
    mult = 1;
  else if (strcmp(p, "G") == 0 || strcmp(p, "GiB") == 0 || strcmp(p, "g") == 0)
    mult = 1024;
  else
    return -EINVAL;
  if (v == 0)
    return -ERANGE;
  if (v > MAX_ALLOC_MIB / mult)
    return -ERANGE;
  *ret = v * mult;
  return 0;
}

static int lookup_op(const char *name, enum op *ret) {
  for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++) {
    if (strcmp(name, op_names[i]) == 0) {
      *ret = (enum op)i;
      return 0;
    }
  }
  return -ENOENT;
}

/* Parses one step; on failure writes a reason into err. */
static int parse_step(char *tok, struct step *st, char *err, size_t errsz) {
  char *arg = tok;
  while (*arg && *arg != ':' && *arg != '=' && !is_blank(*arg))
    arg++;
  if (*arg != '\0')
    *arg++ = '\0';
  arg = trim(arg);

  memset(st, 0, sizeof(*st));
  if (lookup_op(tok, &st->op) < 0) {
    snprintf(err, errsz,
             "unknown command (known: sleep, hold, spin, alloc, free, every, log, loop, exit, agent)");
    return -EINVAL;
  }
  int r;
  switch (st->op) {
  case OP_SLEEP:
  case OP_HOLD:
  case OP_SPIN:
  case OP_EVERY:
    r = parse_secs(arg, &st->secs);
    if (r < 0) {
      snprintf(err, errsz, "%s wants seconds from 0 to %.0f (e.g. %s:20)", op_names[st->op],
               MAX_SECS, op_names[st->op]);
      return r;
    }
    return 0;
  case OP_ALLOC:
    r = parse_mib(arg, &st->mib);
    if (r < 0) {
      snprintf(err, errsz, "alloc wants MiB from 1 to %lu (e.g. alloc:300 or alloc:1G)",
               MAX_ALLOC_MIB);
      return r;
    }
    return 0;
  case OP_LOG:
    if (strlen(arg) > MAX_LOG) {
      snprintf(err, errsz, "log text longer than %d characters", MAX_LOG);
      return -E2BIG;
    }
    snprintf(st->text, sizeof(st->text), "%s", arg);
    return 0;
  case OP_AGENT:
    if (strcmp(arg, "kill") != 0 && strcmp(arg, "start") != 0) {
      snprintf(err, errsz, "agent wants kill or start (e.g. agent:kill)");
      return -EINVAL;
    }
    st->start = strcmp(arg, "start") == 0;
    return 0;
  case OP_FREE:
  case OP_LOOP:
  case OP_EXIT:
    if (*arg != '\0') {
      snprintf(err, errsz, "%s takes no argument", op_names[st->op]);
      return -EINVAL;
    }
    return 0;
  }
  return -EINVAL;
}

/* Parses a whole script (modified in place). Returns 0, or -errno with the reason in why. */
static int parse_script(char *text, struct script *sc, char *why, size_t whysz) {
  char err[160];
  char shown[64];
  unsigned no = 0;
  sc->n = 0;

  char *save = NULL;
  for (char *tok = strtok_r(text, ",;\n", &save); tok; tok = strtok_r(NULL, ",;\n", &save)) {
    tok = trim(tok);
    if (*tok == '\0')
      continue;
    no++;
    sanitize(tok, shown, sizeof(shown));
    if (sc->n >= MAX_STEPS) {
      snprintf(why, whysz, "script has more than %d steps", MAX_STEPS);
      return -E2BIG;
    }
    if (sc->n > 0 && (sc->steps[sc->n - 1].op == OP_LOOP || sc->steps[sc->n - 1].op == OP_EXIT)) {
      snprintf(why, whysz, "step %u '%s' comes after %s and would never run", no, shown,
               op_names[sc->steps[sc->n - 1].op]);
      return -EINVAL;
    }
    int r = parse_step(tok, &sc->steps[sc->n], err, sizeof(err));
    if (r < 0) {
      snprintf(why, whysz, "step %u '%s': %s", no, shown, err);
      return r;
    }
    sc->n++;
  }

  if (sc->n > 0 && sc->steps[sc->n - 1].op == OP_LOOP) {
    bool waits = false;
    for (unsigned i = 0; i < sc->n; i++)
      if ((sc->steps[i].op == OP_SLEEP || sc->steps[i].op == OP_HOLD || sc->steps[i].op == OP_SPIN) &&
          sc->steps[i].secs > 0)
        waits = true;
    if (!waits) {
      snprintf(why, whysz, "loop without a sleep or hold of more than 0 s would spin the CPU");
      return -EINVAL;
    }
  }
  return 0;
}

/* Finds the last tide.load= in a kernel command line, honouring the kernel's double quotes
 * (param="a b" is one parameter whose value is a b). Returns 1 and the value, 0 when absent. */
static int cmdline_find_load(const char *cmdline, char *out, size_t outsz) {
  static const char key[] = "tide.load=";
  int found = 0;
  const char *p = cmdline;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == '\n')
      p++;
    if (!*p)
      break;
    /* Copy one parameter without its quotes. */
    char param[MAX_SCRIPT];
    size_t n = 0;
    bool quoted = false, truncated = false;
    for (; *p; p++) {
      if (*p == '"') {
        quoted = !quoted;
        continue;
      }
      if (!quoted && (*p == ' ' || *p == '\t' || *p == '\n'))
        break;
      if (n + 1 < sizeof(param))
        param[n++] = *p;
      else
        truncated = true;
    }
    param[n] = '\0';
    if (n >= sizeof(key) - 1 && memcmp(param, key, sizeof(key) - 1) == 0) {
      if (truncated || strlen(param + sizeof(key) - 1) >= outsz)
        return -E2BIG;
      snprintf(out, outsz, "%s", param + sizeof(key) - 1);
      found = 1;
    }
  }
  return found;
}

static int read_small_file(const char *path, char *buf, size_t bufsz) {
  FILE *f = fopen(path, "re");
  if (!f)
    return -errno;
  size_t n = fread(buf, 1, bufsz - 1, f);
  int err = ferror(f) ? -EIO : 0;
  fclose(f);
  if (err)
    return err;
  buf[n] = '\0';
  return (int)n;
}

/* Finds the virtio-serial port called name (its /sys/class/virtio-ports/vportNpM/name) and writes
 * /dev/vportNpM to buf. There is no udev in the test guest to make /dev/virtio-ports/NAME. */
static int find_port(const char *name, char *buf, size_t bufsz) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d)
    return -ENOENT;
  int r = -ENOENT;
  struct dirent *de;
  while ((de = readdir(d))) {
    char path[300], text[128];
    if (de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/sys/class/virtio-ports/%.200s/name", de->d_name);
    int n = read_small_file(path, text, sizeof(text));
    if (n <= 0)
      continue;
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, name) == 0) {
      snprintf(buf, bufsz, "/dev/%.200s", de->d_name);
      r = 0;
      break;
    }
  }
  closedir(d);
  return r;
}

/* ---- running ---- */

struct held {
  void **chunks;
  size_t n, cap;
};

/* The script being run and the host's control port. A script accepted from the port replaces
 * `sc` and sets `replaced`, which ends the wait in progress so the new script starts at once. */
struct runner {
  struct script sc;
  unsigned id; /* counts accepted scripts; the boot script is 0 */
  struct held h;
  double every;
  bool replaced;
  const char *ctl_name; /* the control port's name, NULL without --control */
  int ctl_fd;           /* -1 until the port is open */
  double ctl_retry_at;  /* when to look for the port again */
  char line[MAX_SCRIPT];
  size_t line_len;
  bool discarding; /* the line in progress was too long: drop it up to its newline */
};

static void meminfo(unsigned long *total_kib, unsigned long *avail_kib) {
  *total_kib = *avail_kib = 0;
  FILE *f = fopen("/proc/meminfo", "re");
  if (!f)
    return;
  char line[256];
  while (fgets(line, sizeof(line), f)) {
    unsigned long v;
    if (sscanf(line, "MemTotal: %lu kB", &v) == 1)
      *total_kib = v;
    else if (sscanf(line, "MemAvailable: %lu kB", &v) == 1)
      *avail_kib = v;
  }
  fclose(f);
}

static void status(const struct held *h, const char *what) {
  unsigned long total, avail;
  meminfo(&total, &avail);
  say("%s held_mib=%zu memtotal_kib=%lu memavail_kib=%lu", what, h->n, total, avail);
}

static void nap(double d) {
  struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - (double)(time_t)d) * 1e9)};
  nanosleep(&ts, NULL); /* EINTR just re-checks the clock */
}

/* Sends one line to the host. An answer to a script the host just sent (solicited) may find the
 * guest not yet told that the host connected: that news is a control message which can arrive
 * after the host's first data, and until then write() fails with EAGAIN (seen here under load),
 * so it is retried for a while. An unsolicited line ("done") is tried once: nobody may be
 * listening, and memload must not stall for them. Either way a line nobody takes is dropped;
 * the console has it too. */
__attribute__((format(printf, 3, 4))) static void reply(const struct runner *r, bool solicited,
                                                        const char *fmt, ...) {
  if (r->ctl_fd < 0)
    return;
  char buf[320];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof(buf) - 2)
    n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  double give_up = mono_secs() + (solicited ? REPLY_RETRY_SECS : 0.0);
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = write(r->ctl_fd, buf + off, (size_t)n - off);
    if (w > 0) {
      off += (size_t)w;
      continue;
    }
    if ((w < 0 && errno != EAGAIN && errno != EINTR) || mono_secs() >= give_up) {
      if (solicited)
        say("control reply dropped (host not listening)");
      return;
    }
    nap(0.02);
  }
}

static void release_all(struct held *h) {
  for (size_t i = 0; i < h->n; i++)
    free(h->chunks[i]);
  h->n = 0;
  malloc_trim(0);
}

static void do_alloc(struct held *h, unsigned long mib) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0)
    page = 4096;
  double t0 = mono_secs();
  unsigned long got = 0;
  for (; got < mib; got++) {
    if (h->n == h->cap) {
      size_t cap = h->cap ? h->cap * 2 : 256;
      void **c = realloc(h->chunks, cap * sizeof(*c));
      if (!c)
        break;
      h->chunks = c;
      h->cap = cap;
    }
    unsigned char *p = malloc(CHUNK_BYTES);
    if (!p)
      break;
    /* A different byte in every page keeps the host's KSM from merging them back, so the
     * guest's demand shows up as the host's RSS too. */
    for (size_t off = 0; off < CHUNK_BYTES; off += (size_t)page)
      p[off] = (unsigned char)(1 + ((h->n + off / (size_t)page) % 251));
    h->chunks[h->n++] = p;
    if (got > 0 && got % 256 == 0)
      say("alloc progress %lu/%lu MiB", got, mib);
  }
  char what[96];
  if (got < mib)
    snprintf(what, sizeof(what), "alloc %lu MiB FAILED after %lu MiB (%.2f s), keeping them",
             mib, got, mono_secs() - t0);
  else
    snprintf(what, sizeof(what), "alloc %lu MiB done in %.2f s", mib, mono_secs() - t0);
  status(h, what);
}

/* One complete line from the host: a script to run now, or a rejection. */
static void control_line(struct runner *r, char *text) {
  static struct script sc; /* 50 KiB: not on the stack */
  char why[256], shown[96];
  sanitize(text, shown, sizeof(shown));
  if (parse_script(text, &sc, why, sizeof(why)) < 0) {
    say("control: rejected '%s': %s", shown, why);
    reply(r, true, "error: %s", why);
    return;
  }
  r->sc = sc;
  r->id++;
  r->replaced = true;
  say("control: script %u '%s' (%u steps)", r->id, shown, sc.n);
  reply(r, true, "ok id=%u steps=%u", r->id, sc.n);
}

/* Reads what the host sent and acts on every complete line. Returns false when the host side is
 * gone (read() returns 0 then, at once, however often it is called). */
static bool control_read(struct runner *r) {
  char buf[1024];
  for (;;) {
    ssize_t n = read(r->ctl_fd, buf, sizeof(buf));
    if (n == 0)
      return false;
    if (n < 0) /* EAGAIN: nothing more now */
      return errno == EAGAIN || errno == EINTR;
    for (ssize_t i = 0; i < n; i++) {
      char c = buf[i];
      if (c == '\n') {
        if (r->discarding)
          reply(r, true, "error: script longer than %d bytes", MAX_SCRIPT - 1);
        else {
          r->line[r->line_len] = '\0';
          if (r->line_len > 0)
            control_line(r, r->line);
        }
        r->line_len = 0;
        r->discarding = false;
      } else if (r->discarding) {
        continue;
      } else if (r->line_len + 1 >= sizeof(r->line)) {
        r->discarding = true;
      } else {
        r->line[r->line_len++] = c;
      }
    }
  }
}

/* Opens the control port once the guest has it: its name can show up in sysfs after init
 * started memload (the host announces ports one by one), so this is retried while idle. */
static void control_open(struct runner *r) {
  if (r->ctl_fd >= 0 || !r->ctl_name || mono_secs() < r->ctl_retry_at)
    return;
  r->ctl_retry_at = mono_secs() + CONTROL_FIND_RETRY_SECS;
  char dev[300];
  if (find_port(r->ctl_name, dev, sizeof(dev)) < 0)
    return;
  /* O_NONBLOCK: a port whose host side is absent would block write() forever. O_NOCTTY: it
   * is a tty-like device and memload must not take it as its controlling terminal. */
  r->ctl_fd = open(dev, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (r->ctl_fd < 0)
    say("error: cannot open control port %s (%s): %s", dev, r->ctl_name, strerror(errno));
  else
    say("control: listening on %s (%s)", dev, r->ctl_name);
}

/* Sleeps up to d seconds, or until the host sends something. */
static void idle(struct runner *r, double d) {
  if (d <= 0)
    return;
  control_open(r);
  if (r->ctl_fd < 0) {
    nap(r->ctl_name && d > CONTROL_FIND_RETRY_SECS ? CONTROL_FIND_RETRY_SECS : d);
    return;
  }
  struct pollfd p = {.fd = r->ctl_fd, .events = POLLIN};
  int ms = d > 3600 ? 3600 * 1000 : (int)(d * 1000.0) + 1;
  if (poll(&p, 1, ms) <= 0)
    return;
  /* With the host side absent, virtio_console reports POLLIN and POLLHUP together and read()
   * returns 0: waiting on the port would spin, so nap instead. */
  bool connected = !(p.revents & (POLLHUP | POLLERR));
  if (p.revents & POLLIN)
    connected = control_read(r) && connected;
  if (!connected) {
    /* Nobody on the host side: a half-sent line will not be finished. */
    r->line_len = 0;
    r->discarding = false;
    nap(d < HUP_RETRY_SECS ? d : HUP_RETRY_SECS);
  }
}

/* Waits secs (forever when secs < 0), printing status every `every` seconds. Returns early when
 * the host replaced the script. */
static void wait_for(struct runner *r, double secs, const char *label) {
  double start = mono_secs();
  double end = secs < 0 ? -1 : start + secs;
  double next = r->every > 0 ? start + r->every : -1;
  while (!r->replaced) {
    double now = mono_secs();
    if (end >= 0 && now >= end)
      return;
    if (next >= 0 && now >= next) {
      char what[64];
      if (end >= 0)
        snprintf(what, sizeof(what), "%s %.1f/%.1f s", label, now - start, secs);
      else
        snprintf(what, sizeof(what), "%s %.1f s", label, now - start);
      status(&r->h, what);
      while (next <= now)
        next += r->every;
    }
    double until = end;
    if (next >= 0 && (until < 0 || next < until))
      until = next;
    idle(r, until < 0 ? 3600.0 : until - now);
  }
}

/* Calls fn(pid) for every live process named AGENT_COMM (a zombie is not running: the agent
 * init started and the kill step ended stays one until init reaps it). Returns how many. */
static unsigned agent_each(void (*fn)(pid_t pid, char *list, size_t len), char *list, size_t len) {
  DIR *d = opendir("/proc");
  unsigned n = 0;
  if (!d)
    return 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char path[300], text[512];
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 0 || pid == (long)getpid())
      continue;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (read_small_file(path, text, sizeof(text)) <= 0)
      continue;
    /* "PID (COMM) STATE ...": COMM may hold blanks and parentheses, so the last ')' ends it. */
    char *open = strchr(text, '('), *close = strrchr(text, ')');
    if (!open || !close || close < open || close[1] != ' ' || close[2] == 'Z')
      continue;
    *close = '\0';
    if (strcmp(open + 1, AGENT_COMM) != 0)
      continue;
    n++;
    if (fn)
      fn((pid_t)pid, list, len);
  }
  closedir(d);
  return n;
}

static void agent_kill_one(pid_t pid, char *list, size_t len) {
  if (kill(pid, SIGKILL) == 0) {
    size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%d", used ? "," : "", (int)pid);
  }
}

/* The agent step: a crash (SIGKILL, no bye) or a start, on the host's cue. */
static void do_agent(const struct held *h, bool start, unsigned i, unsigned n) {
  char line[200], pids[128] = "";
  if (!start) {
    unsigned k = agent_each(agent_kill_one, pids, sizeof(pids));
    snprintf(line, sizeof(line), "step %u/%u agent kill: %s%s", i, n,
             k ? "SIGKILL sent to pid " : "none running", pids);
    status(h, line);
    return;
  }
  if (agent_each(NULL, NULL, 0) > 0) {
    snprintf(line, sizeof(line), "step %u/%u agent start: already running", i, n);
    status(h, line);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    /* Its own session, as init's background job; default signal handling again. */
    setsid();
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    execl(AGENT_PATH, AGENT_COMM, (char *)NULL);
    _exit(127);
  }
  if (pid < 0)
    snprintf(line, sizeof(line), "step %u/%u agent start FAILED: %s", i, n, strerror(errno));
  else
    snprintf(line, sizeof(line), "step %u/%u agent start: pid %d", i, n, (int)pid);
  status(h, line);
}

/* Runs r->sc from its first step; returns when it ends (false) or the host replaced it (true). */
static bool run_script(struct runner *r) {
  const struct script *sc = &r->sc;
  char line[MAX_LOG + 64];

  r->replaced = false;
  for (;;) {
    for (unsigned i = 0; i < sc->n; i++) {
      const struct step *st = &sc->steps[i];
      switch (st->op) {
      case OP_SLEEP:
      case OP_HOLD:
        snprintf(line, sizeof(line), "step %u/%u %s %.1f s", i + 1, sc->n, op_names[st->op],
                 st->secs);
        status(&r->h, line);
        wait_for(r, st->secs, op_names[st->op]);
        break;
      case OP_ALLOC:
        say("step %u/%u alloc %lu MiB", i + 1, sc->n, st->mib);
        do_alloc(&r->h, st->mib);
        break;
      case OP_FREE: {
        size_t was = r->h.n;
        release_all(&r->h);
        snprintf(line, sizeof(line), "step %u/%u free %zu MiB", i + 1, sc->n, was);
        status(&r->h, line);
        break;
      }
      case OP_EVERY:
        r->every = st->secs;
        say("step %u/%u every %.1f s", i + 1, sc->n, r->every);
        break;
      case OP_LOG: {
        char text[MAX_LOG + 1];
        sanitize(st->text, text, sizeof(text));
        snprintf(line, sizeof(line), "step %u/%u log %s", i + 1, sc->n, text);
        status(&r->h, line);
        break;
      }
      case OP_SPIN: {
        snprintf(line, sizeof(line), "step %u/%u spin %.1f s", i + 1, sc->n, st->secs);
        status(&r->h, line);
        double end = mono_secs() + st->secs;
        while (!r->replaced && mono_secs() < end) {
          /* ~10-50 ms of work, then a glance at the control port: busy, yet replaceable. */
          double slice = mono_secs() + 0.01;
          while (mono_secs() < slice)
            ;
          idle(r, 0.0005);
        }
        break;
      }
      case OP_AGENT:
        do_agent(&r->h, st->start, i + 1, sc->n);
        break;
      case OP_LOOP:
        status(&r->h, "loop");
        break;
      case OP_EXIT:
        release_all(&r->h);
        status(&r->h, "exit");
        exit(0);
      }
      /* Steps that do not wait (alloc, free) still let a new script in between them. */
      if (!r->replaced && r->ctl_fd >= 0)
        idle(r, 0.001);
      if (r->replaced)
        return true;
    }
    if (sc->n == 0 || sc->steps[sc->n - 1].op != OP_LOOP)
      return false;
  }
}

__attribute__((noreturn)) static void run(struct runner *r) {
  r->every = DEFAULT_EVERY_SECS;
  for (;;) {
    if (run_script(r))
      continue;
    status(&r->h, "script done, holding");
    if (r->id > 0) /* the boot script's end is nobody's answer */
      reply(r, false, "done id=%u held_mib=%zu", r->id, r->h.n);
    wait_for(r, -1, "holding");
  }
}

static void usage(FILE *out) {
  fprintf(out, "usage: memload [--check] [--script TEXT | --cmdline FILE] [--control NAME]\n"
               "  Runs the load script from tide.load= on the kernel command line\n"
               "  (/proc/cmdline unless --cmdline FILE), or TEXT given with --script.\n"
               "  --control NAME  also run every script line the host writes to the\n"
               "                  virtio-serial port NAME, replacing the one running\n"
               "  --check  parse and list the steps, run nothing (exit 0 ok, 2 bad)\n"
               "  steps: sleep:N hold:N alloc:MiB free every:N log:TEXT loop exit\n"
               "         agent:kill agent:start\n");
}

int main(int argc, char **argv) {
  const char *script_arg = NULL;
  const char *cmdline_path = "/proc/cmdline";
  const char *control = NULL;
  bool check = false;

  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN);
  /* Agents `agent start` ran are reaped by the kernel: no zombies in a test guest. */
  signal(SIGCHLD, SIG_IGN);
  /* A fixed mmap threshold makes every 1 MiB chunk its own mapping, so `free` hands the memory
   * back to the guest kernel at once instead of leaving it in glibc's heap. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--check") == 0) {
      check = true;
    } else if (strcmp(argv[i], "--script") == 0 && i + 1 < argc) {
      script_arg = argv[++i];
    } else if (strcmp(argv[i], "--cmdline") == 0 && i + 1 < argc) {
      cmdline_path = argv[++i];
    } else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
      control = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }

  static char text[MAX_SCRIPT];
  if (script_arg) {
    if (strlen(script_arg) >= sizeof(text)) {
      say("error: script longer than %d bytes; nothing run", MAX_SCRIPT - 1);
      return 2;
    }
    snprintf(text, sizeof(text), "%s", script_arg);
  } else {
    static char cmdline[MAX_SCRIPT];
    int r = read_small_file(cmdline_path, cmdline, sizeof(cmdline));
    if (r < 0) {
      say("error: cannot read %s: %s", cmdline_path, strerror(-r));
      return 1;
    }
    r = cmdline_find_load(cmdline, text, sizeof(text));
    if (r < 0) {
      say("error: tide.load= is too long; nothing run");
      return 2;
    }
    if (r == 0) {
      if (!control)
        say("no tide.load= on the kernel command line");
      text[0] = '\0';
    }
  }

  char shown[MAX_SCRIPT], why[256];
  sanitize(text, shown, sizeof(shown));
  static struct runner r = {.ctl_fd = -1};
  if (control && (strchr(control, '/') || !*control)) {
    say("error: --control wants a port name (e.g. org.tide.memload.0), not '%s'", control);
    return 2;
  }
  if (parse_script(text, &r.sc, why, sizeof(why)) < 0) {
    say("error: %s; nothing run", why);
    return 2;
  }
  if (check) {
    say("script '%s' (%u steps)", shown, r.sc.n);
    for (unsigned i = 0; i < r.sc.n; i++) {
      const struct step *st = &r.sc.steps[i];
      if (st->op == OP_ALLOC)
        printf("%u alloc %lu\n", i + 1, st->mib);
      else if (st->op == OP_SLEEP || st->op == OP_HOLD || st->op == OP_EVERY || st->op == OP_SPIN)
        printf("%u %s %g\n", i + 1, op_names[st->op], st->secs);
      else if (st->op == OP_LOG) {
        char t[MAX_LOG + 1];
        sanitize(st->text, t, sizeof(t));
        printf("%u log %s\n", i + 1, t);
      } else if (st->op == OP_AGENT)
        printf("%u agent %s\n", i + 1, st->start ? "start" : "kill");
      else
        printf("%u %s\n", i + 1, op_names[st->op]);
    }
    return 0;
  }
  r.ctl_name = control;
  control_open(&r);
  if (r.sc.n > 0)
    say("script '%s' (%u steps)", shown, r.sc.n);
  run(&r);
}
