/*
 * loadgen.c - a single-file MQTT 3.1.1 load generator for side-by-side broker runs.
 *
 * One thread, one epoll instance, non-blocking sockets, no libraries beyond libc. It exists
 * because the Node generator (src/bench/bench.ts) saturates its own core before the broker does.
 * It runs against any MQTT 3.1.1 broker on a host and port (IPv4).
 *
 *   gcc -O2 -Wall -o bench/loadgen bench/loadgen.c
 *   bench/loadgen --port 1883 --scenario fanin --qos 1 --publishers 10 --window 32 --seconds 3
 *
 * Scenarios (payload 64 bytes by default; every topic lies under the run's prefix P, --topic,
 * default bench/<pid>, so that runs never see each other's messages):
 *   fanin    N publishers -> 1 subscriber on topic P              (--publishers, default 10)
 *   fanout   1 publisher  -> N subscribers on topic P             (--subscribers, default 50)
 *   pairs    N publishers -> N subscribers, pair i on topic P/i   (--pairs, default 100)
 *   latency  like fanin but paced at --rate msg/s in total        (default 1 publisher, 5000/s)
 *   filters  F distinct filters (--filters, default 10000) held by S subscribers (--subscribers,
 *            default 10); filter j belongs to subscriber j % S, so each holds F/S of them. With
 *            k = j % 3 filter j and the one topic published for it are:
 *              k = 0 exact      filter P/f<j>/x     topic P/f<j>/x
 *              k = 1 '+'        filter P/+/f<j>     topic P/w/f<j>
 *              k = 2 trailing # filter P/f<j>/#     topic P/f<j>/y/z
 *            so every topic matches exactly one filter of all F (and every filter's wildcard
 *            branch is looked at on every publish). N publishers (--publishers, default 10, QoS
 *            --qos, default 0) publish round-robin over the F topics, publisher p starting at
 *            topic p*F/N. Metric: messages delivered/s to all subscribers ("rate"). Subscribers
 *            check that each message is one of their own topics ("misrouted" counts the others).
 *   idle     opens C connections (--connections, default 10000): CONNECT with clean session and
 *            keepalive 120, at most --outstanding (default 100) connections without CONNACK, as
 *            fast as possible. Metric: CONNACKs/s from the first connect() to the last CONNACK
 *            ("connectRate", also "rate"). The default 100 is Mosquitto 2.0's listen() backlog:
 *            more in flight overflow its accept queue, the kernel drops those handshakes and the
 *            client retransmits after 1 s, which measures a TCP timer, not the broker
 *            ("listenOverflows" = the system's TcpExt ListenOverflows during the ramp; should be
 *            0). Then holds them all --hold seconds (default 2). With
 *            --broker-pid, VmRSS of /proc/PID/status is read before the first connect and at the
 *            end of the hold: "kbPerConn" = (after - before) / C. RLIMIT_NOFILE is raised to the
 *            hard limit; the run fails if that is below C + 64.
 *   retained preloads R retained messages (--retained, default 10000; QoS 0, payload --payload,
 *            topics P/r/<i>) on one connection, in batches of 200 each closed by a PINGREQ/PINGRESP
 *            round trip (not measured), then checks with one
 *            subscription of P/r/# that the broker returns all R. Then S subscribers (--subscribers,
 *            default 4) each repeat: SUBSCRIBE P/r/# (QoS --qos, default 0), receive R retained
 *            messages, UNSUBSCRIBE + SUBSCRIBE again. Metric: retained messages delivered/s
 *            ("rate", in the measured window); "cycles" = completed subscriptions. A subscriber
 *            that receives nothing for 2 s starts its cycle again ("stalls"). At the end the R
 *            retained messages are deleted (empty retained publishes).
 *   backlog  a persistent subscriber (client id lg-<pid>-backlog, clean session 0, QoS 1)
 *            subscribes to P/q and disconnects; one publisher queues B QoS 1 messages
 *            (--backlog, default 10000; --window in flight) and waits for every PUBACK; then the
 *            subscriber reconnects (clean session 0) and drains, acknowledging each message.
 *            Metric: distinct messages/s from the reconnect's connect() to the B-th distinct
 *            message ("drainRate", also "rate"); "sessionPresent", "duplicates", "complete".
 *            The broker's queue limit per session must be at least B. The session is removed
 *            afterwards (CONNECT with clean session 1). Exit status 1 if the drain is incomplete
 *            (nothing for 10 s, or --timeout seconds in all).
 *
 * Publishers: QoS 0 keeps the socket full (bounded user-space buffer); QoS 1/2 keep --window
 * messages in flight each (a message leaves the window on PUBACK, or on PUBCOMP for QoS 2); with
 * --rate > 0 the publishers are paced instead (window ignored). --pace burst (the default) wakes
 * every 1 ms and sends what is due, so a broker gets bursts (about 6 messages at 5,000/s); --pace
 * even sleeps until each message's own due time (epoll_pwait2, 1 ns timer slack) and sends it
 * alone, as a device fleet's independent messages would arrive. Subscribers subscribe at the same
 * QoS and acknowledge (PUBACK, PUBREC then PUBCOMP on PUBREL) as fast as they read.
 *
 * Every QoS 1/2 (and paced) publish carries its CLOCK_MONOTONIC send time (ns) in the first 8
 * payload bytes; the subscribers record receive - send into a 1 us histogram (to 10 s), so p50/p99
 * are reported for every run but only mean something below saturation (the latency scenario).
 *
 * fanin, fanout, pairs, latency, filters and retained: after --warmup seconds (default 1) the
 * generator counts deliveries for --seconds (default 3). idle and backlog have no window: their
 * measurement is the ramp / the drain. Every scenario prints one JSON line and exits. Fields:
 * "genCpu" = CPU time of this process / wall time of the measurement (share of one core);
 * "brokerCpu" = the same for the broker with --broker-pid (run time of all its threads from
 * /proc/PID/task/TID/schedstat, else utime + stime of /proc/PID/stat), else null.
 * --sub-port P: subscribers connect to port P (another node of a cluster), publishers to --port;
 * the generator then waits 300 ms after subscribing, before publishing, so the publishers' node
 * has learnt the routes through the cluster's store.
 * Exit status 1 on a connection failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define OUTCAP (1 << 20)      /* per-connection output buffer */
#define INCAP (1 << 18)       /* per-connection input buffer */
#define Q0_FILL (256 * 1024)  /* QoS 0 publishers keep at most this much queued in user space */
#define OUT_HIGH (OUTCAP - 128 * 1024) /* stop reading while this much output is pending */
#define HIST_US 10000000      /* histogram range, 1 us buckets */
#define SETUP_TIMEOUT_S 15    /* every blocking read of the setup phase gives up after this */
#define RETAINED_STALL_NS 2000000000ull

enum role { PUB, SUB };
enum mode { M_FANIN, M_FANOUT, M_PAIRS, M_LATENCY, M_FILTERS, M_IDLE, M_RETAINED, M_BACKLOG };

struct conn {
  int fd;
  enum role role;
  int idx;
  uint32_t events;      /* currently registered epoll mask */
  unsigned char *in;
  size_t inlen;
  unsigned char *out;
  size_t outoff, outlen;
  const char *topic;    /* publish topic, or the subscription filter (retained) */
  size_t topiclen;      /* its length; with a topic table: the longest topic (a size bound) */
  char **topics;        /* filters: publishers cycle over this table */
  size_t *topiclens;
  size_t ntopics, tcur;
  int inflight;
  uint16_t nextid;
  uint64_t received;    /* subscriber: PUBLISH packets */
  uint64_t acked;       /* publisher: PUBACK/PUBCOMP packets */
  uint64_t sent;        /* publisher: PUBLISH packets queued */
  uint64_t misrouted;   /* filters: messages on a topic that is not one of this subscriber's */
  uint64_t cyc_got, cycles, stalls; /* retained: this cycle's messages, completed cycles, restarts */
  uint64_t last_progress;
};

static enum mode g_mode = M_FANIN;
static int g_qos = 0, g_window = 32, g_payload = 64;
static double g_rate = 0;
static int g_pace_even = 0; /* --pace even */
static int g_stop = 0, g_measuring = 0;
static uint32_t *g_hist;
static uint64_t g_hist_over, g_hist_n, g_max_ns;
static int g_epfd;
static unsigned char *g_zero_payload;
static int g_bpid = 0;                /* --broker-pid */
static const char *g_prefix;          /* the run's topic prefix P */
static size_t g_prefixlen;
static int g_nfilters = 10000, g_nsub_filters = 10;
static int g_retained = 10000;
static int g_backlog = 10000;
/* --sub-port: subscribers connect to this port (another node of a cluster), publishers to --port */
static int g_sub_port = 0;
static unsigned char *g_seen;         /* backlog: sequence numbers received */
static uint64_t g_distinct, g_dups;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of the broker process, or -1 when unknown: the sum of its threads' run time in
   /proc/PID/task/TID/schedstat (ns), else utime + stime of /proc/PID/stat (10 ms ticks, too
   coarse for the short drain of the backlog scenario). */
static double broker_cpu_s(void) {
  if (g_bpid <= 0) return -1;
  char path[96], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/task", g_bpid);
  DIR *d = opendir(path);
  if (d) {
    unsigned long long sum = 0;
    int nt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "/proc/%d/task/%.20s/schedstat", g_bpid, e->d_name);
      FILE *f = fopen(path, "r");
      if (!f) continue;
      unsigned long long ns;
      if (fscanf(f, "%llu", &ns) == 1) sum += ns, nt++;
      fclose(f);
    }
    closedir(d);
    if (nt) return (double)sum / 1e9;
  }
  snprintf(path, sizeof path, "/proc/%d/stat", g_bpid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return -1;
  unsigned long long ut, st;
  /* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of the broker in KB, or -1. */
static long broker_rss_kb(void) {
  if (g_bpid <= 0) return -1;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", g_bpid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* TcpExt ListenOverflows of /proc/net/netstat (system-wide: accept queues that were full), or -1. */
static long long listen_overflows(void) {
  FILE *f = fopen("/proc/net/netstat", "r");
  if (!f) return -1;
  static char names[8192], vals[8192];
  long long v = -1;
  while (fgets(names, sizeof names, f) && fgets(vals, sizeof vals, f)) {
    if (strncmp(names, "TcpExt:", 7)) continue;
    char *sn, *sv, *n = strtok_r(names, " \n", &sn), *x = strtok_r(vals, " \n", &sv);
    while (n && x) {
      if (!strcmp(n, "ListenOverflows")) {
        v = atoll(x);
        break;
      }
      n = strtok_r(NULL, " \n", &sn);
      x = strtok_r(NULL, " \n", &sv);
    }
    break;
  }
  fclose(f);
  return v;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("loadgen: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Raises the soft RLIMIT_NOFILE to the hard limit; fails if that is below `need`. */
static void raise_nofile(long need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) die("getrlimit");
  if (rl.rlim_cur != rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) die("setrlimit");
  }
  if (need > 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need)
    fail("RLIMIT_NOFILE hard limit is %lu, this run needs %ld descriptors: raise it (ulimit -Hn, as root) or use fewer connections",
         (unsigned long)rl.rlim_cur, need);
}

static size_t put_varint(unsigned char *p, size_t n) {
  size_t i = 0;
  do {
    unsigned char b = n % 128;
    n /= 128;
    if (n) b |= 0x80;
    p[i++] = b;
  } while (n);
  return i;
}

/* Blocking helpers for the setup phase (before the event loop starts). */
static void write_all(int fd, const unsigned char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    p += w;
    n -= (size_t)w;
  }
}

static void read_full(int fd, unsigned char *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) fail("no answer from the broker within %d s during setup", SETUP_TIMEOUT_S);
    if (r < 0) die("read");
    if (r == 0) fail("broker closed the connection during setup");
    p += r;
    n -= (size_t)r;
  }
}

/* Reads one whole packet (blocking); returns its type byte, body into buf. */
static int read_packet(int fd, unsigned char *buf, size_t cap, size_t *len) {
  unsigned char h;
  read_full(fd, &h, 1);
  size_t rl = 0, mul = 1;
  for (int i = 0; i < 4; i++) {
    unsigned char b;
    read_full(fd, &b, 1);
    rl += (b & 127) * mul;
    mul *= 128;
    if (!(b & 128)) break;
  }
  if (rl > cap) fail("setup packet too large (type %#x, %zu bytes)", h, rl);
  read_full(fd, buf, rl);
  *len = rl;
  return h;
}

static int tcp_connect(const char *host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) fail("bad IPv4 host %s", host);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = SETUP_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

static size_t build_connect(unsigned char *pkt, const char *client_id, int clean, int keepalive) {
  unsigned char body[300];
  size_t idlen = strlen(client_id), b = 0, n = 0;
  if (idlen > 200) fail("client id too long");
  memcpy(body, "\x00\x04MQTT\x04", 7); /* protocol level 4 */
  b = 7;
  body[b++] = clean ? 0x02 : 0x00;
  body[b++] = (unsigned char)(keepalive >> 8);
  body[b++] = (unsigned char)keepalive;
  body[b++] = (unsigned char)(idlen >> 8);
  body[b++] = (unsigned char)idlen;
  memcpy(body + b, client_id, idlen);
  b += idlen;
  pkt[n++] = 0x10;
  n += put_varint(pkt + n, b);
  memcpy(pkt + n, body, b);
  return n + b;
}

/* Connects and waits for CONNACK; *session_present gets its flag (may be NULL). */
static int mqtt_connect_ex(const char *host, int port, const char *client_id, int clean, int keepalive, int *session_present) {
  int fd = tcp_connect(host, port);
  unsigned char pkt[512];
  write_all(fd, pkt, build_connect(pkt, client_id, clean, keepalive));
  unsigned char r[64];
  size_t rl;
  int t = read_packet(fd, r, sizeof r, &rl);
  if (t != 0x20 || rl < 2 || r[1] != 0) fail("CONNACK refused (type %#x rc %d) for %s", t, rl >= 2 ? r[1] : -1, client_id);
  if (session_present) *session_present = r[0] & 1;
  return fd;
}

static int mqtt_connect(const char *host, int port, const char *client_id) {
  return mqtt_connect_ex(host, port, client_id, 1, 60, NULL);
}

/* SUBSCRIBE (type 0x82) or UNSUBSCRIBE (0xa2) of n filters into p; returns its size. */
static size_t build_sub(unsigned char *p, unsigned char type, uint16_t id, char **filters, int n, int qos) {
  size_t rl = 2;
  for (int i = 0; i < n; i++) rl += 2 + strlen(filters[i]) + (type == 0x82 ? 1 : 0);
  size_t k = 0;
  p[k++] = type;
  k += put_varint(p + k, rl);
  p[k++] = (unsigned char)(id >> 8);
  p[k++] = (unsigned char)id;
  for (int i = 0; i < n; i++) {
    size_t tl = strlen(filters[i]);
    p[k++] = (unsigned char)(tl >> 8);
    p[k++] = (unsigned char)tl;
    memcpy(p + k, filters[i], tl);
    k += tl;
    if (type == 0x82) p[k++] = (unsigned char)qos;
  }
  return k;
}

/* Subscribes to n filters (SUBSCRIBE packets of at most 50) and checks every return code. */
static void mqtt_subscribe_many(int fd, char **filters, int n, int qos) {
  static unsigned char pkt[64 * 1024];
  unsigned char r[256];
  for (int i = 0; i < n; i += 50) {
    int m = n - i < 50 ? n - i : 50;
    uint16_t id = (uint16_t)(1 + (i / 50) % 65000);
    write_all(fd, pkt, build_sub(pkt, 0x82, id, filters + i, m, qos));
    size_t rl;
    int t;
    for (int guard = 0;; guard++) { /* skip anything else the broker sends first */
      t = read_packet(fd, r, sizeof r, &rl);
      if (t == 0x90 || guard > 1000) break;
    }
    if (t != 0x90 || rl != (size_t)(2 + m)) fail("no SUBACK for %d filters (got type %#x)", m, t);
    for (int k = 0; k < m; k++)
      if (r[2 + k] == 0x80) fail("SUBACK refused filter %s", filters[i + k]);
  }
}

static void mqtt_subscribe(int fd, const char *topic, int qos) {
  char *f = (char *)topic;
  mqtt_subscribe_many(fd, &f, 1, qos);
}

/* Sends DISCONNECT and waits (bounded) until the broker has closed the connection. */
static void mqtt_disconnect_wait(int fd) {
  static const unsigned char disc[2] = {0xe0, 0x00};
  write_all(fd, disc, 2);
  unsigned char b[4096];
  for (int i = 0; i < 100000; i++) {
    ssize_t r = read(fd, b, sizeof b);
    if (r == 0) break;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break; /* timeout or reset: closed as far as we care */
  }
  close(fd);
}

/* PINGREQ, then reads (and drops) packets until PINGRESP: the broker has handled all before. */
static void mqtt_ping_wait(int fd) {
  static const unsigned char ping[2] = {0xc0, 0x00};
  write_all(fd, ping, 2);
  static unsigned char r[INCAP];
  size_t rl;
  for (int i = 0; i < 1000000; i++)
    if (read_packet(fd, r, sizeof r, &rl) == 0xd0) return;
  fail("no PINGRESP");
}

static void set_events(struct conn *c, uint32_t ev) {
  if (ev == c->events) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &e) < 0) die("epoll_ctl");
  c->events = ev;
}

static void flush(struct conn *c) {
  while (c->outlen > c->outoff) {
    ssize_t w = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (g_stop) return;
      die("write");
    }
    c->outoff += (size_t)w;
  }
  if (c->outoff == c->outlen) c->outoff = c->outlen = 0;
  else if (c->outoff && (c->outoff > OUTCAP / 2 || c->outlen > OUTCAP - 256 * 1024)) {
    memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
    c->outlen -= c->outoff;
    c->outoff = 0;
  }
}

static void update_events(struct conn *c) {
  uint32_t ev = 0;
  size_t pending = c->outlen - c->outoff;
  if (pending < OUT_HIGH) ev |= EPOLLIN;
  if (pending > 0) ev |= EPOLLOUT;
  if (c->role == PUB && g_qos == 0 && g_rate == 0 && !g_stop) ev |= EPOLLOUT;
  set_events(c, ev);
}

static inline void put_ack(struct conn *c, unsigned char type, uint16_t id) {
  unsigned char *p = c->out + c->outlen;
  p[0] = type;
  p[1] = 2;
  p[2] = (unsigned char)(id >> 8);
  p[3] = (unsigned char)id;
  c->outlen += 4;
}

static size_t publish_size(struct conn *c, int qos) {
  size_t rl = 2 + c->topiclen + (qos ? 2 : 0) + (size_t)g_payload;
  return 1 + (rl < 128 ? 1 : rl < 16384 ? 2 : 3) + rl;
}

static void put_publish(struct conn *c, int qos, int stamp) {
  unsigned char *p = c->out + c->outlen;
  const char *topic = c->topic;
  size_t tl = c->topiclen;
  if (c->ntopics) { /* filters: the next topic of the table */
    topic = c->topics[c->tcur];
    tl = c->topiclens[c->tcur];
    if (++c->tcur == c->ntopics) c->tcur = 0;
  }
  size_t rl = 2 + tl + (qos ? 2 : 0) + (size_t)g_payload, n = 0;
  p[n++] = (unsigned char)(0x30 | (qos << 1));
  n += put_varint(p + n, rl);
  p[n++] = (unsigned char)(tl >> 8);
  p[n++] = (unsigned char)tl;
  memcpy(p + n, topic, tl);
  n += tl;
  if (qos) {
    uint16_t id = c->nextid;
    c->nextid = c->nextid == 65535 ? 1 : c->nextid + 1;
    p[n++] = (unsigned char)(id >> 8);
    p[n++] = (unsigned char)id;
  }
  memcpy(p + n, g_zero_payload, (size_t)g_payload);
  if (stamp) {
    uint64_t t = now_ns();
    memcpy(p + n, &t, 8);
  }
  n += (size_t)g_payload;
  c->outlen += n;
  c->sent++;
}

/* Window-driven refill for QoS 1/2 publishers and fill-the-pipe for QoS 0. */
static void pub_fill(struct conn *c) {
  if (g_stop || g_rate > 0) return;
  size_t sz = publish_size(c, g_qos);
  if (g_qos == 0) {
    while (c->outlen - c->outoff < Q0_FILL && c->outlen + sz <= OUTCAP) put_publish(c, 0, 0);
    return;
  }
  while (c->inflight < g_window && c->outlen + sz <= OUTCAP) {
    put_publish(c, g_qos, 1);
    c->inflight++;
  }
}

static void record_latency(const unsigned char *payload, size_t len) {
  if (!g_measuring || len < 8) return;
  uint64_t sent;
  memcpy(&sent, payload, 8);
  if (!sent) return;
  uint64_t now = now_ns();
  if (now < sent) return;
  uint64_t d = now - sent;
  if (d > g_max_ns) g_max_ns = d;
  uint64_t us = d / 1000;
  if (us < HIST_US) g_hist[us]++;
  else g_hist_over++;
  g_hist_n++;
}

/* filters: is this topic one that subscriber `idx` of `nsub` holds the filter for? */
static int filter_topic_ok(const unsigned char *t, size_t tl, int idx) {
  if (tl <= g_prefixlen + 1 || memcmp(t, g_prefix, g_prefixlen) || t[g_prefixlen] != '/') return 0;
  t += g_prefixlen + 1;
  tl -= g_prefixlen + 1;
  size_t i = 0;
  int kind;
  if (tl > 3 && t[0] == 'w' && t[1] == '/' && t[2] == 'f') i = 3, kind = 1;
  else if (tl > 1 && t[0] == 'f') i = 1, kind = -1; /* 0 or 2, told by the rest */
  else return 0;
  long j = 0;
  size_t d = i;
  while (i < tl && t[i] >= '0' && t[i] <= '9' && i - d < 9) j = j * 10 + (t[i++] - '0');
  if (i == d || j >= g_nfilters) return 0;
  if (kind == 1) {
    if (i != tl || j % 3 != 1) return 0;
  } else if (tl - i == 2 && !memcmp(t + i, "/x", 2)) {
    if (j % 3 != 0) return 0;
  } else if (tl - i == 4 && !memcmp(t + i, "/y/z", 4)) {
    if (j % 3 != 2) return 0;
  } else return 0;
  return j % g_nsub_filters == idx;
}

/* retained: UNSUBSCRIBE + SUBSCRIBE of the subscriber's filter, one write. */
static void retained_resubscribe(struct conn *c) {
  char *f = (char *)c->topic;
  c->outlen += build_sub(c->out + c->outlen, 0xa2, 2, &f, 1, 0);
  c->outlen += build_sub(c->out + c->outlen, 0x82, 3, &f, 1, g_qos);
  c->cyc_got = 0;
}

/* Parses every complete packet in c->in. Stops early if the output buffer is nearly full. */
static void handle_input(struct conn *c) {
  size_t off = 0;
  while (off + 2 <= c->inlen) {
    if (c->outlen + 1024 > OUTCAP) break;
    unsigned char h = c->in[off];
    size_t rl = 0, mul = 1, i = off + 1;
    int complete = 0;
    while (i < c->inlen && i < off + 5) {
      unsigned char b = c->in[i++];
      rl += (b & 127) * mul;
      mul *= 128;
      if (!(b & 128)) {
        complete = 1;
        break;
      }
    }
    if (!complete || i + rl > c->inlen) break;
    const unsigned char *body = c->in + i;
    unsigned char type = h >> 4;
    if (type == 3) { /* PUBLISH */
      int qos = (h >> 1) & 3;
      size_t tl = ((size_t)body[0] << 8) | body[1];
      size_t p = 2 + tl;
      uint16_t id = 0;
      if (qos) {
        id = (uint16_t)((body[p] << 8) | body[p + 1]);
        p += 2;
      }
      c->received++;
      record_latency(body + p, rl - p);
      if (qos == 1) put_ack(c, 0x40, id);
      else if (qos == 2) put_ack(c, 0x50, id);
      if (g_mode == M_FILTERS) {
        if (!filter_topic_ok(body + 2, tl, c->idx)) c->misrouted++;
      } else if (g_mode == M_RETAINED) {
        if (h & 1) c->cyc_got++;
        c->last_progress = now_ns();
        if (c->cyc_got >= (uint64_t)g_retained && !g_stop) {
          c->cycles++;
          retained_resubscribe(c);
        }
      } else if (g_mode == M_BACKLOG && rl - p >= 12) {
        uint32_t seq;
        memcpy(&seq, body + p + 8, 4);
        if (seq < (uint32_t)g_backlog && !g_seen[seq]) g_seen[seq] = 1, g_distinct++;
        else g_dups++;
      }
    } else if (type == 4 || type == 7) { /* PUBACK / PUBCOMP */
      c->inflight--;
      c->acked++;
    } else if (type == 5) { /* PUBREC -> PUBREL */
      put_ack(c, 0x62, (uint16_t)((body[0] << 8) | body[1]));
    } else if (type == 6) { /* PUBREL -> PUBCOMP */
      put_ack(c, 0x70, (uint16_t)((body[0] << 8) | body[1]));
    } else if (type == 9) { /* SUBACK */
      if (rl >= 3 && body[2] == 0x80) fail("SUBACK refused %s", c->topic);
    }
    off = i + rl;
  }
  if (off) {
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
  }
}

static struct conn *new_conn(int fd, enum role role, int idx, const char *topic) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) fail("out of memory");
  c->fd = fd;
  c->role = role;
  c->idx = idx;
  c->in = malloc(INCAP);
  c->out = malloc(OUTCAP);
  if (!c->in || !c->out) fail("out of memory");
  c->topic = topic;
  c->topiclen = strlen(topic);
  c->nextid = 1;
  c->last_progress = now_ns();
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
  c->events = EPOLLIN;
  return c;
}

/* Reads what a connection has (a few rounds), parses it. Returns 0, or -1 if the broker closed it. */
static int conn_read(struct conn *c) {
  for (int rounds = 0; rounds < 4; rounds++) {
    if (c->inlen == INCAP) break;
    ssize_t r = read(c->fd, c->in + c->inlen, INCAP - c->inlen);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      die("read");
    }
    if (r == 0) return -1;
    c->inlen += (size_t)r;
    handle_input(c);
    if ((size_t)r < 16384) break;
  }
  return 0;
}

static uint64_t hist_pct(double q) {
  if (!g_hist_n) return UINT64_MAX;
  uint64_t rank = (uint64_t)(q * (double)g_hist_n), acc = 0;
  if (rank >= g_hist_n) rank = g_hist_n - 1;
  for (uint64_t i = 0; i < HIST_US; i++) {
    acc += g_hist[i];
    if (acc > rank) return i;
  }
  return HIST_US;
}

/* ---- output ------------------------------------------------------------------------------ */

static char g_extra[4096]; /* scenario-specific fields, appended to the common ones */
static size_t g_extralen;

static void extra(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(g_extra + g_extralen, sizeof g_extra - g_extralen, fmt, ap);
  va_end(ap);
  if (n > 0 && g_extralen + (size_t)n < sizeof g_extra) g_extralen += (size_t)n;
}

static void fmt_cpu(char *buf, size_t cap, double broker0, double broker1, double el) {
  if (broker0 < 0 || broker1 < 0 || el <= 0) snprintf(buf, cap, "null");
  else snprintf(buf, cap, "%.2f", (broker1 - broker0) / el);
}

static void print_result(const char *scenario, int npub, int nsub, double el, uint64_t recv, double rate, uint64_t sent,
                         uint64_t acked, double gen_cpu, const char *broker_cpu) {
  char p50[32] = "null", p90[32] = "null", p99[32] = "null", p999[32] = "null", mx[32] = "null";
  if (g_hist_n) {
    snprintf(p50, sizeof p50, "%llu", (unsigned long long)hist_pct(0.50));
    snprintf(p90, sizeof p90, "%llu", (unsigned long long)hist_pct(0.90));
    snprintf(p99, sizeof p99, "%llu", (unsigned long long)hist_pct(0.99));
    snprintf(p999, sizeof p999, "%llu", (unsigned long long)hist_pct(0.999));
    snprintf(mx, sizeof mx, "%llu", (unsigned long long)(g_max_ns / 1000));
    /* Share of messages slower than 300 us: on a VM whose wake-ups stall now and then, p99 jumps
     * between two levels with whether more than 1% of the messages fall in slow stretches; the
     * share above a fixed bound moves smoothly with them. */
    uint64_t over = g_hist_over;
    for (uint64_t i = 300; i < HIST_US; i++) over += g_hist[i];
    extra(",\"over300pct\":%.3f", 100.0 * (double)over / (double)g_hist_n);
  }
  if (el <= 0) el = 1e-9;
  printf("{\"tool\":\"loadgen.c\",\"scenario\":\"%s\",\"qos\":%d,\"publishers\":%d,\"subscribers\":%d,"
         "\"window\":%d,\"payload\":%d,\"targetRate\":%.0f,\"seconds\":%.3f,\"delivered\":%llu,\"rate\":%.0f,"
         "\"sent\":%llu,\"sentRate\":%.0f,\"acked\":%llu,\"ackedRate\":%.0f,\"p50us\":%s,\"p90us\":%s,\"p99us\":%s,\"p999us\":%s,\"maxus\":%s,\"genCpu\":%.2f,"
         "\"brokerCpu\":%s%s}\n",
         scenario, g_qos, npub, nsub, g_qos ? g_window : 0, g_payload, g_rate, el, (unsigned long long)recv, rate,
         (unsigned long long)sent, sent / el, (unsigned long long)acked, acked / el, p50, p90, p99, p999, mx, gen_cpu, broker_cpu, g_extra);
  fflush(stdout);
}

/* ---- idle: many connections -------------------------------------------------------------- */

struct iconn {
  int fd;
  int state; /* 0 connecting, 1 CONNECT sent, 2 connected, 3 closed by the broker */
  int inlen;
  unsigned char in[4];
};

static int run_idle(const char *host, int port, int n, int outstanding, double hold, double timeout) {
  raise_nofile((long)n + 64);
  struct iconn *cs = calloc((size_t)n, sizeof *cs);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) fail("bad IPv4 host %s", host);
  int pid = (int)getpid(), opened = 0, pending = 0, done = 0, closed = 0;
  long rss0 = broker_rss_kb();
  long long lo0 = listen_overflows();
  double cpu0 = cpu_s(), b0 = broker_cpu_s();
  uint64_t t0 = now_ns(), t_last = t0, deadline = t0 + (uint64_t)(timeout * 1e9);
  struct epoll_event evs[1024];
  unsigned char pkt[256];
  char id[64];
  while (done < n) {
    while (pending < outstanding && opened < n) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) fail("idle: out of file descriptors after %d connections (RLIMIT_NOFILE)", opened);
        die("socket");
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        fprintf(stderr, "loadgen: idle: connect() failed after %d connections\n", opened);
        die("connect");
      }
      cs[opened].fd = fd;
      struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)opened};
      if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
      opened++;
      pending++;
    }
    uint64_t now = now_ns();
    if (now > deadline) fail("idle: only %d of %d connections had a CONNACK after %.0f s (%d opened)", done, n, timeout, opened);
    int k = epoll_wait(g_epfd, evs, 1024, 100);
    if (k < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int e = 0; e < k; e++) {
      int i = (int)evs[e].data.u32;
      struct iconn *c = &cs[i];
      if (c->state == 0) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          errno = err;
          fprintf(stderr, "loadgen: idle: connection %d (after %d CONNACKs)\n", i, done);
          die("connect");
        }
        snprintf(id, sizeof id, "lg-%d-idle-%d", pid, i);
        size_t len = build_connect(pkt, id, 1, 120);
        if (write(c->fd, pkt, len) != (ssize_t)len) die("idle: write CONNECT");
        c->state = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
      } else if (c->state == 1) {
        ssize_t r = read(c->fd, c->in + c->inlen, (size_t)(4 - c->inlen));
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) fail("idle: broker closed connection %d before its CONNACK (%d CONNACKs so far)", i, done);
        c->inlen += (int)r;
        if (c->inlen < 4) continue;
        if (c->in[0] != 0x20 || c->in[3] != 0) fail("idle: CONNACK refused (type %#x rc %d) after %d connections", c->in[0], c->in[3], done);
        c->state = 2;
        done++;
        pending--;
        t_last = now_ns();
      } else if (c->state == 2) { /* an idle connection should hear nothing: closed or kicked */
        unsigned char b[256];
        ssize_t r = read(c->fd, b, sizeof b);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
          epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          c->state = 3;
          closed++;
        }
      }
    }
  }
  double el = (double)(t_last - t0) / 1e9;
  double gen_cpu = (cpu_s() - cpu0) / el, b1 = broker_cpu_s();
  long long lo1 = listen_overflows();
  char bcpu[32];
  fmt_cpu(bcpu, sizeof bcpu, b0, b1, el);
  /* hold: everything connected, nothing sent */
  uint64_t hold_end = now_ns() + (uint64_t)(hold * 1e9);
  for (;;) {
    uint64_t now = now_ns();
    if (now >= hold_end) break;
    int k = epoll_wait(g_epfd, evs, 1024, (int)((hold_end - now) / 1000000) + 1);
    for (int e = 0; e < k; e++) {
      struct iconn *c = &cs[evs[e].data.u32];
      unsigned char b[256];
      ssize_t r = read(c->fd, b, sizeof b);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = 3;
        closed++;
      }
    }
  }
  long rss1 = broker_rss_kb();
  /* DISCONNECT, then let the broker close first (at most 3 s): the TIME_WAIT sockets stay on
     the broker's side, not on 10,000 of this machine's ephemeral ports (which slows every
     later connect() for a minute: the next run's ramp would measure the port search). */
  static const unsigned char disc[2] = {0xe0, 0x00};
  int open_left = 0;
  for (int i = 0; i < n; i++)
    if (cs[i].state == 2) (void)!write(cs[i].fd, disc, 2), open_left++;
  uint64_t close_end = now_ns() + 3000000000ull;
  while (open_left > 0 && now_ns() < close_end) {
    int k = epoll_wait(g_epfd, evs, 1024, 100);
    for (int e = 0; e < k; e++) {
      struct iconn *c = &cs[evs[e].data.u32];
      if (c->state != 2) continue;
      unsigned char b[256];
      ssize_t r = read(c->fd, b, sizeof b);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        close(c->fd);
        c->state = 3;
        open_left--;
      }
    }
  }
  struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* still open: reset, no TIME_WAIT either */
  for (int i = 0; i < n; i++)
    if (cs[i].state == 2) setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), close(cs[i].fd);
  extra(",\"connections\":%d,\"connected\":%d,\"outstanding\":%d,\"connectSeconds\":%.3f,\"connectRate\":%.0f,\"holdSeconds\":%.1f,"
        "\"closedDuringHold\":%d,\"listenOverflows\":%lld",
        n, done, outstanding, el, n / el, hold, closed, lo0 >= 0 && lo1 >= 0 ? lo1 - lo0 : -1);
  if (rss0 >= 0 && rss1 >= 0)
    extra(",\"rssBeforeKB\":%ld,\"rssAfterKB\":%ld,\"kbPerConn\":%.2f", rss0, rss1, (double)(rss1 - rss0) / n);
  else extra(",\"rssBeforeKB\":null,\"rssAfterKB\":null,\"kbPerConn\":null");
  print_result("idle", 0, 0, el, (uint64_t)done, n / el, 0, 0, gen_cpu, bcpu);
  return closed ? 1 : 0;
}

/* ---- backlog: persistent session drain ---------------------------------------------------- */

static int run_backlog(const char *host, int port, double timeout) {
  char subid[64], pubid[64], topic[256];
  int pid = (int)getpid();
  snprintf(subid, sizeof subid, "lg-%d-backlog", pid);
  snprintf(pubid, sizeof pubid, "lg-%d-bpub", pid);
  snprintf(topic, sizeof topic, "%s/q", g_prefix);
  if (g_payload < 12) fail("backlog needs --payload 12 or more (a sequence number at bytes 8-11)");
  g_seen = calloc((size_t)g_backlog, 1);

  /* 1. the persistent subscriber subscribes and goes away */
  int sport = g_sub_port ? g_sub_port : port;
  int fd = mqtt_connect_ex(host, sport, subid, 0, 60, NULL);
  mqtt_subscribe(fd, topic, 1);
  mqtt_disconnect_wait(fd);
  if (sport != port) usleep(300000); /* the publisher's node learns the route through the store */

  /* 2. B QoS 1 messages queued for it, --window in flight */
  int pfd = mqtt_connect(host, port, pubid);
  size_t tl = strlen(topic), rl = 2 + tl + 2 + (size_t)g_payload;
  size_t psz = 1 + (rl < 128 ? 1 : rl < 16384 ? 2 : 3) + rl;
  unsigned char *buf = malloc(psz * (size_t)g_window), r[64];
  uint64_t q0 = now_ns();
  int sent = 0, acked = 0;
  uint16_t nextid = 1;
  while (acked < g_backlog) {
    size_t n = 0;
    while (sent < g_backlog && sent - acked < g_window) {
      unsigned char *p = buf + n;
      size_t k = 0;
      p[k++] = 0x32;
      k += put_varint(p + k, rl);
      p[k++] = (unsigned char)(tl >> 8);
      p[k++] = (unsigned char)tl;
      memcpy(p + k, topic, tl);
      k += tl;
      p[k++] = (unsigned char)(nextid >> 8);
      p[k++] = (unsigned char)nextid;
      nextid = nextid == 65535 ? 1 : nextid + 1;
      memset(p + k, 0, (size_t)g_payload); /* no send time: this is not a latency measurement */
      uint32_t seq = (uint32_t)sent;
      memcpy(p + k + 8, &seq, 4);
      k += (size_t)g_payload;
      n += k;
      sent++;
    }
    if (n) write_all(pfd, buf, n);
    size_t len;
    int t = read_packet(pfd, r, sizeof r, &len);
    if (t == 0x40) acked++;
  }
  double queue_s = (double)(now_ns() - q0) / 1e9;
  mqtt_disconnect_wait(pfd);

  /* 3. the subscriber comes back and drains */
  double cpu0 = cpu_s(), b0 = broker_cpu_s();
  uint64_t t0 = now_ns();
  int sp = 0;
  fd = mqtt_connect_ex(host, sport, subid, 0, 60, &sp);
  struct conn *c = new_conn(fd, SUB, 0, topic);
  uint64_t t_done = 0, deadline = t0 + (uint64_t)(timeout * 1e9), last = t0, last_n = 0;
  struct epoll_event evs[8];
  while (g_distinct < (uint64_t)g_backlog) {
    uint64_t now = now_ns();
    if (now > deadline || now - last > 10000000000ull) break;
    int k = epoll_wait(g_epfd, evs, 8, 100);
    if (k < 0 && errno != EINTR) die("epoll_wait");
    if (k > 0) {
      if (conn_read(c) < 0) {
        fprintf(stderr, "loadgen: backlog: broker closed the subscriber after %llu messages\n", (unsigned long long)g_distinct);
        break;
      }
      flush(c);
      update_events(c);
    }
    if (c->received != last_n) last_n = c->received, last = now_ns();
  }
  t_done = now_ns();
  flush(c);
  double el = (double)(t_done - t0) / 1e9;
  double gen_cpu = (cpu_s() - cpu0) / el, b1 = broker_cpu_s();
  char bcpu[32];
  fmt_cpu(bcpu, sizeof bcpu, b0, b1, el);
  int complete = g_distinct == (uint64_t)g_backlog;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  mqtt_disconnect_wait(fd);
  /* 4. remove the session */
  fd = mqtt_connect_ex(host, sport, subid, 1, 60, NULL);
  mqtt_disconnect_wait(fd);

  extra(",\"backlog\":%d,\"queueSeconds\":%.3f,\"queueRate\":%.0f,\"sessionPresent\":%d,\"drainSeconds\":%.3f,\"drainRate\":%.0f,"
        "\"distinct\":%llu,\"duplicates\":%llu,\"complete\":%s",
        g_backlog, queue_s, g_backlog / queue_s, sp, el, complete ? g_backlog / el : 0.0, (unsigned long long)g_distinct,
        (unsigned long long)g_dups, complete ? "true" : "false");
  print_result("backlog", 1, 1, el, c->received, complete ? g_backlog / el : 0.0, (uint64_t)sent, (uint64_t)acked, gen_cpu, bcpu);
  if (!complete) fprintf(stderr, "loadgen: backlog: drained %llu of %d messages\n", (unsigned long long)g_distinct, g_backlog);
  return complete ? 0 : 1;
}

/* ---- retained: preload and check ---------------------------------------------------------- */

static void retained_publish_all(int fd, int empty) {
  size_t cap = (size_t)(g_payload + 64) * 1024, n = 0;
  unsigned char *buf = malloc(cap);
  char topic[256];
  for (int i = 0; i < g_retained; i++) {
    int tl = snprintf(topic, sizeof topic, "%s/r/%d", g_prefix, i);
    size_t pl = empty ? 0 : (size_t)g_payload, rl = 2 + (size_t)tl + pl;
    if (i && i % 200 == 0) { /* batches of 200, each closed by a ping: Aedes 1.2.0 overflows its
                                stack (mqemitter recursion) when 10,000 arrive in one burst */
      write_all(fd, buf, n), n = 0;
      mqtt_ping_wait(fd);
    }
    if (n + rl + 8 > cap) write_all(fd, buf, n), n = 0;
    unsigned char *p = buf + n;
    size_t k = 0;
    p[k++] = 0x31; /* PUBLISH QoS 0 RETAIN */
    k += put_varint(p + k, rl);
    p[k++] = (unsigned char)(tl >> 8);
    p[k++] = (unsigned char)tl;
    memcpy(p + k, topic, (size_t)tl);
    k += (size_t)tl;
    memset(p + k, 'r', pl);
    n += k + pl;
  }
  if (n) write_all(fd, buf, n);
  free(buf);
  mqtt_ping_wait(fd);
}

static void retained_check(int fd, const char *filter) {
  mqtt_subscribe(fd, filter, g_qos);
  static unsigned char r[INCAP];
  size_t rl;
  int got = 0;
  while (got < g_retained) {
    int t = read_packet(fd, r, sizeof r, &rl);
    if ((t & 0xf0) == 0x30) {
      if (t & 1) got++;
      int q = (t >> 1) & 3;
      if (q) {
        size_t tl = ((size_t)r[0] << 8) | r[1];
        unsigned char ack[4] = {q == 1 ? 0x40 : 0x50, 2, r[2 + tl], r[3 + tl]};
        write_all(fd, ack, 4);
      }
    } else if ((t & 0xf0) == 0x60) {
      unsigned char ack[4] = {0x70, 2, r[0], r[1]};
      write_all(fd, ack, 4);
    }
  }
  char *f = (char *)filter;
  unsigned char pkt[512];
  write_all(fd, pkt, build_sub(pkt, 0xa2, 2, &f, 1, 0));
  for (int i = 0; i < 100000; i++)
    if (read_packet(fd, r, sizeof r, &rl) == 0xb0) return;
  fail("no UNSUBACK");
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [--host 127.0.0.1] [--port 1883]\n"
          "               [--scenario fanin|fanout|pairs|latency|filters|idle|retained|backlog]\n"
          "               [--qos 0|1|2] [--publishers N] [--subscribers N] [--pairs N] [--window 32]\n"
          "               [--rate msg/s] [--pace burst|even] [--payload 64] [--seconds 3] [--warmup 1] [--topic bench/PID]\n"
          "               [--filters 10000] [--connections 10000] [--outstanding 100] [--hold 2]\n"
          "               [--retained 10000] [--backlog 10000] [--timeout 60] [--broker-pid PID] [--sub-port PORT]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *scenario = "fanin", *topic = NULL;
  int port = 1883, npub = -1, nsub = -1, npairs = 100, nconn = 10000, outstanding = 100;
  double seconds = 3, warmup = 1, hold = 2, timeout = 60;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--sub-port")) g_sub_port = atoi(v);
    else if (!strcmp(a, "--scenario")) scenario = v;
    else if (!strcmp(a, "--qos")) g_qos = atoi(v);
    else if (!strcmp(a, "--publishers")) npub = atoi(v);
    else if (!strcmp(a, "--subscribers")) nsub = atoi(v);
    else if (!strcmp(a, "--pairs")) npairs = atoi(v);
    else if (!strcmp(a, "--window")) g_window = atoi(v);
    else if (!strcmp(a, "--rate")) g_rate = atof(v);
    else if (!strcmp(a, "--pace")) {
      if (!strcmp(v, "even")) g_pace_even = 1;
      else if (strcmp(v, "burst")) usage();
    }
    else if (!strcmp(a, "--payload")) g_payload = atoi(v);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--topic")) topic = v;
    else if (!strcmp(a, "--filters")) g_nfilters = atoi(v);
    else if (!strcmp(a, "--connections")) nconn = atoi(v);
    else if (!strcmp(a, "--outstanding")) outstanding = atoi(v);
    else if (!strcmp(a, "--hold")) hold = atof(v);
    else if (!strcmp(a, "--retained")) g_retained = atoi(v);
    else if (!strcmp(a, "--backlog")) g_backlog = atoi(v);
    else if (!strcmp(a, "--timeout")) timeout = atof(v);
    else if (!strcmp(a, "--broker-pid")) g_bpid = atoi(v);
    else usage();
  }
  if (g_qos < 0 || g_qos > 2 || g_payload < 8 || g_window < 1 || seconds <= 0 || warmup < 0 || timeout <= 0) usage();
  if (g_nfilters < 1 || nconn < 1 || outstanding < 1 || hold < 0 || g_retained < 1 || g_backlog < 1) usage();
  if (g_bpid && broker_cpu_s() < 0) fail("--broker-pid %d: cannot read /proc/%d/stat", g_bpid, g_bpid);
  int pairs = 0;
  if (!strcmp(scenario, "fanin")) {
    if (npub < 0) npub = 10;
    nsub = 1;
  } else if (!strcmp(scenario, "fanout")) {
    g_mode = M_FANOUT;
    npub = 1;
    if (nsub < 0) nsub = 50;
  } else if (!strcmp(scenario, "pairs")) {
    g_mode = M_PAIRS;
    pairs = 1;
    npub = nsub = npairs;
  } else if (!strcmp(scenario, "latency")) {
    g_mode = M_LATENCY;
    if (npub < 0) npub = 1;
    nsub = 1;
    if (g_rate <= 0) g_rate = 5000;
  } else if (!strcmp(scenario, "filters")) {
    g_mode = M_FILTERS;
    if (npub < 0) npub = 10;
    if (nsub < 0) nsub = 10;
    if (nsub > g_nfilters) nsub = g_nfilters;
    g_nsub_filters = nsub;
  } else if (!strcmp(scenario, "idle")) {
    g_mode = M_IDLE;
    npub = nsub = 0;
  } else if (!strcmp(scenario, "retained")) {
    g_mode = M_RETAINED;
    npub = 0;
    if (nsub < 0) nsub = 4;
  } else if (!strcmp(scenario, "backlog")) {
    g_mode = M_BACKLOG;
    g_qos = 1; /* the backlog is QoS 1 whatever --qos says */
    npub = nsub = 1;
  } else usage();
  if (npub < 0 || nsub < 0 || (g_mode != M_IDLE && npub + nsub < 1) || (g_mode != M_RETAINED && g_mode != M_IDLE && (npub < 1 || nsub < 1))) usage();
  if (g_mode != M_IDLE) raise_nofile(npub + nsub + 64);

  /* A topic of its own per run, so that a previous run's backlog (QoS 0 data still in the
     broker's socket buffers) is not counted as delivered here. */
  char deftopic[64];
  if (!topic) {
    snprintf(deftopic, sizeof deftopic, "bench/%d", (int)getpid());
    topic = deftopic;
  }
  if (strlen(topic) > 200) usage();
  g_prefix = topic;
  g_prefixlen = strlen(topic);
  g_hist = calloc(HIST_US, sizeof *g_hist);
  g_zero_payload = calloc(1, (size_t)g_payload);
  g_epfd = epoll_create1(0);
  if (g_epfd < 0) die("epoll_create1");

  if (g_mode == M_IDLE) return run_idle(host, port, nconn, outstanding, hold, timeout);
  if (g_mode == M_BACKLOG) return run_backlog(host, port, timeout);

  /* filters: the filter and topic tables */
  char **filters = NULL, **ftopics = NULL;
  size_t *ftopiclens = NULL, ftopicmax = 0;
  if (g_mode == M_FILTERS) {
    filters = calloc((size_t)g_nfilters, sizeof *filters);
    ftopics = calloc((size_t)g_nfilters, sizeof *ftopics);
    ftopiclens = calloc((size_t)g_nfilters, sizeof *ftopiclens);
    for (int j = 0; j < g_nfilters; j++) {
      char f[300], t[300];
      switch (j % 3) {
      case 0:
        snprintf(f, sizeof f, "%s/f%d/x", topic, j);
        snprintf(t, sizeof t, "%s/f%d/x", topic, j);
        break;
      case 1:
        snprintf(f, sizeof f, "%s/+/f%d", topic, j);
        snprintf(t, sizeof t, "%s/w/f%d", topic, j);
        break;
      default:
        snprintf(f, sizeof f, "%s/f%d/#", topic, j);
        snprintf(t, sizeof t, "%s/f%d/y/z", topic, j);
      }
      filters[j] = strdup(f);
      ftopics[j] = strdup(t);
      ftopiclens[j] = strlen(t);
      if (ftopiclens[j] > ftopicmax) ftopicmax = ftopiclens[j];
    }
  }

  /* retained: preload on the publisher's connection, check with the first subscriber's */
  char rfilter[256];
  int rfd = -1;
  if (g_mode == M_RETAINED) {
    snprintf(rfilter, sizeof rfilter, "%s/r/#", topic);
    char rid[64];
    snprintf(rid, sizeof rid, "lg-%d-rpub", (int)getpid());
    rfd = mqtt_connect(host, port, rid);
    retained_publish_all(rfd, 0);
  }

  struct conn **subs = calloc((size_t)nsub + 1, sizeof *subs), **pubs = calloc((size_t)npub + 1, sizeof *pubs);
  char id[64];
  pid_t pid = getpid();
  for (int i = 0; i < nsub; i++) {
    char *t = strdup(topic);
    if (pairs) {
      t = malloc(strlen(topic) + 16);
      sprintf(t, "%s/%d", topic, i);
    }
    snprintf(id, sizeof id, "lg-%d-sub-%d", (int)pid, i);
    int fd = mqtt_connect(host, g_sub_port ? g_sub_port : port, id);
    if (g_mode == M_FILTERS) {
      int mine = 0;
      char **own = calloc((size_t)g_nfilters / (size_t)nsub + 1, sizeof *own);
      for (int j = i; j < g_nfilters; j += nsub) own[mine++] = filters[j];
      mqtt_subscribe_many(fd, own, mine, g_qos);
      free(own);
    } else if (g_mode == M_RETAINED) {
      t = strdup(rfilter);
      if (i == 0) retained_check(fd, rfilter);
    } else mqtt_subscribe(fd, t, g_qos);
    subs[i] = new_conn(fd, SUB, i, t);
  }
  /* Another node learns of the subscriptions through the cluster's store: give it a moment
     before publishing (the warm-up window covers any later settling). */
  if (g_sub_port && g_sub_port != port) usleep(300000);
  for (int i = 0; i < npub; i++) {
    char *t = strdup(topic);
    if (pairs) {
      t = malloc(strlen(topic) + 16);
      sprintf(t, "%s/%d", topic, i);
    }
    snprintf(id, sizeof id, "lg-%d-pub-%d", (int)pid, i);
    int fd = mqtt_connect(host, port, id);
    pubs[i] = new_conn(fd, PUB, i, t);
    if (g_mode == M_FILTERS) {
      pubs[i]->topics = ftopics;
      pubs[i]->topiclens = ftopiclens;
      pubs[i]->ntopics = (size_t)g_nfilters;
      pubs[i]->tcur = (size_t)((long long)i * g_nfilters / npub);
      pubs[i]->topiclen = ftopicmax;
    }
  }

  if (g_rate <= 0) g_pace_even = 0; /* pacing is a property of --rate; without one there is none */
  if (g_pace_even) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* the default 50 us slack would bunch the sends again */
    extra(",\"pace\":\"even\"");
  }
  uint64_t t_start = now_ns();
  uint64_t t_measure = t_start + (uint64_t)(warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(seconds * 1e9);
  double cpu_base = 0, broker_base = -1;
  uint64_t base_recv = 0, base_sent = 0, base_acked = 0, paced_sent = 0, base_cycles = 0;
  int rr = 0;
  for (int i = 0; i < npub; i++) {
    pub_fill(pubs[i]);
    flush(pubs[i]);
    update_events(pubs[i]);
  }
  if (g_mode == M_RETAINED)
    for (int i = 0; i < nsub; i++) {
      char *f = (char *)subs[i]->topic;
      subs[i]->outlen += build_sub(subs[i]->out, 0x82, 3, &f, 1, g_qos);
      subs[i]->last_progress = t_start;
      flush(subs[i]);
      update_events(subs[i]);
    }

  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ns();
    if (!g_measuring && now >= t_measure) {
      for (int i = 0; i < nsub; i++) base_recv += subs[i]->received, base_cycles += subs[i]->cycles;
      for (int i = 0; i < npub; i++) base_sent += pubs[i]->sent, base_acked += pubs[i]->acked;
      g_measuring = 1;
      cpu_base = cpu_s();
      broker_base = broker_cpu_s();
      t_measure = now;
      t_end = now + (uint64_t)(seconds * 1e9);
    }
    if (g_measuring && now >= t_end) break;
    if (g_rate > 0) {
      uint64_t due = (uint64_t)((double)(now - t_start) * g_rate / 1e9);
      while (paced_sent < due) {
        struct conn *c = pubs[rr];
        rr = (rr + 1) % npub;
        if (c->outlen + publish_size(c, g_qos) > OUTCAP || c->inflight >= 60000) {
          paced_sent++; /* counted as skipped: the generator could not send (broker stalled) */
          continue;
        }
        put_publish(c, g_qos, 1);
        if (g_qos) c->inflight++;
        paced_sent++;
      }
      for (int i = 0; i < npub; i++) {
        flush(pubs[i]);
        update_events(pubs[i]);
      }
    }
    if (g_mode == M_RETAINED)
      for (int i = 0; i < nsub; i++) {
        struct conn *c = subs[i];
        if (now - c->last_progress > RETAINED_STALL_NS && c->outlen + 1024 < OUTCAP) {
          c->stalls++;
          c->last_progress = now;
          retained_resubscribe(c);
          flush(c);
          update_events(c);
        }
      }
    int n;
    if (g_pace_even) {
      /* Until the next message is due: the one after paced_sent, at t_start + (paced_sent + 1) / rate. */
      uint64_t next = t_start + (uint64_t)((double)(paced_sent + 1) * 1e9 / g_rate) + 1;
      uint64_t after = now_ns();
      uint64_t wait = next > after ? next - after : 0;
      if (wait > 1000000) wait = 1000000;
      struct timespec ts = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
      n = (int)syscall(SYS_epoll_pwait2, g_epfd, evs, 256, &ts, NULL, 0);
    } else {
      int timeout_ms;
      if (g_rate > 0) timeout_ms = 1;
      else {
        uint64_t until = g_measuring ? t_end : t_measure;
        timeout_ms = until > now ? (int)((until - now) / 1000000) + 1 : 0;
        if (timeout_ms > 100) timeout_ms = 100;
      }
      n = epoll_wait(g_epfd, evs, 256, timeout_ms);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      struct conn *c = evs[k].data.ptr;
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (conn_read(c) < 0) {
          fprintf(stderr, "loadgen: broker closed %s %d\n", c->role == PUB ? "publisher" : "subscriber", c->idx);
          exit(1);
        }
      }
      if (c->role == PUB) pub_fill(c);
      flush(c);
      update_events(c);
    }
  }

  g_stop = 1;
  uint64_t t_done = now_ns();
  double broker_end = broker_cpu_s();
  uint64_t recv = 0, sent = 0, acked = 0, misrouted = 0, cycles = 0, stalls = 0;
  for (int i = 0; i < nsub; i++) recv += subs[i]->received, misrouted += subs[i]->misrouted, cycles += subs[i]->cycles, stalls += subs[i]->stalls;
  for (int i = 0; i < npub; i++) sent += pubs[i]->sent, acked += pubs[i]->acked;
  recv -= base_recv;
  sent -= base_sent;
  acked -= base_acked;
  cycles -= base_cycles;
  double el = (double)(t_done - t_measure) / 1e9;
  double gen_cpu = (cpu_s() - cpu_base) / el; /* share of one core the generator used while measuring */
  char bcpu[32];
  fmt_cpu(bcpu, sizeof bcpu, broker_base, broker_end, el);
  if (getenv("LG_DEBUG")) fprintf(stderr, "totals: received %llu sent %llu acked %llu (base recv %llu sent %llu)\n", (unsigned long long)(recv + base_recv), (unsigned long long)(sent + base_sent), (unsigned long long)(acked + base_acked), (unsigned long long)base_recv, (unsigned long long)base_sent);
  static const unsigned char disc[2] = {0xe0, 0x00};
  for (int i = 0; i < npub; i++) (void)!write(pubs[i]->fd, disc, 2), close(pubs[i]->fd);
  for (int i = 0; i < nsub; i++) (void)!write(subs[i]->fd, disc, 2), close(subs[i]->fd);

  if (g_mode == M_FILTERS) extra(",\"filters\":%d,\"misrouted\":%llu", g_nfilters, (unsigned long long)misrouted);
  if (g_mode == M_RETAINED) {
    extra(",\"retained\":%d,\"cycles\":%llu,\"stalls\":%llu", g_retained, (unsigned long long)cycles, (unsigned long long)stalls);
    retained_publish_all(rfd, 1); /* delete them again */
    mqtt_disconnect_wait(rfd);
  }
  print_result(scenario, npub, nsub, el, recv, recv / el, sent, acked, gen_cpu, bcpu);
  return 0;
}
