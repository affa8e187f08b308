// SPDX-License-Identifier: MIT
/*
 * ustack_echo: drives the afxdp NSM's TCP/IP engine on one L2 backend, for
 * the integration tests (tests/integration/ustack_*.sh).
 *
 *   ustack_echo --backend tap|packet|afxdp --if DEV --addr A.B.C.D/LEN
 *               [--gw A.B.C.D] [--queues N] [--zc] [--default-prog] [--skb]
 *               [--csum complete|strict|lwip] [--ready-file F]
 *               [--timeout SECONDS]
 *     server:   [--tcp-echo PORT] [--http PORT] [--udp-echo PORT]
 *     client:   --connect A.B.C.D:PORT --send-file F --recv-file F
 *               (sends F, half-closes, writes what comes back to the recv
 *               file, exits 0 at the peer's EOF)
 *
 * Exit status: 0 done or stopped by SIGTERM/SIGINT; 1 error; 2 usage.
 * SIGUSR1 prints the counters to stderr (they are printed at exit too).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "l2.h"
#include "ustack.h"

#define CONN_BUF 65536

enum conn_kind { C_ECHO, C_HTTP, C_CLIENT };

struct conn {
	enum conn_kind kind;
	struct nk_usock *s;
	size_t out_len, out_off;
	int peer_eof, fin_sent;
	size_t req_len;
	uint8_t buf[CONN_BUF];
};

static struct nk_ustack *st;
static struct nk_l2 *l2;
static volatile sig_atomic_t stop, want_stats;
static int done, failed;
static unsigned long nconns, nhttp, nudp;

/* client mode */
static int send_fd = -1, recv_fd = -1;
static struct conn *client; /* freed at exit; its socket by destroy */
static int send_done;
static unsigned long long sent_bytes, recv_bytes;

static const char http_body[] = "hello from the netkernel ustack\n";

static void die(const char *what, int err)
{
	fprintf(stderr, "ustack_echo: %s: %s\n", what, strerror(err));
	exit(1);
}

static void print_stats(void)
{
	struct nk_ustack_stats s;
	struct nk_l2_stats ls;
	unsigned i;

	nk_ustack__stats(st, &s);
	nk_l2__stats(l2, &ls);
	fprintf(stderr,
		"stats: rx_frames=%llu rx_to_lwip=%llu rx_not_ours=%llu "
		"rx_martian=%llu rx_csum_bad=%llu rx_csum_completed=%llu "
		"rx_csum_once=%llu rx_nomem=%llu tx_frames=%llu tx_dropped=%llu sockets=%llu "
		"tx_ack_coalesced=%llu udp_rx_dropped=%llu conns=%lu http=%lu "
		"udp=%lu",
		(unsigned long long)s.rx_frames,
		(unsigned long long)s.rx_to_lwip,
		(unsigned long long)s.rx_not_ours,
		(unsigned long long)s.rx_martian,
		(unsigned long long)s.rx_csum_bad,
		(unsigned long long)s.rx_csum_completed,
		(unsigned long long)s.rx_csum_once,
		(unsigned long long)s.rx_nomem, (unsigned long long)s.tx_frames,
		(unsigned long long)s.tx_dropped, (unsigned long long)s.sockets,
		(unsigned long long)s.tx_ack_coalesced,
		(unsigned long long)s.udp_rx_dropped, nconns, nhttp, nudp);
	for (i = 1; i < NK_PKT_DROP__MAX; i++)
		fprintf(stderr, " drop_%s=%llu", nk_pkt_drop__name(i),
			(unsigned long long)s.rx_drop[i]);
	fprintf(stderr,
		" l2_rx=%llu l2_tx=%llu l2_rx_dropped=%llu l2_tx_dropped=%llu "
		"l2_kicks=%llu l2_rx_ring_full=%llu l2_rx_fill_empty=%llu\n",
		(unsigned long long)ls.rx_frames,
		(unsigned long long)ls.tx_frames,
		(unsigned long long)ls.rx_dropped,
		(unsigned long long)ls.tx_dropped, (unsigned long long)ls.kicks,
		(unsigned long long)ls.rx_ring_full,
		(unsigned long long)ls.rx_fill_empty);
}

static void conn_close(struct conn *c)
{
	nk_ustack_tcp_close(c->s);
	free(c);
}

/* Echo: read only when the previous piece went out (backpressure). */
static void echo_pump(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->out_off < c->out_len) {
			n = nk_ustack_tcp_send(c->s, c->buf + c->out_off,
					       c->out_len - c->out_off, 0);
			if (n == -EAGAIN)
				return;
			if (n < 0) {
				conn_close(c);
				return;
			}
			c->out_off += (size_t)n;
			continue;
		}
		if (c->peer_eof) {
			conn_close(c); /* FIN after the echoed data */
			return;
		}
		n = nk_ustack_tcp_recv(c->s, c->buf, sizeof(c->buf));
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			if (n == 0) {
				c->peer_eof = 1;
				continue;
			}
			conn_close(c);
			return;
		}
		c->out_len = (size_t)n;
		c->out_off = 0;
	}
}

static void http_pump(struct conn *c)
{
	char hdr[160];
	ssize_t n;
	int hl;

	if (c->fin_sent)
		return;
	for (;;) {
		n = nk_ustack_tcp_recv(c->s, c->buf + c->req_len,
				       sizeof(c->buf) - 1 - c->req_len);
		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->req_len += (size_t)n;
		c->buf[c->req_len] = 0;
		if (strstr((char *)c->buf, "\r\n\r\n"))
			break;
		if (c->req_len >= 4096) {
			conn_close(c);
			return;
		}
	}
	hl = snprintf(hdr, sizeof(hdr),
		      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
		      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		      sizeof(http_body) - 1);
	/* both fit in an empty 64 KiB send buffer */
	if (nk_ustack_tcp_send(c->s, hdr, (size_t)hl, NK_USOCK_SEND_MORE) !=
		    hl ||
	    nk_ustack_tcp_send(c->s, http_body, sizeof(http_body) - 1, 0) !=
		    (ssize_t)sizeof(http_body) - 1) {
		conn_close(c);
		return;
	}
	nhttp++;
	c->fin_sent = 1;
	conn_close(c); /* graceful: the queued response goes out, then FIN */
}

static void client_pump(struct conn *c)
{
	ssize_t n;

	/* send side: file -> socket */
	while (!send_done) {
		if (c->out_off == c->out_len) {
			n = read(send_fd, c->buf, sizeof(c->buf));
			if (n < 0)
				die("read send-file", errno);
			if (n == 0) {
				send_done = 1;
				if (nk_ustack_tcp_shutdown(c->s, SHUT_WR))
					failed = 1;
				break;
			}
			c->out_len = (size_t)n;
			c->out_off = 0;
		}
		n = nk_ustack_tcp_send(c->s, c->buf + c->out_off,
				       c->out_len - c->out_off, 0);
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			fprintf(stderr, "send: %s\n", strerror((int)-n));
			failed = done = 1;
			return;
		}
		c->out_off += (size_t)n;
		sent_bytes += (unsigned long long)n;
	}
	/* receive side: socket -> file */
	for (;;) {
		static uint8_t rbuf[CONN_BUF];

		n = nk_ustack_tcp_recv(c->s, rbuf, sizeof(rbuf));
		if (n == -EAGAIN)
			return;
		if (n < 0) {
			fprintf(stderr, "recv: %s\n", strerror((int)-n));
			failed = done = 1;
			return;
		}
		if (n == 0) {
			done = 1;
			return;
		}
		if (write(recv_fd, rbuf, (size_t)n) != n)
			die("write recv-file", errno);
		recv_bytes += (unsigned long long)n;
	}
}

static void conn_cb(struct nk_usock *s, uint32_t ev, void *arg)
{
	struct conn *c = arg;

	(void)s;
	if (c->kind == C_CLIENT) {
		if (ev & NK_USOCK_EV_ERROR) {
			int e = nk_ustack_sock_error(s);

			if (e) {
				fprintf(stderr, "client: %s\n", strerror(-e));
				failed = done = 1;
				return;
			}
		}
		client_pump(c);
		return;
	}
	if (c->kind == C_ECHO)
		echo_pump(c);
	else
		http_pump(c);
}

static void listen_cb(struct nk_usock *ls, uint32_t ev, void *arg)
{
	enum conn_kind kind = (enum conn_kind)(long)arg;
	struct nk_usock *s;
	struct conn *c;

	(void)ev;
	for (;;) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return;
		c->kind = kind;
		if (nk_ustack_tcp_accept(ls, conn_cb, c, &s, NULL)) {
			free(c);
			return;
		}
		c->s = s;
		nconns++;
	}
}

static void udp_cb(struct nk_usock *s, uint32_t ev, void *arg)
{
	static uint8_t buf[65536];
	struct sockaddr_in src;
	ssize_t n;

	(void)ev;
	(void)arg;
	while ((n = nk_ustack_udp_recvfrom(s, buf, sizeof(buf), &src)) >= 0) {
		nudp++;
		(void)nk_ustack_udp_sendto(s, buf, (size_t)n, &src);
	}
}

static void on_sig(int sig)
{
	if (sig == SIGUSR1)
		want_stats = 1;
	else
		stop = 1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ustack_echo --backend tap|packet|afxdp --if DEV "
		"--addr A.B.C.D/LEN [--gw A.B.C.D]\n"
		"  [--queues N] [--zc] [--default-prog] [--skb] "
		"[--csum complete|strict|lwip]\n"
		"  [--tcp-echo PORT] [--http PORT] [--udp-echo PORT]\n"
		"  [--connect A.B.C.D:PORT --send-file F --recv-file F]\n"
		"  [--ready-file F] [--timeout SECONDS]\n");
	exit(2);
}

static struct sockaddr_in sin_any(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port) };

	return a;
}

int main(int argc, char **argv)
{
	struct nk_l2_opts lo = { .sz = sizeof(lo) };
	struct nk_ustack_opts so = { .sz = sizeof(so) };
	const char *backend = NULL, *addr = NULL, *gw = NULL, *ready = NULL;
	const char *connect_to = NULL, *send_file = NULL, *recv_file = NULL;
	int tcp_echo = 0, http = 0, udp_echo = 0, timeout = 0, i, ret, plen;
	struct in_addr a, g = { 0 };
	struct nk_usock *ls;
	struct sigaction sa;
	time_t t0;
	char *slash;

	for (i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--zc")) {
			lo.flags |= NK_L2_F_ZEROCOPY;
			continue;
		}
		if (!strcmp(o, "--default-prog")) {
			lo.flags |= NK_L2_F_DEFAULT_PROG;
			continue;
		}
		if (!strcmp(o, "--skb")) {
			lo.flags |= NK_L2_F_SKB_MODE;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(o, "--backend"))
			backend = v;
		else if (!strcmp(o, "--if"))
			lo.ifname = v;
		else if (!strcmp(o, "--addr"))
			addr = v;
		else if (!strcmp(o, "--gw"))
			gw = v;
		else if (!strcmp(o, "--queues"))
			lo.queue_count = (uint32_t)atoi(v);
		else if (!strcmp(o, "--csum"))
			so.csum_mode =
				!strcmp(v, "strict") ? NK_USTACK_CSUM_STRICT
				: !strcmp(v, "lwip") ? NK_USTACK_CSUM_LWIP
						     : NK_USTACK_CSUM_COMPLETE;
		else if (!strcmp(o, "--tcp-echo"))
			tcp_echo = atoi(v);
		else if (!strcmp(o, "--http"))
			http = atoi(v);
		else if (!strcmp(o, "--udp-echo"))
			udp_echo = atoi(v);
		else if (!strcmp(o, "--connect"))
			connect_to = v;
		else if (!strcmp(o, "--send-file"))
			send_file = v;
		else if (!strcmp(o, "--recv-file"))
			recv_file = v;
		else if (!strcmp(o, "--ready-file"))
			ready = v;
		else if (!strcmp(o, "--timeout"))
			timeout = atoi(v);
		else
			usage();
	}
	if (!nk_l2__kind(backend) || !lo.ifname || !addr)
		usage();
	slash = strchr(addr, '/');
	plen = slash ? atoi(slash + 1) : 24;
	if (slash)
		*slash = 0;
	if (!inet_aton(addr, &a) || plen < 1 || plen > 32 ||
	    (gw && !inet_aton(gw, &g)))
		usage();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig; /* no SA_RESTART: poll() returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	ret = nk_l2__open(nk_l2__kind(backend), &lo, &l2);
	if (ret)
		die("open backend", -ret);
	so.l2 = l2;
	ret = nk_ustack__create(&so, &st);
	if (ret)
		die("create engine", -ret);
	ret = nk_ustack__add_addr(st, a.s_addr,
				  htonl(plen == 32 ? 0xffffffffu
						   : ~(0xffffffffu >> plen)),
				  g.s_addr);
	if (ret)
		die("add address", -ret);

	if (tcp_echo) {
		struct sockaddr_in la = sin_any((uint16_t)tcp_echo);

		ret = nk_ustack_tcp_listen(st, &la, 64, listen_cb,
					   (void *)(long)C_ECHO, &ls);
		if (ret)
			die("listen tcp-echo", -ret);
	}
	if (http) {
		struct sockaddr_in la = sin_any((uint16_t)http);

		ret = nk_ustack_tcp_listen(st, &la, 64, listen_cb,
					   (void *)(long)C_HTTP, &ls);
		if (ret)
			die("listen http", -ret);
	}
	if (udp_echo) {
		struct sockaddr_in la = sin_any((uint16_t)udp_echo);
		struct nk_usock *us;

		ret = nk_ustack_udp_bind(st, &la, udp_cb, NULL, &us);
		if (ret)
			die("bind udp-echo", -ret);
	}
	if (connect_to) {
		struct sockaddr_in ra = { .sin_family = AF_INET };
		char host[64], *colon;
		struct conn *c;
		struct nk_usock *s;

		snprintf(host, sizeof(host), "%s", connect_to);
		colon = strchr(host, ':');
		if (!colon || !send_file || !recv_file)
			usage();
		*colon = 0;
		if (!inet_aton(host, &ra.sin_addr))
			usage();
		ra.sin_port = htons((uint16_t)atoi(colon + 1));
		send_fd = open(send_file, O_RDONLY | O_CLOEXEC);
		if (send_fd < 0)
			die(send_file, errno);
		recv_fd = open(recv_file,
			       O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (recv_fd < 0)
			die(recv_file, errno);
		c = calloc(1, sizeof(*c));
		if (!c)
			die("calloc", ENOMEM);
		c->kind = C_CLIENT;
		ret = nk_ustack_tcp_connect(st, NULL, &ra, conn_cb, c, &s);
		if (ret)
			die("connect", -ret);
		c->s = s;
		client = c;
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f) {
			fprintf(f, "ready\n");
			fclose(f);
		}
	}
	{
		char desc[160];

		nk_l2__describe(l2, desc, sizeof(desc));
		fprintf(stderr, "ustack_echo: %s on %s, %s/%d\n", desc,
			lo.ifname, inet_ntoa(a), plen);
	}

	t0 = time(NULL);
	while (!stop && !done) {
		struct pollfd pfd = { .fd = nk_ustack__fd(st),
				      .events = POLLIN };
		int t = nk_ustack__timeout_ms(st);

		if (t < 0 || t > 100)
			t = 100;
		if (poll(&pfd, 1, t) < 0 && errno != EINTR)
			die("poll", errno);
		ret = nk_ustack__poll(st, 256);
		if (ret < 0)
			die("engine poll", -ret);
		if (want_stats) {
			want_stats = 0;
			print_stats();
		}
		if (timeout && time(NULL) - t0 > timeout) {
			fprintf(stderr, "ustack_echo: timeout\n");
			failed = 1;
			break;
		}
	}
	if (connect_to)
		fprintf(stderr, "client: sent=%llu received=%llu\n", sent_bytes,
			recv_bytes);
	print_stats();
	nk_ustack__destroy(st);
	nk_l2__close(l2);
	free(client);
	return failed ? 1 : 0;
}
