// SPDX-License-Identifier: MIT
#include "recv_batch.h"

#include <errno.h>
#include <string.h>

#include "validate.h"

static void put_hdr(uint8_t *at, uint32_t len, uint32_t full_len, int err,
		    const struct sockaddr_storage *sa, socklen_t salen)
{
	struct nk_dgram h;

	memset(&h, 0, sizeof(h));
	h.len = len;
	h.full_len = full_len;
	h.err = err;
	if (sa && salen)
		nk_sockaddr__from_sa((const struct sockaddr *)sa, salen,
				     &h.addr);
	/* The buffer is only byte-aligned as far as nkd is concerned. */
	memcpy(at, &h, sizeof(h));
}

int nk_rbatch__fill(uint8_t *buf, uint32_t len, int first_res,
		    const struct sockaddr_storage *sa, socklen_t salen,
		    nk_rbatch_recv_fn recv, void *arg, uint32_t *used,
		    uint32_t *data_bytes)
{
	const uint32_t hdr = sizeof(struct nk_dgram);
	uint32_t cap, data, end, n = 1;

	*used = 0;
	*data_bytes = 0;
	if (first_res < 0)
		return first_res;
	if (len < hdr)
		return -EINVAL; /* validation refuses this first */
	cap = len - hdr;
	data = (uint32_t)first_res < cap ? (uint32_t)first_res : cap;
	put_hdr(buf, data, (uint32_t)first_res, 0, sa, salen);
	end = hdr + data;
	*data_bytes = data;
	while (n < NK_RECV_BATCH_MAX && recv) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		uint32_t off = NK_DGRAM_NEXT(end);
		int r;

		/* off <= len - hdr keeps both sums below below 2^32. */
		if (off > len || len - off < hdr)
			break;
		memset(&ss, 0, sizeof(ss));
		r = recv(arg, buf + off + hdr, len - off - hdr, &ss, &sl);
		if (r == -EAGAIN)
			break;
		if (r < 0) {
			put_hdr(buf + off, 0, 0, -r, NULL, 0);
			end = off + hdr;
			n++;
			break; /* an error ends the batch, as recvmmsg does */
		}
		data = (uint32_t)r < len - off - hdr ? (uint32_t)r
						     : len - off - hdr;
		put_hdr(buf + off, data, (uint32_t)r, 0, &ss, sl);
		end = off + hdr + data;
		*data_bytes += data;
		n++;
	}
	*used = end;
	return (int)n;
}
