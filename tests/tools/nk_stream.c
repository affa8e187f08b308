/* SPDX-License-Identifier: MIT */
/*
 * nk_stream: bulk TCP transfer with an end-to-end SHA-256, for the
 * integrity tests. An ordinary sockets program: it runs natively or as a
 * netkernel guest unchanged.
 *
 *   nk_stream send connect|listen HOST PORT BYTES [SEED]
 *   nk_stream recv connect|listen HOST PORT
 *   nk_stream gen BYTES [SEED]          (hash of the stream, no network)
 *
 * The sender streams BYTES of a deterministic pseudo-random sequence
 * (xorshift64* from SEED), shuts down its write side and waits for the
 * receiver to close; the receiver reads to end of stream. Each prints one
 * line:  RESULT role=send|recv bytes=N sha256=HEX secs=S gbps=G
 * Exit status 0 on success, 1 on any socket error or short stream.
 */
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

#define CHUNK (256u * 1024u)

static uint64_t rng_state;

static void gen_fill(uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t x = rng_state;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		rng_state = x;
		x *= 0x2545F4914F6CDD1DULL;
		memcpy(buf + i, &x, 8);
	}
	for (; i < n; i++)
		buf[i] = (uint8_t)i;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(const char *how, const char *host, const char *port)
{
	struct addrinfo hints = { 0 }, *ai, *a;
	int fd = -1, one = 1, rc;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	if (!strcmp(how, "listen"))
		hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		fprintf(stderr, "nk_stream: %s:%s: %s\n", host, port,
			gai_strerror(rc));
		return -1;
	}
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
		if (fd < 0)
			continue;
		if (!strcmp(how, "connect")) {
			if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
				break;
			perror("nk_stream: connect");
		} else {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				   sizeof(one));
			if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
			    listen(fd, 4) == 0) {
				int c = accept(fd, NULL, NULL);

				if (c < 0)
					perror("nk_stream: accept");
				close(fd);
				fd = c;
				break;
			}
			perror("nk_stream: bind/listen");
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static void report(const char *role, uint64_t n, struct sha256 *h, double t)
{
	char hex[65];

	sha256_final_hex(h, hex);
	printf("RESULT role=%s bytes=%llu sha256=%s secs=%.3f gbps=%.3f\n",
	       role, (unsigned long long)n, hex, t,
	       t > 0 ? (double)n * 8 / t / 1e9 : 0.0);
	fflush(stdout);
}

static int do_send(int fd, uint64_t total)
{
	static uint8_t buf[CHUNK];
	struct sha256 h;
	uint64_t done = 0;
	double t0 = now_s();

	sha256_init(&h);
	while (done < total) {
		size_t n = total - done < CHUNK ? (size_t)(total - done)
						: CHUNK;
		size_t off = 0;

		gen_fill(buf, n);
		sha256_update(&h, buf, n);
		while (off < n) {
			ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr,
					"nk_stream: send after %llu bytes: %s\n",
					(unsigned long long)(done + off),
					strerror(errno));
				return 1;
			}
			off += (size_t)w;
		}
		done += n;
	}
	if (shutdown(fd, SHUT_WR) < 0) {
		perror("nk_stream: shutdown");
		return 1;
	}
	/* Wait for the receiver's close so every byte was taken. */
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("nk_stream: recv (waiting for close)");
			return 1;
		}
		if (r == 0)
			break;
	}
	report("send", done, &h, now_s() - t0);
	return 0;
}

static int do_recv(int fd)
{
	static uint8_t buf[CHUNK];
	struct sha256 h;
	uint64_t done = 0;
	double t0 = now_s();

	sha256_init(&h);
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr,
				"nk_stream: recv after %llu bytes: %s\n",
				(unsigned long long)done, strerror(errno));
			return 1;
		}
		if (r == 0)
			break;
		sha256_update(&h, buf, (size_t)r);
		done += (uint64_t)r;
	}
	report("recv", done, &h, now_s() - t0);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: nk_stream send connect|listen HOST PORT BYTES [SEED]\n"
		"       nk_stream recv connect|listen HOST PORT\n"
		"       nk_stream gen BYTES [SEED]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int fd, rc;

	if (argc >= 3 && !strcmp(argv[1], "gen")) {
		static uint8_t buf[CHUNK];
		uint64_t total = strtoull(argv[2], NULL, 0), done = 0;
		struct sha256 h;

		rng_state = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
		rng_state = rng_state ? rng_state : 1;
		sha256_init(&h);
		while (done < total) {
			size_t n = total - done < CHUNK ? (size_t)(total - done)
							: CHUNK;
			gen_fill(buf, n);
			sha256_update(&h, buf, n);
			done += n;
		}
		report("gen", done, &h, 0);
		return 0;
	}
	if (argc < 5)
		usage();
	if (strcmp(argv[2], "connect") && strcmp(argv[2], "listen"))
		usage();
	if (!strcmp(argv[1], "send")) {
		if (argc < 6)
			usage();
		rng_state = argc > 6 ? strtoull(argv[6], NULL, 0) : 1;
		rng_state = rng_state ? rng_state : 1;
	} else if (strcmp(argv[1], "recv")) {
		usage();
	}
	fd = open_conn(argv[2], argv[3], argv[4]);
	if (fd < 0)
		return 1;
	if (!strcmp(argv[1], "send"))
		rc = do_send(fd, strtoull(argv[5], NULL, 0));
	else
		rc = do_recv(fd);
	close(fd);
	return rc;
}
