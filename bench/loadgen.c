/*
 * loadgen.c - a single-file MQTT 3.1.1 load generator for side-by-side broker runs.
 *
 * One thread, one epoll instance, non-blocking sockets, no libraries beyond libc. It exists
 * because the Node generator (src/bench/bench.ts) saturates its own core before the broker does.
 *
 *   gcc -O2 -o bench/loadgen bench/loadgen.c
 *   bench/loadgen --port 1883 --scenario fanin --qos 1 --publishers 10 --window 32 --seconds 3
 *
 * Scenarios (all topics are plain, payload 64 bytes by default):
 *   fanin    N publishers -> 1 subscriber on one topic            (--publishers, default 10)
 *   fanout   1 publisher  -> N subscribers on one topic           (--subscribers, default 50)
 *   pairs    N publishers -> N subscribers, pair i on topic i     (--pairs, default 100)
 *   latency  like fanin but paced at --rate msg/s in total        (default 1 publisher, 5000/s)
 *
 * Publishers: QoS 0 keeps the socket full (bounded user-space buffer); QoS 1/2 keep --window
 * messages in flight each (a message leaves the window on PUBACK, or on PUBCOMP for QoS 2); with
 * --rate > 0 the publishers are paced instead (window ignored). Subscribers subscribe at the same
 * QoS and acknowledge (PUBACK, PUBREC then PUBCOMP on PUBREL) as fast as they read.
 *
 * Every QoS 1/2 (and paced) publish carries its CLOCK_MONOTONIC send time (ns) in the first 8
 * payload bytes; the subscribers record receive - send into a 1 us histogram (to 10 s), so p50/p99
 * are reported for every run but only mean something below saturation (the latency scenario).
 *
 * After --warmup seconds (default 1) the generator counts deliveries for --seconds, then prints
 * one JSON line and exits. Exit status 1 on a connection failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUTCAP (1 << 20)      /* per-connection output buffer */
#define INCAP (1 << 18)       /* per-connection input buffer */
#define Q0_FILL (256 * 1024)  /* QoS 0 publishers keep at most this much queued in user space */
#define OUT_HIGH (OUTCAP - 128 * 1024) /* stop reading while this much output is pending */
#define HIST_US 10000000      /* histogram range, 1 us buckets */

enum role { PUB, SUB };

struct conn {
  int fd;
  enum role role;
  int idx;
  uint32_t events;      /* currently registered epoll mask */
  unsigned char *in;
  size_t inlen;
  unsigned char *out;
  size_t outoff, outlen;
  const char *topic;
  size_t topiclen;
  int inflight;
  uint16_t nextid;
  uint64_t received;    /* subscriber: PUBLISH packets */
  uint64_t acked;       /* publisher: PUBACK/PUBCOMP packets */
  uint64_t sent;        /* publisher: PUBLISH packets queued */
};

static int g_qos = 0, g_window = 32, g_payload = 64;
static double g_rate = 0;
static int g_stop = 0, g_measuring = 0;
static uint32_t *g_hist;
static uint64_t g_hist_over, g_hist_n, g_max_ns;
static int g_epfd;
static unsigned char *g_zero_payload;

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

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(1);
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

/* Reads one whole packet (blocking); returns its type byte, body into buf. */
static int read_packet(int fd, unsigned char *buf, size_t cap, size_t *len) {
  unsigned char h;
  if (read(fd, &h, 1) != 1) die("read (connection closed during setup)");
  size_t rl = 0, mul = 1;
  for (;;) {
    unsigned char b;
    if (read(fd, &b, 1) != 1) die("read");
    rl += (b & 127) * mul;
    mul *= 128;
    if (!(b & 128)) break;
  }
  if (rl > cap) {
    fprintf(stderr, "loadgen: setup packet too large\n");
    exit(1);
  }
  size_t got = 0;
  while (got < rl) {
    ssize_t r = read(fd, buf + got, rl - got);
    if (r <= 0) die("read");
    got += (size_t)r;
  }
  *len = rl;
  return h;
}

static int mqtt_connect(const char *host, int port, const char *client_id) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "loadgen: bad IPv4 host %s\n", host);
    exit(1);
  }
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  unsigned char pkt[512], body[400];
  size_t idlen = strlen(client_id), b = 0;
  memcpy(body, "\x00\x04MQTT\x04\x02\x00\x3c", 10); /* protocol level 4, clean session, keepalive 60 */
  b = 10;
  body[b++] = (unsigned char)(idlen >> 8);
  body[b++] = (unsigned char)idlen;
  memcpy(body + b, client_id, idlen);
  b += idlen;
  size_t n = 0;
  pkt[n++] = 0x10;
  n += put_varint(pkt + n, b);
  memcpy(pkt + n, body, b);
  n += b;
  write_all(fd, pkt, n);
  unsigned char r[64];
  size_t rl;
  int t = read_packet(fd, r, sizeof r, &rl);
  if (t != 0x20 || rl < 2 || r[1] != 0) {
    fprintf(stderr, "loadgen: CONNACK refused (type %#x rc %d) for %s\n", t, rl >= 2 ? r[1] : -1, client_id);
    exit(1);
  }
  return fd;
}

static void mqtt_subscribe(int fd, const char *topic, int qos) {
  unsigned char pkt[512];
  size_t tl = strlen(topic), n = 0;
  pkt[n++] = 0x82;
  n += put_varint(pkt + n, 2 + 2 + tl + 1);
  pkt[n++] = 0;
  pkt[n++] = 1;
  pkt[n++] = (unsigned char)(tl >> 8);
  pkt[n++] = (unsigned char)tl;
  memcpy(pkt + n, topic, tl);
  n += tl;
  pkt[n++] = (unsigned char)qos;
  write_all(fd, pkt, n);
  unsigned char r[64];
  size_t rl;
  int t = read_packet(fd, r, sizeof r, &rl);
  if (t != 0x90 || rl < 3 || r[2] == 0x80) {
    fprintf(stderr, "loadgen: SUBACK failed for %s\n", topic);
    exit(1);
  }
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
  size_t rl = 2 + c->topiclen + (qos ? 2 : 0) + (size_t)g_payload, n = 0;
  p[n++] = (unsigned char)(0x30 | (qos << 1));
  n += put_varint(p + n, rl);
  p[n++] = (unsigned char)(c->topiclen >> 8);
  p[n++] = (unsigned char)c->topiclen;
  memcpy(p + n, c->topic, c->topiclen);
  n += c->topiclen;
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

/* Parses every complete packet in c->in. Stops early if the output buffer is nearly full. */
static void handle_input(struct conn *c) {
  size_t off = 0;
  while (off + 2 <= c->inlen) {
    if (c->outlen + 64 > OUTCAP) break;
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
    } else if (type == 4 || type == 7) { /* PUBACK / PUBCOMP */
      c->inflight--;
      c->acked++;
    } else if (type == 5) { /* PUBREC -> PUBREL */
      put_ack(c, 0x62, (uint16_t)((body[0] << 8) | body[1]));
    } else if (type == 6) { /* PUBREL -> PUBCOMP */
      put_ack(c, 0x70, (uint16_t)((body[0] << 8) | body[1]));
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
  c->fd = fd;
  c->role = role;
  c->idx = idx;
  c->in = malloc(INCAP);
  c->out = malloc(OUTCAP);
  c->topic = topic;
  c->topiclen = strlen(topic);
  c->nextid = 1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &e) < 0) die("epoll_ctl");
  c->events = EPOLLIN;
  return c;
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

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen [--host 127.0.0.1] [--port 1883] [--scenario fanin|fanout|pairs|latency]\n"
          "               [--qos 0|1|2] [--publishers N] [--subscribers N] [--pairs N] [--window 32]\n"
          "               [--rate msg/s] [--payload 64] [--seconds 3] [--warmup 1] [--topic bench/PID]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *scenario = "fanin", *topic = NULL;
  int port = 1883, npub = -1, nsub = -1, npairs = 100;
  double seconds = 3, warmup = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(a, "--host")) host = v;
    else if (!strcmp(a, "--port")) port = atoi(v);
    else if (!strcmp(a, "--scenario")) scenario = v;
    else if (!strcmp(a, "--qos")) g_qos = atoi(v);
    else if (!strcmp(a, "--publishers")) npub = atoi(v);
    else if (!strcmp(a, "--subscribers")) nsub = atoi(v);
    else if (!strcmp(a, "--pairs")) npairs = atoi(v);
    else if (!strcmp(a, "--window")) g_window = atoi(v);
    else if (!strcmp(a, "--rate")) g_rate = atof(v);
    else if (!strcmp(a, "--payload")) g_payload = atoi(v);
    else if (!strcmp(a, "--seconds")) seconds = atof(v);
    else if (!strcmp(a, "--warmup")) warmup = atof(v);
    else if (!strcmp(a, "--topic")) topic = v;
    else usage();
  }
  if (g_qos < 0 || g_qos > 2 || g_payload < 8 || g_window < 1) usage();
  int pairs = 0;
  if (!strcmp(scenario, "fanin")) {
    if (npub < 0) npub = 10;
    nsub = 1;
  } else if (!strcmp(scenario, "fanout")) {
    npub = 1;
    if (nsub < 0) nsub = 50;
  } else if (!strcmp(scenario, "pairs")) {
    pairs = 1;
    npub = nsub = npairs;
  } else if (!strcmp(scenario, "latency")) {
    if (npub < 0) npub = 1;
    nsub = 1;
    if (g_rate <= 0) g_rate = 5000;
  } else usage();

  /* A topic of its own per run, so that a previous run's backlog (QoS 0 data still in the
     broker's socket buffers) is not counted as delivered here. */
  char deftopic[64];
  if (!topic) {
    snprintf(deftopic, sizeof deftopic, "bench/%d", (int)getpid());
    topic = deftopic;
  }
  g_hist = calloc(HIST_US, sizeof *g_hist);
  g_zero_payload = calloc(1, (size_t)g_payload);
  g_epfd = epoll_create1(0);
  if (g_epfd < 0) die("epoll_create1");

  struct conn **subs = calloc((size_t)nsub, sizeof *subs), **pubs = calloc((size_t)npub, sizeof *pubs);
  char id[64];
  pid_t pid = getpid();
  for (int i = 0; i < nsub; i++) {
    char *t = strdup(topic);
    if (pairs) {
      t = malloc(strlen(topic) + 16);
      sprintf(t, "%s/%d", topic, i);
    }
    snprintf(id, sizeof id, "lg-%d-sub-%d", (int)pid, i);
    int fd = mqtt_connect(host, port, id);
    mqtt_subscribe(fd, t, g_qos);
    subs[i] = new_conn(fd, SUB, i, t);
  }
  for (int i = 0; i < npub; i++) {
    char *t = strdup(topic);
    if (pairs) {
      t = malloc(strlen(topic) + 16);
      sprintf(t, "%s/%d", topic, i);
    }
    snprintf(id, sizeof id, "lg-%d-pub-%d", (int)pid, i);
    int fd = mqtt_connect(host, port, id);
    pubs[i] = new_conn(fd, PUB, i, t);
  }

  uint64_t t_start = now_ns();
  uint64_t t_measure = t_start + (uint64_t)(warmup * 1e9);
  uint64_t t_end = t_measure + (uint64_t)(seconds * 1e9);
  double cpu_base = 0;
  uint64_t base_recv = 0, base_sent = 0, base_acked = 0, paced_sent = 0;
  int rr = 0;
  for (int i = 0; i < npub; i++) {
    pub_fill(pubs[i]);
    flush(pubs[i]);
    update_events(pubs[i]);
  }

  struct epoll_event evs[256];
  for (;;) {
    uint64_t now = now_ns();
    if (!g_measuring && now >= t_measure) {
      for (int i = 0; i < nsub; i++) base_recv += subs[i]->received;
      for (int i = 0; i < npub; i++) base_sent += pubs[i]->sent, base_acked += pubs[i]->acked;
      g_measuring = 1;
      cpu_base = cpu_s();
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
    int timeout;
    if (g_rate > 0) timeout = 1;
    else {
      uint64_t until = g_measuring ? t_end : t_measure;
      timeout = until > now ? (int)((until - now) / 1000000) + 1 : 0;
      if (timeout > 100) timeout = 100;
    }
    int n = epoll_wait(g_epfd, evs, 256, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int k = 0; k < n; k++) {
      struct conn *c = evs[k].data.ptr;
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (int rounds = 0; rounds < 4; rounds++) {
          if (c->inlen == INCAP) break;
          ssize_t r = read(c->fd, c->in + c->inlen, INCAP - c->inlen);
          if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            die("read");
          }
          if (r == 0) {
            fprintf(stderr, "loadgen: broker closed %s %d\n", c->role == PUB ? "publisher" : "subscriber", c->idx);
            exit(1);
          }
          c->inlen += (size_t)r;
          handle_input(c);
          if ((size_t)r < 16384) break;
        }
      }
      if (c->role == PUB) pub_fill(c);
      flush(c);
      update_events(c);
    }
  }

  g_stop = 1;
  uint64_t t_done = now_ns();
  uint64_t recv = 0, sent = 0, acked = 0;
  for (int i = 0; i < nsub; i++) recv += subs[i]->received;
  for (int i = 0; i < npub; i++) sent += pubs[i]->sent, acked += pubs[i]->acked;
  recv -= base_recv;
  sent -= base_sent;
  acked -= base_acked;
  double el = (double)(t_done - t_measure) / 1e9;
  double gen_cpu = (cpu_s() - cpu_base) / el; /* share of one core the generator used while measuring */
  if (getenv("LG_DEBUG")) fprintf(stderr, "totals: received %llu sent %llu acked %llu (base recv %llu sent %llu)\n", (unsigned long long)(recv + base_recv), (unsigned long long)(sent + base_sent), (unsigned long long)(acked + base_acked), (unsigned long long)base_recv, (unsigned long long)base_sent);
  static const unsigned char disc[2] = {0xe0, 0x00};
  for (int i = 0; i < npub; i++) (void)!write(pubs[i]->fd, disc, 2), close(pubs[i]->fd);
  for (int i = 0; i < nsub; i++) (void)!write(subs[i]->fd, disc, 2), close(subs[i]->fd);

  char p50[32] = "null", p99[32] = "null", mx[32] = "null";
  if (g_hist_n) {
    snprintf(p50, sizeof p50, "%llu", (unsigned long long)hist_pct(0.50));
    snprintf(p99, sizeof p99, "%llu", (unsigned long long)hist_pct(0.99));
    snprintf(mx, sizeof mx, "%llu", (unsigned long long)(g_max_ns / 1000));
  }
  printf("{\"tool\":\"loadgen.c\",\"scenario\":\"%s\",\"qos\":%d,\"publishers\":%d,\"subscribers\":%d,"
         "\"window\":%d,\"payload\":%d,\"targetRate\":%.0f,\"seconds\":%.3f,\"delivered\":%llu,\"rate\":%.0f,"
         "\"sent\":%llu,\"sentRate\":%.0f,\"acked\":%llu,\"ackedRate\":%.0f,\"p50us\":%s,\"p99us\":%s,\"maxus\":%s,\"genCpu\":%.2f}\n",
         scenario, g_qos, npub, nsub, g_qos ? g_window : 0, g_payload, g_rate, el, (unsigned long long)recv,
         recv / el, (unsigned long long)sent, sent / el, (unsigned long long)acked, acked / el, p50, p99, mx, gen_cpu);
  return 0;
}
