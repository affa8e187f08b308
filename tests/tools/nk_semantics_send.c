/* SPDX-License-Identifier: MIT */
/*
 * nk_semantics: checks of the send path (issue 7, causes C, D, F and the
 * CPython sendfile hang). Included by nk_semantics.c, whose helpers it
 * uses; like every check there, the kernel is the oracle.
 */

/* Peer that reads nothing: small buffers so the path fills up soon. */
static int small_pair(int *cli, int *srv, int *lst)
{
	struct addr a;
	int small = 4096, l;

	TRY(addr_make(&a, "127.0.0.1", 0));
	SYS(l = socket(AF_INET, SOCK_STREAM, 0));
	/* Inherited by the accepted socket: a small advertised window. */
	SYS(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	SYS(bind(l, sa(&a), a.len));
	SYS(listen(l, 8));
	TRY(local_of(l, &a));
	SYS(*cli = socket(AF_INET, SOCK_STREAM, 0));
	SYS(setsockopt(*cli, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
	SYS(connect(*cli, sa(&a), a.len));
	SYS(*srv = accept(l, NULL, NULL));
	*lst = l;
	return 0;
}

/* Non-blocking sends of size bytes until EAGAIN; bytes sent, or -1. */
static long fill_sends(int fd, size_t size)
{
	static const char zeros[8192];
	long n = 0;

	for (long i = 0; i < 400000; i++) {
		ssize_t r = send(fd, zeros, size, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0) {
			n += r;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return n;
		snprintf(g_detail, sizeof(g_detail),
			 "send #%ld of %zu: %zd (%s)", i, size, r,
			 strerror(errno));
		return -1;
	}
	snprintf(g_detail, sizeof(g_detail),
		 "400000 sends to a peer that reads nothing, no EAGAIN");
	return -1;
}

/* One-byte sends: the most SENDs per byte. */
static long fill_tiny(int fd)
{
	return fill_sends(fd, 1);
}

/* Read and drop everything until the sender's n bytes are in. */
static int drain_n(int fd, long n)
{
	char buf[65536];

	while (n > 0) {
		ssize_t r;

		if (!wait_ev(fd, POLLIN, 5000))
			FAIL("receiver: nothing for 5 s with %ld bytes to go",
			     n);
		r = recv(fd, buf, opq(sizeof(buf)), 0);
		if (r < 0 && errno == EINTR)
			continue;
		EXPECT(r > 0, "receiver: %zd (%s) with %ld bytes to go", r,
		       strerror(errno), n);
		n -= r;
	}
	return 0;
}

/* C: the errors a send returns at once, not from a later completion. */
static int c_send_destaddr(void)
{
	struct addr a, b;
	struct sockaddr_in un = { .sin_family = AF_UNSPEC };
	struct iovec iov = { "x", 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int u, v;
	ssize_t r;

	TRY(u = udp_bound("127.0.0.1", &a));
	TRY(v = udp_bound("127.0.0.1", &b));
	r = send(u, "x", 1, 0);
	EXPECT(r < 0 && errno == EDESTADDRREQ,
	       "send on an unconnected UDP socket: %zd (%s), expected "
	       "EDESTADDRREQ",
	       r, r < 0 ? strerror(errno) : "no error");
	r = sendmsg(u, &mh, 0);
	EXPECT(r < 0 && errno == EDESTADDRREQ,
	       "sendmsg without an address: %zd (%s), expected EDESTADDRREQ", r,
	       r < 0 ? strerror(errno) : "no error");
	SYS(connect(u, sa(&b), b.len));
	EXPECT(send(u, "y", 1, 0) == 1, "send once connected: %s",
	       strerror(errno));
	TRY(expect_msg(v, "y", 2000));
	/* connect(AF_UNSPEC) dissolves the association again. */
	SYS(connect(u, (struct sockaddr *)&un, sizeof(un)));
	r = send(u, "z", 1, 0);
	EXPECT(r < 0 && errno == EDESTADDRREQ,
	       "send after connect(AF_UNSPEC): %zd (%s), expected "
	       "EDESTADDRREQ",
	       r, r < 0 ? strerror(errno) : "no error");
	return 0;
}

/*
 * C: a peer that resets the connection. The kernel hands the reset to
 * the next send or recv once, then fails every send with EPIPE; with
 * asynchronous sends the reset may be found by a SEND whose call already
 * returned, and must then come back from the next call all the same.
 */
static int c_send_reset(void)
{
	struct linger lg = { 1, 0 };
	int c, s, e = 0, seen = 0;
	socklen_t el = sizeof(e);
	char ch;

	TRY(tcp_pair("127.0.0.1", &c, &s));
	TRY(send_str(c, "a"));
	TRY(expect_msg(s, "a", 2000));
	SYS(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	SYS(close(s)); /* RST */
	sleep_ms(100);
	for (int i = 0; i < 50 && !seen; i++) {
		ssize_t r = send(c, "b", 1, MSG_NOSIGNAL);

		if (r < 0) {
			seen = errno;
			break;
		}
		/* Sent, as far as the call knows: the reset is for recv. */
		r = recv(c, &ch, 1, 0);
		if (r < 0)
			seen = errno;
		else
			EXPECT(r == 0, "recv after the reset: %zd", r);
	}
	EXPECT(seen == ECONNRESET,
	       "after the peer's reset: %s, expected ECONNRESET from a "
	       "send or the recv after it",
	       seen ? strerror(seen) : "no error");
	for (int i = 0; i < 3; i++) {
		ssize_t r = send(c, "c", 1, MSG_NOSIGNAL);

		EXPECT(r < 0 && errno == EPIPE,
		       "send #%d after the reset was reported: %zd (%s), "
		       "expected EPIPE",
		       i, r, r < 0 ? strerror(errno) : "no error");
	}
	SYS(getsockopt(c, SOL_SOCKET, SO_ERROR, &e, &el));
	EXPECT(e == 0, "SO_ERROR after the reset was reported: %s",
	       strerror(e));
	return 0;
}

/*
 * D: sends stuck in flight (the peer reads nothing) must not take the
 * buffers that a non-blocking accept and recv on other sockets need.
 */
static int c_send_bufs(void)
{
	int c, s, l, c2, s2, fl, i;
	char buf[8];
	long n;

	TRY(small_pair(&c, &s, &l));
	/* Until the path is full for good: then the sends stay in flight. */
	for (n = 0, i = 0; i < 10; i++) {
		long k = fill_sends(c, 8192);

		TRY(k);
		n += k;
		sleep_ms(20);
	}
	SYS(c2 = socket(AF_INET, SOCK_STREAM, 0));
	{
		struct addr a;

		TRY(local_of(l, &a));
		SYS(connect(c2, sa(&a), a.len));
	}
	SYS(fl = fcntl(l, F_GETFL));
	SYS(fcntl(l, F_SETFL, fl | O_NONBLOCK));
	EXPECT(wait_ev(l, POLLIN, 5000) & POLLIN,
	       "listener not readable with a connection pending");
	s2 = accept4(l, NULL, NULL, SOCK_NONBLOCK);
	EXPECT(s2 >= 0, "non-blocking accept with a connection pending: %s",
	       strerror(errno));
	TRY(send_str(c2, "hello"));
	EXPECT(wait_ev(s2, POLLIN, 5000) & POLLIN, "no data on the new socket");
	EXPECT(recv(s2, buf, opq(5), MSG_WAITALL) == 5 &&
		       !memcmp(buf, "hello", 5),
	       "non-blocking recv of what was sent: %s", strerror(errno));
	TRY(drain_n(s, n));
	return 0;
}

/*
 * F: POLLOUT means a send makes progress. With the peer reading nothing,
 * a send after POLLOUT must not say EAGAIN (a poll/send busy loop), a
 * blocking send must end at SO_SNDTIMEO, and POLLOUT must come back once
 * the peer reads.
 */
static int c_send_pollout(void)
{
	struct timeval tv = { 0, 200000 };
	int c, s, l, fl, re;
	long n;
	ssize_t r;

	TRY(small_pair(&c, &s, &l));
	TRY(n = fill_tiny(c));
	/* Whenever poll says POLLOUT, a send must take something. */
	for (int i = 0; i < 100; i++) {
		re = wait_ev(c, POLLOUT, 100);
		if (!(re & POLLOUT))
			break;
		r = send(c, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		EXPECT(r == 1,
		       "poll said POLLOUT (%#x), then send: %zd (%s), the "
		       "peer reading nothing",
		       re, r, r < 0 ? strerror(errno) : "no error");
		n++;
	}
	SYS(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	SYS(fl = fcntl(c, F_GETFL));
	SYS(fcntl(c, F_SETFL, fl & ~O_NONBLOCK));
	/* Blocking sends end at the timeout: a count, at last EAGAIN. */
	for (int i = 0;; i++) {
		static char big[65536];

		EXPECT(i < 50, "50 blocking sends with SO_SNDTIMEO to a peer "
			       "reading nothing never said EAGAIN");
		r = send(c, big, sizeof(big), MSG_NOSIGNAL);
		if (r > 0) {
			n += r;
			continue;
		}
		EXPECT(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
		       "blocking send with SO_SNDTIMEO to a full socket: %zd "
		       "(%s), expected EAGAIN",
		       r, r < 0 ? strerror(errno) : "no error");
		break;
	}
	TRY(drain_n(s, n));
	EXPECT(wait_ev(c, POLLOUT, 5000) & POLLOUT,
	       "no POLLOUT after the peer read everything");
	EXPECT(send(c, "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1,
	       "send after POLLOUT: %s", strerror(errno));
	TRY(expect_msg(s, "z", 2000));
	return 0;
}

/*
 * C: a peer that closes mid-transfer (asyncio's sendfile tests). With a
 * small SO_SNDBUF the kernel takes little before the reset shows: the
 * sender must see ECONNRESET or EPIPE long before it has handed over the
 * 136 KiB those tests send, not only after a whole send window.
 */
static int c_send_sndbuf(void)
{
	char buf[1024];
	long n, total;
	int c, s, l, err = 0;

	TRY(small_pair(&c, &s, &l));
	TRY(n = fill_sends(c, 8192));
	EXPECT(recv_exact(s, buf, sizeof(buf), 5000) == 0, "peer's recv");
	SYS(close(s)); /* unread data: a reset */
	for (int i = 0; i < 200 && !err; i++) {
		ssize_t r =
			send(c, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r > 0)
			n += r;
		else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			wait_ev(c, POLLOUT, 100);
		else
			err = r < 0 ? errno : -1;
	}
	total = n;
	EXPECT(err == ECONNRESET || err == EPIPE,
	       "sending after the peer closed with data unread: %s, "
	       "expected ECONNRESET or EPIPE",
	       err > 0 ? strerror(err) : "no error");
	EXPECT(total < 139264,
	       "%ld bytes accepted with SO_SNDBUF 4096 before the reset "
	       "showed, the kernel takes far less",
	       total);
	return 0;
}

/* Sender thread: a file through sendfile(), 8 KiB per call. */
struct sf_job {
	int sock, file;
	long long size;
	char err[160];
};

static void *sf_send_fn(void *arg)
{
	struct sf_job *j = arg;
	off_t off = 0;

	while (off < j->size) {
		ssize_t r = sendfile(j->sock, j->file, &off, 8192);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(j->err, sizeof(j->err),
				 "sendfile at %lld: %zd (%s)", (long long)off,
				 r, strerror(errno));
			break;
		}
	}
	return NULL;
}

/*
 * The CPython test_socket sendfile hang: many small blocking sends from
 * one thread to a slow peer, the receiver in the same process. In-flight
 * sends must leave the receiver a buffer.
 */
static int c_send_small_bulk(void)
{
	enum { SIZE = 8 << 20 };
	char tmpl[] = "/tmp/nk_semantics.XXXXXX";
	unsigned char *data, buf[16384];
	struct sf_job j = { 0 };
	long long got = 0;
	int c, s, l, f;
	pthread_t th;

	data = malloc(SIZE);
	EXPECT(data, "malloc");
	fill(data, 0, SIZE, 21);
	SYS(f = mkstemp(tmpl));
	unlink(tmpl);
	EXPECT(write(f, data, SIZE) == SIZE, "write tmp file");
	TRY(small_pair(&c, &s, &l));
	j.sock = c;
	j.file = f;
	j.size = SIZE;
	errno = pthread_create(&th, NULL, sf_send_fn, &j);
	SYS(errno ? -1 : 0);
	/* Let the sender get ahead: sends pile up in flight. */
	sleep_ms(300);
	while (got < SIZE) {
		ssize_t r;

		if (!wait_ev(s, POLLIN, 5000))
			break;
		r = recv(s, buf, opq(sizeof(buf)), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		EXPECT(!memcmp(buf, data + got, (size_t)r),
		       "wrong bytes at offset %lld", got);
		got += r;
	}
	pthread_join(th, NULL);
	EXPECT(!j.err[0], "%s", j.err);
	EXPECT(got == SIZE, "received %lld of %d bytes", got, SIZE);
	return 0;
}
